package bus

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// PublishPresence announces a connect or disconnect.
func PublishPresence(nc *nats.Conn, p Presence) error {
	return publishJSON(nc, SubjectPresence, p)
}

// PublishEdgeStats announces an edge's load.
func PublishEdgeStats(nc *nats.Conn, s EdgeStats) error {
	return publishJSON(nc, SubjectEdgeStats, s)
}

// SubscribePresence calls fn for every presence event; malformed events are
// skipped. fn runs on the subscription's goroutine, one event at a time.
func SubscribePresence(nc *nats.Conn, fn func(Presence)) (*nats.Subscription, error) {
	return subscribeJSON(nc, SubjectPresence, fn)
}

// SubscribeEdgeStats calls fn for every stats message; malformed ones are skipped.
func SubscribeEdgeStats(nc *nats.Conn, fn func(EdgeStats)) (*nats.Subscription, error) {
	return subscribeJSON(nc, SubjectEdgeStats, fn)
}

func publishJSON(nc *nats.Conn, subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bus: encode %s: %w", subject, err)
	}
	if err := nc.Publish(subject, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

func subscribeJSON[T any](nc *nats.Conn, subject string, fn func(T)) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var v T
		if json.Unmarshal(m.Data, &v) != nil {
			return
		}
		fn(v)
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return sub, nil
}
