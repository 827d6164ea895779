package authsvc

import (
	"sync/atomic"
	"time"
)

// Results of one auth request, passed to Config.OnResult and usable as a
// metric label.
const (
	ResultOK         = "ok"          // accepted with a valid uid
	ResultRefused    = "refused"     // the verifier refused
	ResultError      = "error"       // the verifier failed, panicked or returned an invalid uid
	ResultTimeout    = "timeout"     // the verifier did not finish within VerifyTimeout
	ResultBadRequest = "bad_request" // the request was not an AuthRequest
)

// Results lists every result, so a metric can be created at zero per label.
func Results() []string {
	return []string{ResultOK, ResultRefused, ResultError, ResultTimeout, ResultBadRequest}
}

// Stats are the service's counters since New. They also appear in the micro
// STATS response of the endpoint (nats micro stats plex-auth), where the
// endpoint's own processing time only covers the hand-off to the pool.
type Stats struct {
	OK          uint64 `json:"ok"`
	Refused     uint64 `json:"refused"`
	Errors      uint64 `json:"errors"`
	Timeouts    uint64 `json:"timeouts"`
	BadRequests uint64 `json:"bad_requests"`
	InFlight    int    `json:"in_flight"` // verifications running now
}

type counters struct {
	ok, refused, errors, timeouts, badRequests atomic.Uint64
}

func (c *counters) add(result string) {
	switch result {
	case ResultOK:
		c.ok.Add(1)
	case ResultRefused:
		c.refused.Add(1)
	case ResultError:
		c.errors.Add(1)
	case ResultTimeout:
		c.timeouts.Add(1)
	case ResultBadRequest:
		c.badRequests.Add(1)
	}
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		OK:          s.counts.ok.Load(),
		Refused:     s.counts.refused.Load(),
		Errors:      s.counts.errors.Load(),
		Timeouts:    s.counts.timeouts.Load(),
		BadRequests: s.counts.badRequests.Load(),
		InFlight:    s.pool.Running(),
	}
}

func (s *Service) record(result string, start time.Time) {
	s.counts.add(result)
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(result, time.Since(start))
	}
}
