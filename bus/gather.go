package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultGrace is how long Gather waits for more replies after the first.
// Edges answer the same message concurrently, so their replies arrive close
// together; the grace window covers cross-route latency in a cluster.
const DefaultGrace = 50 * time.Millisecond

// maxReplies bounds how many replies one Gather keeps.
const maxReplies = 4096

// ErrNoResponders means nobody subscribes to the subject: for a user
// subject, the user is offline everywhere.
var ErrNoResponders = errors.New("bus: no responders")

// Gather publishes msg with a fresh reply inbox and collects every reply:
// until ctx ends before the first one, then for grace more. NATS's
// no-responders status yields ErrNoResponders.
func Gather(ctx context.Context, nc *nats.Conn, msg *nats.Msg, grace time.Duration) ([]*nats.Msg, error) {
	if grace <= 0 {
		grace = DefaultGrace
	}
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe reply inbox: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg.Reply = inbox
	if err := nc.PublishMsg(msg); err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", msg.Subject, err)
	}
	var replies []*nats.Msg
	var graceC <-chan time.Time
	for {
		select {
		case m := <-ch:
			if isNoResponders(m) {
				if len(replies) == 0 {
					return nil, ErrNoResponders
				}
				continue
			}
			if len(replies) < maxReplies {
				replies = append(replies, m)
			}
			if graceC == nil {
				t := time.NewTimer(grace)
				defer t.Stop()
				graceC = t.C
			}
		case <-graceC:
			return replies, nil
		case <-ctx.Done():
			if len(replies) > 0 {
				return replies, nil
			}
			return nil, fmt.Errorf("bus: waiting for replies on %s: %w", msg.Subject, ctx.Err())
		}
	}
}

func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}
