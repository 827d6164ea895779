package main

import (
	"fmt"
	"strconv"
	"time"
)

// durationValue is a flag that takes Go durations (90s, 2m) or plain
// seconds (90), as the original framework's config did.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return "0s"
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*v.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 30s or a number of seconds")
	}
	*v.d = d
	return nil
}

func (v durationValue) Type() string { return "duration" }

// dur registers a duration flag with a default.
func dur(p *time.Duration, def time.Duration) durationValue {
	*p = def
	return durationValue{d: p}
}
