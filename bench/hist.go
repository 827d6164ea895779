package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a concurrent latency histogram in microseconds, 1 µs to 60 s
// at three significant figures, sharded to keep readers from contending.
type Latency struct {
	shards [16]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards on separate cache lines
	}
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// NewLatency returns an empty histogram.
func NewLatency() *Latency {
	l := &Latency{}
	for i := range l.shards {
		l.shards[i].h = newHist()
	}
	return l
}

// Record adds one observation to shard (any int; callers pass their id).
func (l *Latency) Record(shard int, d time.Duration) {
	s := &l.shards[uint(shard)%uint(len(l.shards))]
	us := max(d.Microseconds(), 1)
	s.mu.Lock()
	_ = s.h.RecordValue(min(us, 60_000_000))
	s.mu.Unlock()
}

// Merged returns all shards as one histogram.
func (l *Latency) Merged() *hdrhistogram.Histogram {
	out := newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// LatencySummary is a histogram's figures in milliseconds, plus the
// histogram itself (its base64 V2 encoding) so results can be merged.
type LatencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
	Hist  string  `json:"hist,omitempty"`
}

// Summarize computes the figures of h.
func Summarize(h *hdrhistogram.Histogram) LatencySummary {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s := LatencySummary{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
	if enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
		s.Hist = string(enc) // already base64
	}
	return s
}

// MergeSummaries merges the encoded histograms of several results.
func MergeSummaries(parts []LatencySummary) LatencySummary {
	out := newHist()
	for _, p := range parts {
		h, err := hdrhistogram.Decode([]byte(p.Hist))
		if err != nil {
			continue
		}
		out.Merge(h)
	}
	return Summarize(out)
}
