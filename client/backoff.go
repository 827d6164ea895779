package client

import (
	"math"
	"time"
)

// delay is the n-th backoff delay in a row (n from 0); u in [0, 1) picks
// the point in the jitter range.
func (b Backoff) delay(n int, u float64) time.Duration {
	d := float64(b.Base) * math.Pow(b.Factor, float64(n))
	if math.IsNaN(d) || d > float64(b.Max) {
		d = float64(b.Max)
	}
	d *= 1 - b.Jitter*u
	return time.Duration(d)
}

// spread is the delay before reconnecting after /reconnect: no backoff,
// only enough jitter that a draining edge's clients do not all reach the
// next edge in the same millisecond.
func (b Backoff) spread(u float64) time.Duration {
	return time.Duration(float64(b.Base) * b.Jitter * u)
}

// merge applies a host reply's backoff, field by field: the operator's
// values win over the app's, so a fleet can be slowed down in an incident.
// Values that would make an invalid policy are ignored.
func (b Backoff) merge(h *hostBackoff) Backoff {
	if h == nil {
		return b
	}
	out := b
	if h.Base != nil && *h.Base > 0 {
		out.Base = seconds(*h.Base)
	}
	if h.Factor != nil && *h.Factor >= 1 {
		out.Factor = *h.Factor
	}
	if h.Jitter != nil && *h.Jitter >= 0 && *h.Jitter <= 1 {
		out.Jitter = *h.Jitter
	}
	if h.Max != nil && *h.Max > 0 {
		out.Max = seconds(*h.Max)
	}
	if out.Max < out.Base {
		return b
	}
	return out
}

// seconds converts a JSON number of seconds, capped at a day.
func seconds(s float64) time.Duration {
	return time.Duration(math.Min(s, 86400) * float64(time.Second))
}
