package presence

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
)

// Defaults of Config.
const (
	// DefaultMissed is how many of an edge's stats intervals may pass
	// without stats before it counts as gone (the bus contract's rule).
	DefaultMissed = bus.StatsMissed
	// DefaultInterval is assumed for stats without interval_ms and for an
	// edge known only from its presence events (the edge's own default).
	DefaultInterval = bus.DefaultStatsInterval
	// DefaultForget is how long a gone edge and its connections are kept,
	// so that they count again if the same edge process comes back.
	DefaultForget = 10 * time.Minute
	// endedMemory is how long the id of a connection that went offline is
	// remembered, so that a resync racing with its offline event cannot
	// bring it back.
	endedMemory = time.Minute
)

// Config tunes a Tracker. The zero value is ready to use.
type Config struct {
	// Missed is how many of an edge's intervals may pass without stats
	// before the edge counts as gone and its connections as offline.
	// Zero = 3.
	Missed int
	// DefaultInterval is assumed for edges whose stats carry no
	// interval_ms, and for an edge seen in presence events before any of
	// its stats. Zero = 5 s.
	DefaultInterval time.Duration
	// Forget is how long a gone edge's entry is kept before it and its
	// connections are dropped from memory. Zero = 10 min.
	Forget time.Duration
	// Now is the clock; nil = time.Now. Tests inject their own.
	Now func() time.Time
	// Logger gets edges joining, restarting, coming back and being
	// forgotten, at info level. Nil = discard.
	Logger *slog.Logger
}

// Tracker is a view of the online users, fed by presence events and edge
// stats. It is safe for concurrent use.
type Tracker struct {
	// Immutable after New.
	missed   int
	interval time.Duration
	forget   time.Duration
	now      func() time.Time
	log      *slog.Logger
	subs     []*nats.Subscription // set by Watch before the first event

	closeOnce sync.Once
	closeErr  error

	mu        sync.RWMutex
	closed    bool                    // after Close, events are ignored
	edges     map[string]*edgeState   // by edge id
	users     map[string][]*connState // by uid; may hold connections of gone edges
	lastSweep time.Time               // tracker clock
}

// edgeState is what the tracker knows of one edge. All fields are guarded
// by Tracker.mu.
type edgeState struct {
	id        string
	addr      string
	started   time.Time     // the edge process's start (its clock); zero before its first stats
	seen      time.Time     // tracker clock: its last stats, or its first presence event
	ttl       time.Duration // Missed × its interval
	statsSeen bool
	gone      bool                  // logged as gone; cleared when its stats resume
	conns     map[string]*connState // by connection id
	ended     map[string]time.Time  // connection id → when it went offline (tracker clock)
}

// connState is one connection. Guarded by Tracker.mu.
type connState struct {
	uid  string
	info bus.ConnInfo
	at   time.Time // At of its latest event (the edge's clock)
}

// EdgeInfo describes an edge as the tracker sees it.
type EdgeInfo struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr,omitempty"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
	Conns    int       `json:"conns"` // connections the tracker holds for it
	Gone     bool      `json:"gone"`  // its stats stopped: its connections count as offline
}

// New returns a Tracker fed by hand (ObservePresence, ObserveStats).
func New(cfg Config) *Tracker {
	t := &Tracker{
		missed:   cfg.Missed,
		interval: cfg.DefaultInterval,
		forget:   cfg.Forget,
		now:      cfg.Now,
		log:      cfg.Logger,
		edges:    make(map[string]*edgeState),
		users:    make(map[string][]*connState),
	}
	if t.missed <= 0 {
		t.missed = DefaultMissed
	}
	if t.interval <= 0 {
		t.interval = DefaultInterval
	}
	if t.forget <= 0 {
		t.forget = DefaultForget
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Watch returns a Tracker fed by plex.presence and plex.edge.stats on nc.
// The subscriptions are known to the server when it returns. nc is owned by
// the caller and must outlive the Tracker; Close stops watching.
//
// The tracker sees only what happens after Watch: connections that were
// already online appear when their edge re-announces them (after its next
// bus reconnect) or when they log in again.
func Watch(nc *nats.Conn, cfg Config) (*Tracker, error) {
	if nc == nil {
		return nil, errors.New("presence: nil bus connection")
	}
	t := New(cfg)
	ps, err := bus.SubscribePresence(nc, t.ObservePresence)
	if err != nil {
		return nil, fmt.Errorf("presence: watch: %w", err)
	}
	ss, err := bus.SubscribeEdgeStats(nc, t.ObserveStats)
	if err != nil {
		_ = ps.Unsubscribe()
		return nil, fmt.Errorf("presence: watch: %w", err)
	}
	// An edge's reconnect re-announces every connection at once: leave
	// room for a large burst rather than drop events as a slow consumer.
	for _, s := range []*nats.Subscription{ps, ss} {
		if err := s.SetPendingLimits(1<<20, 256<<20); err != nil {
			return nil, errors.Join(fmt.Errorf("presence: watch: %w", err), ps.Unsubscribe(), ss.Unsubscribe())
		}
	}
	t.subs = []*nats.Subscription{ps, ss}
	if err := nc.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("presence: watch: %w", err), ps.Unsubscribe(), ss.Unsubscribe())
	}
	return t, nil
}

// Close stops watching; later events are ignored, and queries answer from
// what was seen. It is idempotent.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		var errs []error
		for _, s := range t.subs {
			if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			t.closeErr = fmt.Errorf("presence: close: %w", err)
		}
	})
	return t.closeErr
}

// Dropped is how many events the bus dropped because the tracker fell
// behind (nats.go slow consumer). Non-zero means the view may be wrong
// until the affected edges re-announce.
func (t *Tracker) Dropped() int {
	n := 0
	for _, s := range t.subs {
		if d, err := s.Dropped(); err == nil {
			n += d
		}
	}
	return n
}

// ObservePresence applies one presence event. Events without a uid, edge
// or connection id are ignored.
func (t *Tracker) ObservePresence(p bus.Presence) {
	if p.UID == "" || p.Edge == "" || p.Conn == "" {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	e := t.edgeLocked(p.Edge, now)
	if !p.Online {
		if c := e.conns[p.Conn]; c != nil {
			t.removeLocked(e, c)
		}
		e.ended[p.Conn] = now
		return
	}
	if !e.started.IsZero() && p.At.Before(e.started) {
		return // from an earlier process of this edge id: it has ended
	}
	if _, ended := e.ended[p.Conn]; ended {
		if p.Resync {
			return // a re-announcement that raced with the connection's end
		}
		delete(e.ended, p.Conn) // a new login reusing the id: a restarted edge
	}
	if c := e.conns[p.Conn]; c != nil {
		if c.uid == p.UID {
			c.at = p.At
			return
		}
		t.removeLocked(e, c) // the id now names another user's connection
	}
	c := &connState{
		uid:  p.UID,
		info: bus.ConnInfo{ID: p.Conn, Edge: p.Edge, Remote: p.Remote, Since: p.At},
		at:   p.At,
	}
	e.conns[p.Conn] = c
	t.users[p.UID] = append(t.users[p.UID], c)
}

// ObserveStats applies one edge stats message: the edge is alive, and if
// it restarted, the connections of its previous process are offline.
func (t *Tracker) ObserveStats(s bus.EdgeStats) {
	if s.ID == "" {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	e := t.edgeLocked(s.ID, now)
	if !s.Started.IsZero() && !s.Started.Equal(e.started) {
		if !e.started.IsZero() {
			t.log.Info("edge restarted: its earlier connections are offline", "edge", s.ID,
				"started", s.Started, "previous", e.started)
		}
		e.started = s.Started
		clear(e.ended) // a new process numbers its connections from 1 again
		for _, c := range e.conns {
			if c.at.Before(s.Started) {
				t.removeLocked(e, c)
			}
		}
	}
	if e.gone {
		t.log.Info("edge back: stats resumed", "edge", s.ID, "conns", len(e.conns))
		e.gone = false
	} else if !e.statsSeen {
		t.log.Info("edge joined", "edge", s.ID, "addr", s.Addr)
	}
	e.addr, e.seen, e.ttl, e.statsSeen = s.Addr, now, s.TTL(t.interval, t.missed), true
	for id, at := range e.ended {
		if now.Sub(at) > endedMemory {
			delete(e.ended, id)
		}
	}
	if now.Sub(t.lastSweep) >= t.interval {
		t.sweepLocked(now)
	}
}

// edgeLocked returns the edge's entry, creating one that is alive as of now.
func (t *Tracker) edgeLocked(id string, now time.Time) *edgeState {
	e := t.edges[id]
	if e == nil {
		e = &edgeState{
			id: id, seen: now, ttl: t.interval * time.Duration(t.missed),
			conns: make(map[string]*connState), ended: make(map[string]time.Time),
		}
		t.edges[id] = e
	}
	return e
}

// removeLocked forgets one connection.
func (t *Tracker) removeLocked(e *edgeState, c *connState) {
	delete(e.conns, c.info.ID)
	list := t.users[c.uid]
	for i, x := range list {
		if x == c {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(t.users, c.uid)
	} else {
		t.users[c.uid] = list
	}
}

// sweepLocked logs edges that went away and drops those gone for longer
// than Forget, with their connections.
func (t *Tracker) sweepLocked(now time.Time) {
	t.lastSweep = now
	for id, e := range t.edges {
		if !e.expired(now) {
			continue
		}
		if !e.gone {
			e.gone = true
			t.log.Info("edge gone: no stats for its missed intervals, its connections are offline",
				"edge", id, "conns", len(e.conns), "last_seen", e.seen)
		}
		if now.Sub(e.seen) > t.forget {
			for _, c := range e.conns {
				t.removeLocked(e, c)
			}
			delete(t.edges, id)
			t.log.Info("edge forgotten", "edge", id)
		}
	}
}

// Sweep logs edges that have gone and forgets those gone for longer than
// Forget. Stats messages sweep on their own at most every DefaultInterval;
// call Sweep to free memory when no stats arrive at all.
func (t *Tracker) Sweep() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
}

func (e *edgeState) expired(now time.Time) bool {
	return now.Sub(e.seen) > e.ttl
}

// liveLocked reports whether c counts as online now.
func (t *Tracker) liveLocked(c *connState, now time.Time) bool {
	e := t.edges[c.info.Edge]
	return e != nil && !e.expired(now)
}

// Online reports whether uid has a connection on a live edge.
func (t *Tracker) Online(uid string) bool {
	now := t.now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, c := range t.users[uid] {
		if t.liveLocked(c, now) {
			return true
		}
	}
	return false
}

// Conns returns uid's connections on live edges, sorted by edge and id.
func (t *Tracker) Conns(uid string) []bus.ConnInfo {
	now := t.now()
	t.mu.RLock()
	var out []bus.ConnInfo
	for _, c := range t.users[uid] {
		if t.liveLocked(c, now) {
			out = append(out, c.info)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b bus.ConnInfo) int {
		return cmp.Or(cmp.Compare(a.Edge, b.Edge), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Count returns how many users are online and how many connections they
// have, on live edges. It walks every user: O(users).
func (t *Tracker) Count() (users, conns int) {
	now := t.now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	live := make(map[string]bool, len(t.edges))
	for id, e := range t.edges {
		live[id] = !e.expired(now)
	}
	for _, list := range t.users {
		n := 0
		for _, c := range list {
			if live[c.info.Edge] {
				n++
			}
		}
		if n > 0 {
			users++
			conns += n
		}
	}
	return users, conns
}

// Edges lists the edges the tracker knows, gone ones included, by id.
func (t *Tracker) Edges() []EdgeInfo {
	now := t.now()
	t.mu.RLock()
	out := make([]EdgeInfo, 0, len(t.edges))
	for _, e := range t.edges {
		out = append(out, EdgeInfo{
			ID: e.id, Addr: e.addr, Started: e.started, LastSeen: e.seen,
			Conns: len(e.conns), Gone: e.expired(now),
		})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b EdgeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
