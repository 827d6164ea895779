package edge

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// ipLimiter holds a token bucket of failed logins per remote IP, so one
// address hammering the edge with bad tokens is turned away at accept
// without costing the auth service anything. A connection reserves a token
// while it tries to log in, so an address also has at most burst logins in
// progress at once. Its map is bounded.
type ipLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int

	mu sync.Mutex
	m  map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxTrackedIPs = 100_000

func newIPLimiter(rate float64, burst int) *ipLimiter {
	if rate <= 0 {
		return nil
	}
	return &ipLimiter{rate: rate, burst: float64(burst), max: maxTrackedIPs, m: make(map[netip.Addr]*bucket)}
}

func remoteIP(a net.Addr) (netip.Addr, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return ip.Unmap(), ok
	}
	return netip.Addr{}, false
}

func (b *bucket) refill(now time.Time, l *ipLimiter) {
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
}

// take reserves one token of ip's bucket for a connection about to try a
// login; false means the address has no failures left to spend. The token
// is refunded when the login succeeds, spent when it fails, so concurrent
// bad logins cannot all slip past one remaining token.
func (l *ipLimiter) take(ip netip.Addr, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= l.max {
			l.sweepLocked(now)
			if len(l.m) >= l.max {
				return true // under a flood from this many addresses, stop tracking new ones
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[ip] = b
	}
	b.refill(now, l)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund returns a token taken for a login that did not fail.
func (l *ipLimiter) refund(ip netip.Addr, now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.m[ip]; b != nil {
		b.refill(now, l)
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// sweep forgets addresses whose bucket is full again.
func (l *ipLimiter) sweep(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sweepLocked(now)
	l.mu.Unlock()
}

func (l *ipLimiter) sweepLocked(now time.Time) {
	for ip, b := range l.m {
		if b.refill(now, l); b.tokens >= l.burst {
			delete(l.m, ip)
		}
	}
}

// frameBucket limits one connection's client-to-edge frames. It is owned
// by the connection's read path, so it needs no lock, and it is small.
type frameBucket struct {
	tokens float32
	last   int64 // unix nanos
}

// allow spends a token, refilling at rate per second up to burst.
func (f *frameBucket) allow(now int64, rate, burst float32) bool {
	if f.last == 0 {
		f.tokens, f.last = burst, now
	}
	f.tokens = min(burst, f.tokens+float32(now-f.last)/1e9*rate)
	f.last = now
	if f.tokens < 1 {
		return false
	}
	f.tokens--
	return true
}
