//go:build linux

package rawsys_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/rawsys"
)

func TestEpoll(t *testing.T) {
	ep, err := rawsys.NewEpoll()
	if err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer rawsys.Close(fds[0])
	defer rawsys.Close(fds[1])
	if err := ep.Ctl(unix.EPOLL_CTL_ADD, int32(fds[0]), unix.EPOLLIN); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 8)
	type result struct {
		n   int
		err error
	}
	wait := func() chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := ep.Wait(events)
			ch <- result{n, err}
		}()
		return ch
	}
	get := func(ch chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not return")
			return result{}
		}
	}

	// Nothing ready: Wait parks until the pipe is written.
	ch := wait()
	select {
	case r := <-ch:
		t.Fatalf("Wait returned %+v with nothing ready", r)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := rawsys.Write(fds[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	if r := get(ch); r.err != nil || r.n != 1 || events[0].Fd != int32(fds[0]) || events[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("Wait: %+v, event %+v", r, events[0])
	}
	var b [8]byte
	_, _ = rawsys.Read(fds[0], b[:])

	// Wake ends a parked Wait with no events of its own, and is consumed.
	ch = wait()
	time.Sleep(20 * time.Millisecond)
	ep.Wake()
	if r := get(ch); r.err != nil || r.n != 0 {
		t.Fatalf("Wait after Wake: %+v", r)
	}
	// A removed fd reports nothing.
	if err := ep.Ctl(unix.EPOLL_CTL_DEL, int32(fds[0]), 0); err != nil {
		t.Fatal(err)
	}
	_, _ = rawsys.Write(fds[1], []byte("y"))
	ch = wait()
	select {
	case r := <-ch:
		t.Fatalf("Wait returned %+v for a removed fd", r)
	case <-time.After(50 * time.Millisecond):
	}
	// Close ends the parked Wait with os.ErrClosed.
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if r := get(ch); !errors.Is(r.err, os.ErrClosed) {
		t.Fatalf("Wait on a closed Epoll: %+v, want os.ErrClosed", r)
	}
}
