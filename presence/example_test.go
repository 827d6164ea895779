package presence_test

import (
	"fmt"
	"time"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/presence"
)

// A tracker fed by hand: in production, Watch feeds it from the bus.
func Example() {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	tr := presence.New(presence.Config{Now: func() time.Time { return now }})

	tr.ObserveStats(bus.EdgeStats{ID: "edge-1", Addr: "10.0.0.5:9578", Started: now, IntervalMS: 5000})
	tr.ObservePresence(bus.Presence{UID: "42", Online: true, Edge: "edge-1", Conn: "edge-1-17", At: now})
	fmt.Println("after login:", tr.Online("42"))

	now = now.Add(15 * time.Second) // three intervals without stats: still within the bound
	fmt.Println("15 s later:", tr.Online("42"))

	now = now.Add(time.Millisecond) // the edge is gone: no goodbye needed
	fmt.Println("edge gone:", tr.Online("42"))
	// Output:
	// after login: true
	// 15 s later: true
	// edge gone: false
}
