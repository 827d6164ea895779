package bus

import (
	"testing"
	"time"
)

func TestEdgeStatsTTL(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want time.Duration
	}{
		{0, 3 * 7 * time.Second},                                    // no interval_ms: the default
		{200, 600 * time.Millisecond},                               // the advertised interval
		{int64(time.Hour / time.Millisecond), 3 * MaxStatsInterval}, // capped
	} {
		if got := (EdgeStats{IntervalMS: tc.ms}).TTL(7*time.Second, 3); got != tc.want {
			t.Errorf("interval_ms %d: TTL %s, want %s", tc.ms, got, tc.want)
		}
	}
}
