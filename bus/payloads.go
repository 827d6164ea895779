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

// Edge liveness, as every consumer of plex.edge.stats judges it.
const (
	// StatsMissed is how many of an edge's intervals may pass without
	// stats before it counts as gone.
	StatsMissed = 3
	// DefaultStatsInterval is assumed for stats without interval_ms (the
	// edge's own default).
	DefaultStatsInterval = 5 * time.Second
	// MaxStatsInterval caps an advertised interval, so a bogus one cannot
	// keep a dead edge alive for days.
	MaxStatsInterval = 5 * time.Minute
)

// TTL is how long after these stats their edge counts as alive: missed of
// its advertised intervals, def when it advertises none, each at most
// MaxStatsInterval.
func (s EdgeStats) TTL(def time.Duration, missed int) time.Duration {
	interval := def
	if s.IntervalMS > 0 {
		interval = time.Duration(min(s.IntervalMS, MaxStatsInterval.Milliseconds())) * time.Millisecond
	}
	return interval * time.Duration(missed)
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
