//go:build !linux

package bench

import (
	"context"
	"time"
)

const rawSupported = false

type rawPool struct{}

func newRawPool(*Pool) *rawPool                    { return nil }
func (*rawPool) connect(context.Context, int, int) {}
func (*rawPool) heartbeats(time.Duration)          {}
func (*rawPool) close()                            {}
