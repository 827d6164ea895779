package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plexbus/plex/bus"
)

// ConnSubs reads a nats-server monitoring endpoint's /connz and returns,
// for the client connections whose name starts with prefix (an edge's is
// "plex-edge <id>"), how many there are and their subscriptions in total.
func ConnSubs(monitorURL, prefix string) (conns, subs int, err error) {
	code, body, err := HTTPGet(monitorURL+"/connz?limit=4096", "")
	if err != nil {
		return 0, 0, err
	}
	if code != http.StatusOK {
		return 0, 0, fmt.Errorf("connz: %d %s", code, body)
	}
	var cz struct {
		Conns []struct {
			Name string `json:"name"`
			Subs int    `json:"subscriptions"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(body), &cz); err != nil {
		return 0, 0, fmt.Errorf("connz: %w", err)
	}
	for _, c := range cz.Conns {
		if strings.HasPrefix(c.Name, prefix) {
			conns++
			subs += c.Subs
		}
	}
	return conns, subs, nil
}

// PresenceLog keeps every plex.presence event in a file-backed JetStream
// stream. The server stores them as they are published, from the moment
// it accepts clients after a restart, so a test can read what the edges
// announced while its own connection was still reconnecting.
type PresenceLog struct {
	js jetstream.JetStream
}

const presenceStream = "PLEX_PRESENCE_LOG"

// RecordPresence creates the stream on a server with JetStream enabled.
func RecordPresence(t testing.TB, nc *nats.Conn) *PresenceLog {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     presenceStream,
		Subjects: []string{bus.SubjectPresence},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create presence stream: %v", err)
	}
	return &PresenceLog{js: js}
}

// Events returns every event stored so far, in publication order.
func (l *PresenceLog) Events(t testing.TB) []bus.Presence {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := l.js.Stream(ctx, presenceStream)
	if err != nil {
		t.Fatalf("presence stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("presence stream info: %v", err)
	}
	last := info.State.LastSeq
	cons, err := l.js.OrderedConsumer(ctx, presenceStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("presence consumer: %v", err)
	}
	var out []bus.Presence
	for seq := uint64(0); seq < last; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("fetch presence: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			seq = md.Sequence.Stream
			var p bus.Presence
			if json.Unmarshal(m.Data(), &p) == nil {
				out = append(out, p)
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch presence: %v", err)
		}
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("presence log: stuck at %d of %d", seq, last)
		}
	}
	return out
}
