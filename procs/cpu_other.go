//go:build !unix

package procs

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
