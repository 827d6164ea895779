package pushapi

import (
	"testing"
	"time"

	"github.com/plexbus/plex/bus"
)

func newTestEdges(clk *fakeClock) *Edges {
	return newEdges(EdgesConfig{Now: clk.Now})
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func pickN(t *testing.T, e *Edges, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		addr, ok := e.Pick()
		if !ok {
			t.Fatal("no edge picked")
		}
		got[addr]++
	}
	return got
}

func TestEdgesPick(t *testing.T) {
	tests := map[string]struct {
		edges []bus.EdgeStats
		want  string // "" = none available
	}{
		"least conns": {edges: []bus.EdgeStats{
			{ID: "a", Addr: "a:1", Conns: 5}, {ID: "b", Addr: "b:1", Conns: 1}, {ID: "c", Addr: "c:1", Conns: 3},
		}, want: "b:1"},
		"draining skipped": {edges: []bus.EdgeStats{
			{ID: "a", Addr: "a:1", Conns: 0, Draining: true}, {ID: "b", Addr: "b:1", Conns: 9},
		}, want: "b:1"},
		"full skipped": {edges: []bus.EdgeStats{
			{ID: "a", Addr: "a:1", Conns: 10, MaxConns: 10}, {ID: "b", Addr: "b:1", Conns: 50},
		}, want: "b:1"},
		"fraction when every edge has a max": {edges: []bus.EdgeStats{
			{ID: "big", Addr: "big:1", Conns: 100, MaxConns: 1000}, {ID: "small", Addr: "small:1", Conns: 5, MaxConns: 10},
		}, want: "big:1"},
		"counts when one edge is unlimited": {edges: []bus.EdgeStats{
			{ID: "big", Addr: "big:1", Conns: 100, MaxConns: 1000}, {ID: "free", Addr: "free:1", Conns: 5},
		}, want: "free:1"},
		"id falls back to addr": {edges: []bus.EdgeStats{
			{Addr: "x:1", Conns: 2}, {Addr: "y:1", Conns: 1},
		}, want: "y:1"},
		"no addr is ignored": {edges: []bus.EdgeStats{{ID: "a", Conns: 0}}, want: ""},
		"all draining or full": {edges: []bus.EdgeStats{
			{ID: "a", Addr: "a:1", Draining: true}, {ID: "b", Addr: "b:1", Conns: 3, MaxConns: 3},
		}, want: ""},
		"empty": {want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newTestEdges(newClock())
			for _, s := range tc.edges {
				e.observe(s)
			}
			addr, ok := e.Pick()
			if ok != (tc.want != "") || addr != tc.want {
				t.Fatalf("Pick() = %q, %v; want %q", addr, ok, tc.want)
			}
		})
	}
}

// TestEdgesSpreadBurst: between two stats messages, hand-outs count as
// load, so a burst spreads evenly instead of landing on one edge.
func TestEdgesSpreadBurst(t *testing.T) {
	e := newTestEdges(newClock())
	for _, id := range []string{"a", "b", "c"} {
		e.observe(bus.EdgeStats{ID: id, Addr: id + ":1", Conns: 10})
	}
	got := pickN(t, e, 30)
	for _, id := range []string{"a", "b", "c"} {
		if got[id+":1"] != 10 {
			t.Fatalf("burst of 30 over 3 equal edges: %v", got)
		}
	}
	// One edge was already lighter: it takes the first hand-outs alone.
	e = newTestEdges(newClock())
	e.observe(bus.EdgeStats{ID: "a", Addr: "a:1", Conns: 10})
	e.observe(bus.EdgeStats{ID: "b", Addr: "b:1", Conns: 4})
	if got := pickN(t, e, 6); got["b:1"] != 6 {
		t.Fatalf("first 6 should go to b: %v", got)
	}
	if got := pickN(t, e, 2); got["a:1"] != 1 || got["b:1"] != 1 {
		t.Fatalf("then alternate: %v", got)
	}
	// Fresh stats replace the estimate.
	e.observe(bus.EdgeStats{ID: "b", Addr: "b:1", Conns: 100})
	if got := pickN(t, e, 3); got["a:1"] != 3 {
		t.Fatalf("after b's stats: %v", got)
	}
	for _, in := range e.List() {
		if in.ID == "b" && in.HandedOut != 0 {
			t.Fatalf("hand-outs not reset by stats: %+v", in)
		}
	}
}

// TestEdgesTieBreakRandom: with equal load, the first hand-out is not
// always the same edge (several API instances must not all pick one).
func TestEdgesTieBreakRandom(t *testing.T) {
	first := map[string]int{}
	for range 200 {
		e := newTestEdges(newClock())
		e.observe(bus.EdgeStats{ID: "a", Addr: "a:1"})
		e.observe(bus.EdgeStats{ID: "b", Addr: "b:1"})
		e.observe(bus.EdgeStats{ID: "c", Addr: "c:1"})
		addr, _ := e.Pick()
		first[addr]++
	}
	if len(first) != 3 {
		t.Fatalf("first picks over 200 tables: %v", first)
	}
}

func TestEdgesExpiry(t *testing.T) {
	clk := newClock()
	e := newTestEdges(clk)
	e.observe(bus.EdgeStats{ID: "fast", Addr: "fast:1", IntervalMS: 1000})
	e.observe(bus.EdgeStats{ID: "default", Addr: "default:1", Conns: 5}) // no interval: 5 s assumed

	clk.Advance(2900 * time.Millisecond)
	if e.Len() != 2 {
		t.Fatalf("at 2.9 s: %d live, want 2", e.Len())
	}
	if addr, _ := e.Pick(); addr != "fast:1" {
		t.Fatalf("at 2.9 s picked %q", addr)
	}
	clk.Advance(200 * time.Millisecond) // 3.1 s: three 1 s intervals missed
	if addr, _ := e.Pick(); addr != "default:1" {
		t.Fatalf("at 3.1 s picked %q, want the edge still reporting", addr)
	}
	if l := e.List(); len(l) != 1 || l[0].ID != "default" {
		t.Fatalf("List at 3.1 s: %+v", l)
	}
	clk.Advance(11800 * time.Millisecond) // 14.9 s
	if e.Len() != 1 {
		t.Fatalf("at 14.9 s: %d live, want 1", e.Len())
	}
	clk.Advance(200 * time.Millisecond) // 15.1 s: three default intervals
	if _, ok := e.Pick(); ok || e.Len() != 0 {
		t.Fatalf("at 15.1 s an edge is still live: %+v", e.List())
	}
	// The next stats message prunes the dead entries.
	e.observe(bus.EdgeStats{ID: "new", Addr: "new:1"})
	e.mu.RLock()
	n := len(e.m)
	e.mu.RUnlock()
	if n != 1 {
		t.Fatalf("%d entries after pruning, want 1", n)
	}
	// An edge whose stats resume is live again.
	e.observe(bus.EdgeStats{ID: "fast", Addr: "fast:1", IntervalMS: 1000})
	if e.Len() != 2 {
		t.Fatalf("after fast came back: %+v", e.List())
	}
}

func TestEdgesBogusInterval(t *testing.T) {
	clk := newClock()
	e := newTestEdges(clk)
	e.observe(bus.EdgeStats{ID: "a", Addr: "a:1", IntervalMS: 1 << 62})
	clk.Advance(3*bus.MaxStatsInterval - time.Second)
	if e.Len() != 1 {
		t.Fatal("expired early")
	}
	clk.Advance(2 * time.Second)
	if e.Len() != 0 {
		t.Fatal("a huge interval kept the edge alive")
	}
}

func TestEdgesList(t *testing.T) {
	clk := newClock()
	e := newTestEdges(clk)
	e.observe(bus.EdgeStats{ID: "b", Addr: "b:1", Conns: 2, Draining: true})
	e.observe(bus.EdgeStats{ID: "a", Addr: "a:1", Conns: 1, MaxConns: 9, Version: "v1"})
	l := e.List()
	if len(l) != 2 || l[0].ID != "a" || l[1].ID != "b" || !l[1].Draining || l[0].MaxConns != 9 || !l[0].LastSeen.Equal(clk.Now()) {
		t.Fatalf("List: %+v", l)
	}
}
