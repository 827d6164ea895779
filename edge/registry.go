package edge

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// user is one online uid on this edge: its bus subscription, shared by all
// of its connections here.
type user struct {
	uid   string
	sub   *nats.Subscription
	conns []*conn
}

// registry maps uids to their connections. A map and a mutex until a
// profile asks for shards.
type registry struct {
	mu    sync.RWMutex
	users map[string]*user
	// droppedGone sums the bus messages nats.go dropped (dispatcher queue
	// full) on subscriptions since removed.
	droppedGone int64
}

func newRegistry() *registry { return &registry{users: make(map[string]*user)} }

// add registers c under uid, subscribing the user's subject with subscribe
// when c is the first connection. It refuses a connection that has ended.
// It reports whether a subscription was created.
func (r *registry) add(c *conn, uid string, subscribe func(uid string) (*nats.Subscription, error)) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.ended.Load() {
		return false, errEnded
	}
	u := r.users[uid]
	if u != nil {
		u.conns = append(u.conns, c)
		return false, nil
	}
	sub, err := subscribe(uid)
	if err != nil {
		return false, err
	}
	r.users[uid] = &user{uid: uid, sub: sub, conns: []*conn{c}}
	return true, nil
}

// remove unregisters c (a no-op if it is not registered) and unsubscribes
// the user's subject with its last connection.
func (r *registry) remove(c *conn) {
	r.mu.Lock()
	u := r.users[c.uid]
	if u == nil {
		r.mu.Unlock()
		return
	}
	for i, x := range u.conns {
		if x == c {
			copy(u.conns[i:], u.conns[i+1:])
			u.conns[len(u.conns)-1] = nil
			u.conns = u.conns[:len(u.conns)-1]
			break
		}
	}
	if len(u.conns) == 0 {
		delete(r.users, c.uid)
		if n, err := u.sub.Dropped(); err == nil {
			r.droppedGone += int64(n)
		}
		// Under the lock, so a new login of the same uid cannot hold a second
		// subscription while this one lives (which would deliver twice).
		// UNSUB is only buffered here; it fails only on a closed bus.
		_ = u.sub.Unsubscribe()
	} else if cap(u.conns) > 8 && len(u.conns) < cap(u.conns)/4 {
		u.conns = append([]*conn(nil), u.conns...)
	}
	r.mu.Unlock()
}

// conns appends uid's connections to dst, oldest first.
func (r *registry) conns(uid string, dst []*conn) []*conn {
	r.mu.RLock()
	if u := r.users[uid]; u != nil {
		dst = append(dst, u.conns...)
	}
	r.mu.RUnlock()
	return dst
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users)
}

// all returns every registered connection (for presence resync).
func (r *registry) all() []*conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*conn
	for _, u := range r.users {
		out = append(out, u.conns...)
	}
	return out
}

// dropped is how many bus messages nats.go has dropped on the users'
// subscriptions because a dispatcher queue was full; it only grows.
func (r *registry) dropped() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.droppedGone
	for _, u := range r.users {
		if d, err := u.sub.Dropped(); err == nil {
			n += int64(d)
		}
	}
	return n
}
