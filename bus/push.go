package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Push is one message for one user.
type Push struct {
	UID  string
	URI  string // frame uri; empty = the edge's default, /push
	Seq  int64  // frame seq; 0 = assigned by the edge per connection
	Body []byte // delivered verbatim as the frame's body (UTF-8 text)
}

// Msg builds the NATS message for p, validating the uid.
func (p Push) Msg() (*nats.Msg, error) {
	subj, err := UserSubject(p.UID)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subj)
	m.Data = p.Body
	if p.URI != "" {
		m.Header.Set(HeaderURI, p.URI)
	}
	if p.Seq != 0 {
		m.Header.Set(HeaderSeq, strconv.FormatInt(p.Seq, 10))
	}
	if len(m.Header) == 0 {
		m.Header = nil // plain PUB: cheaper for the server and every edge
	}
	return m, nil
}

// Publish sends p without waiting: fire and forget.
func Publish(nc *nats.Conn, p Push) error {
	m, err := p.Msg()
	if err != nil {
		return err
	}
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("bus: publish push: %w", err)
	}
	return nil
}

// PublishWait sends p and sums the edges' {"delivered": n} replies. An
// offline user yields 0 and no error.
func PublishWait(ctx context.Context, nc *nats.Conn, p Push, grace time.Duration) (int, error) {
	m, err := p.Msg()
	if err != nil {
		return 0, err
	}
	replies, err := Gather(ctx, nc, m, grace)
	if errors.Is(err, ErrNoResponders) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	total := 0
	for _, r := range replies {
		var d Delivered
		if json.Unmarshal(r.Data, &d) == nil && d.Delivered > 0 {
			total += d.Delivered
		}
	}
	return total, nil
}

// QueryPresence asks every edge for uid's connections (Plex-Op: presence).
// No connections anywhere (no responders) is an empty result, not an error.
func QueryPresence(ctx context.Context, nc *nats.Conn, uid string, grace time.Duration) ([]ConnInfo, error) {
	m, err := opMsg(uid, OpPresence)
	if err != nil {
		return nil, err
	}
	replies, err := Gather(ctx, nc, m, grace)
	if errors.Is(err, ErrNoResponders) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var conns []ConnInfo
	for _, r := range replies {
		var pr PresenceReply
		if err := json.Unmarshal(r.Data, &pr); err != nil {
			return nil, fmt.Errorf("bus: bad presence reply: %w", err)
		}
		conns = append(conns, pr.Conns...)
	}
	return conns, nil
}

// Kick asks every edge to close uid's connections, sparing exceptConn if set.
// It does not wait; use KickWait to learn how many were closed.
func Kick(nc *nats.Conn, uid, exceptConn string) error {
	m, err := kickMsg(uid, exceptConn)
	if err != nil {
		return err
	}
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("bus: publish kick: %w", err)
	}
	return nil
}

// KickWait is Kick that waits for the edges' replies and sums the kicked count.
func KickWait(ctx context.Context, nc *nats.Conn, uid, exceptConn string, grace time.Duration) (int, error) {
	m, err := kickMsg(uid, exceptConn)
	if err != nil {
		return 0, err
	}
	replies, err := Gather(ctx, nc, m, grace)
	if errors.Is(err, ErrNoResponders) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	total := 0
	for _, r := range replies {
		var k KickReply
		if json.Unmarshal(r.Data, &k) == nil {
			total += k.Kicked
		}
	}
	return total, nil
}

func kickMsg(uid, exceptConn string) (*nats.Msg, error) {
	m, err := opMsg(uid, OpKick)
	if err != nil {
		return nil, err
	}
	if exceptConn != "" {
		m.Header.Set(HeaderConn, exceptConn)
	}
	return m, nil
}

func opMsg(uid, op string) (*nats.Msg, error) {
	subj, err := UserSubject(uid)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subj)
	m.Header.Set(HeaderOp, op)
	return m, nil
}
