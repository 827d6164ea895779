package authsvc

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestPool(t *testing.T) {
	p := newPool(2)
	release := make(chan struct{})
	var ran atomic.Int32
	for range 2 {
		if !p.Go(func() { <-release; ran.Add(1) }) {
			t.Fatal("refused while open")
		}
	}
	if p.Running() != 2 {
		t.Fatalf("running %d", p.Running())
	}
	third := make(chan bool)
	go func() { third <- p.Go(func() { ran.Add(1) }) }()
	select {
	case <-third:
		t.Fatal("Go did not block on a full pool")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if !<-third {
		t.Fatal("third refused")
	}
	p.Close()
	if ran.Load() != 3 || p.Running() != 0 {
		t.Fatalf("ran %d, running %d after Close", ran.Load(), p.Running())
	}
	if p.Go(func() { t.Error("ran after Close") }) {
		t.Fatal("accepted after Close")
	}
	p.Close() // idempotent
}
