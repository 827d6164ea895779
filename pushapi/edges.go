package pushapi

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
)

// Defaults of EdgesConfig.
const (
	// DefaultStatsInterval is assumed for an edge whose stats carry no
	// interval_ms (the edge's own default).
	DefaultStatsInterval = bus.DefaultStatsInterval
	// DefaultMissed is how many intervals without stats drop an edge (the
	// bus contract's rule).
	DefaultMissed = bus.StatsMissed
)

// EdgesConfig tunes an edge table. The zero value is ready to use.
type EdgesConfig struct {
	// DefaultInterval is assumed for edges whose stats carry no
	// interval_ms. Zero = 5 s.
	DefaultInterval time.Duration
	// Missed is how many of an edge's intervals may pass without stats
	// before it is dropped. Zero = 3.
	Missed int
	// Now is the clock; nil = time.Now. Tests inject their own.
	Now func() time.Time
	// Logger gets edges joining, draining and expiring at info level.
	// Nil = discard.
	Logger *slog.Logger
}

// EdgeInfo is one live edge: its last stats and what the API knows of it.
type EdgeInfo struct {
	bus.EdgeStats
	// LastSeen is when its last stats arrived.
	LastSeen time.Time `json:"last_seen"`
	// HandedOut counts the times /plex/v1/host gave it out since then.
	HandedOut int64 `json:"handed_out"`
}

// Edges is the table of live edges, fed by plex.edge.stats. It is safe for
// concurrent use. Entries expire lazily: a read skips an edge whose stats
// stopped, and the next stats message removes it, so no goroutine is needed.
type Edges struct {
	interval time.Duration // immutable
	missed   int           // immutable
	now      func() time.Time
	log      *slog.Logger
	sub      *nats.Subscription // nil for a table fed by hand (tests)

	closeOnce sync.Once
	closeErr  error

	mu sync.RWMutex          // guards m and the entries' stats, seen and ttl
	m  map[string]*edgeEntry // by edge id (addr if the id is empty)
}

type edgeEntry struct {
	stats  bus.EdgeStats // Edges.mu
	seen   time.Time     // Edges.mu
	ttl    time.Duration // Edges.mu: Missed × the edge's interval
	handed atomic.Int64  // hand-outs since stats; written under Edges.mu read lock
}

// WatchEdges subscribes to plex.edge.stats on nc and keeps the table until
// Close. nc is owned by the caller and must outlive the table.
func WatchEdges(nc *nats.Conn, cfg EdgesConfig) (*Edges, error) {
	if nc == nil {
		return nil, errors.New("pushapi: nil bus connection")
	}
	e := newEdges(cfg)
	sub, err := bus.SubscribeEdgeStats(nc, e.observe)
	if err != nil {
		return nil, fmt.Errorf("pushapi: watch edges: %w", err)
	}
	e.sub = sub
	return e, nil
}

func newEdges(cfg EdgesConfig) *Edges {
	e := &Edges{
		interval: cfg.DefaultInterval,
		missed:   cfg.Missed,
		now:      cfg.Now,
		log:      cfg.Logger,
		m:        make(map[string]*edgeEntry),
	}
	if e.interval <= 0 {
		e.interval = DefaultStatsInterval
	}
	if e.missed <= 0 {
		e.missed = DefaultMissed
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e
}

// Close stops watching. The table keeps answering from what it saw until
// those entries expire. Close is idempotent.
func (e *Edges) Close() error {
	e.closeOnce.Do(func() {
		if e.sub == nil {
			return
		}
		if err := e.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			e.closeErr = fmt.Errorf("pushapi: stop watching edges: %w", err)
		}
	})
	return e.closeErr
}

// observe records one stats message; it also prunes expired edges.
func (e *Edges) observe(st bus.EdgeStats) {
	if st.Addr == "" {
		return // nothing to hand out
	}
	key := st.ID
	if key == "" {
		key = st.Addr
	}
	ttl := st.TTL(e.interval, e.missed)
	now := e.now()

	e.mu.Lock()
	defer e.mu.Unlock()
	for k, en := range e.m {
		if k != key && en.expired(now) {
			delete(e.m, k)
			e.log.Info("edge expired: no stats", "edge", k, "addr", en.stats.Addr, "last_seen", en.seen)
		}
	}
	en, ok := e.m[key]
	switch {
	case !ok:
		en = &edgeEntry{}
		e.m[key] = en
		e.log.Info("edge joined", "edge", key, "addr", st.Addr, "conns", st.Conns, "max_conns", st.MaxConns)
	case en.expired(now):
		e.log.Info("edge back after missing stats", "edge", key, "addr", st.Addr)
	case st.Draining && !en.stats.Draining:
		e.log.Info("edge draining", "edge", key, "addr", st.Addr)
	}
	en.stats, en.seen, en.ttl = st, now, ttl
	en.handed.Store(0)
}

func (en *edgeEntry) expired(now time.Time) bool {
	return now.Sub(en.seen) > en.ttl
}

// available reports whether an edge may be handed out.
func (en *edgeEntry) available(now time.Time) bool {
	s := &en.stats
	return !en.expired(now) && !s.Draining && (s.MaxConns <= 0 || s.Conns < s.MaxConns)
}

// Pick returns the address of the least-loaded available edge and counts
// the hand-out against it, or false when no edge is available. Draining
// edges, edges at max_conns and expired edges are skipped. Load is the
// reported conns plus the hand-outs since; when every candidate has a
// max_conns, load as a fraction of it is compared. Ties go to a random one.
func (e *Edges) Pick() (string, bool) {
	now := e.now()
	e.mu.RLock()
	defer e.mu.RUnlock()
	byFraction, found := true, false
	for _, en := range e.m {
		if en.available(now) {
			found = true
			byFraction = byFraction && en.stats.MaxConns > 0
		}
	}
	if !found {
		return "", false
	}
	var best *edgeEntry
	var bestLoad int64
	ties := 0
	for _, en := range e.m {
		if !en.available(now) {
			continue
		}
		load := int64(en.stats.Conns) + en.handed.Load()
		c := -1
		if best != nil {
			c = compareLoad(load, int64(en.stats.MaxConns), bestLoad, int64(best.stats.MaxConns), byFraction)
		}
		switch {
		case c < 0:
			best, bestLoad, ties = en, load, 1
		case c == 0:
			ties++
			if rand.IntN(ties) == 0 { // reservoir sampling: each tie equally likely
				best, bestLoad = en, load
			}
		}
	}
	best.handed.Add(1)
	return best.stats.Addr, true
}

// compareLoad compares load a of capacity ca with load b of capacity cb,
// as fractions (cross-multiplied, exact) or as counts.
func compareLoad(a, ca, b, cb int64, byFraction bool) int {
	if byFraction {
		return cmp.Compare(a*cb, b*ca)
	}
	return cmp.Compare(a, b)
}

// List returns the live edges (draining ones included) sorted by id.
func (e *Edges) List() []EdgeInfo {
	now := e.now()
	e.mu.RLock()
	out := make([]EdgeInfo, 0, len(e.m))
	for _, en := range e.m {
		if !en.expired(now) {
			out = append(out, EdgeInfo{EdgeStats: en.stats, LastSeen: en.seen, HandedOut: en.handed.Load()})
		}
	}
	e.mu.RUnlock()
	slices.SortFunc(out, func(a, b EdgeInfo) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Addr, b.Addr))
	})
	return out
}

// Len is the number of live edges, draining ones included.
func (e *Edges) Len() int {
	now := e.now()
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, en := range e.m {
		if !en.expired(now) {
			n++
		}
	}
	return n
}
