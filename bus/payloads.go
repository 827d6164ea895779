package bus

import (
	"log/slog"
	"time"
)

// AuthRequest is what an edge sends on SubjectAuth.
type AuthRequest struct {
	Body   string `json:"body"`   // the client's auth data (a token); a secret, never log it
	Remote string `json:"remote"` // the client's address, ip:port
	Edge   string `json:"edge"`   // the asking edge's id
	Conn   string `json:"conn"`   // the connection's id
}

// LogValue keeps the auth data out of logs: slog.Any("req", req) is safe.
func (r AuthRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("remote", r.Remote), slog.String("edge", r.Edge),
		slog.String("conn", r.Conn), slog.Int("body_bytes", len(r.Body)))
}

// AuthReply is the auth service's answer.
type AuthReply struct {
	OK     bool   `json:"ok"`
	UID    string `json:"uid,omitempty"`
	Reason string `json:"reason,omitempty"` // why it was refused; shown to the client
}

// Presence is published on SubjectPresence on every authenticated connect
// and every disconnect. Resync marks a re-announcement of a connection that
// was already online (after the edge reconnected to the bus).
type Presence struct {
	UID    string    `json:"uid"`
	Online bool      `json:"online"`
	Edge   string    `json:"edge"`
	Conn   string    `json:"conn"`
	Remote string    `json:"remote,omitempty"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"` // for offline: why it ended
	Resync bool      `json:"resync,omitempty"`
}

// EdgeStats is published by each edge on SubjectEdgeStats every StatsInterval.
type EdgeStats struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"` // the address clients should dial, host:port
	Conns    int       `json:"conns"`
	MaxConns int       `json:"max_conns"` // 0 = unlimited
	Started  time.Time `json:"started"`
	Version  string    `json:"version"`
	// Interval is how often the edge publishes, so consumers can tell when
	// it stopped (an edge is gone after three missed intervals).
	IntervalMS int64 `json:"interval_ms,omitempty"`
	Draining   bool  `json:"draining,omitempty"` // shutting down: do not hand it out
}

// Delivered is an edge's reply to a push that carried a reply subject.
type Delivered struct {
	Delivered int    `json:"delivered"`
	Edge      string `json:"edge,omitempty"`
}

// PresenceReply is an edge's reply to a Plex-Op: presence request.
type PresenceReply struct {
	UID   string     `json:"uid"`
	Edge  string     `json:"edge"`
	Conns []ConnInfo `json:"conns"`
}

// ConnInfo describes one connection of a user.
type ConnInfo struct {
	ID     string    `json:"id"`
	Edge   string    `json:"edge"`
	Remote string    `json:"remote"`
	Since  time.Time `json:"since"`
}

// KickReply is an edge's reply to a Plex-Op: kick request with a reply subject.
type KickReply struct {
	Kicked int    `json:"kicked"`
	Edge   string `json:"edge,omitempty"`
}
