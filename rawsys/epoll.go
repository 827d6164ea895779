//go:build linux

package rawsys

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Epoll is an epoll instance that waits as a goroutine: its fd sits in Go's
// own netpoller, so Wait parks the calling goroutine until an event is
// ready, where a thread blocked in epoll_wait made the runtime hand its P
// around and kept sysmon busy. Wake ends a Wait from any goroutine.
// One goroutine calls Wait; Ctl and Wake may be called from any.
type Epoll struct {
	fd   int
	wake int // eventfd, in the interest list
	file *os.File
	rc   syscall.RawConn

	// Wait's state, bound once so that Wait allocates nothing.
	events  []unix.EpollEvent
	n       int
	err     error
	harvest func(uintptr) bool
}

// NewEpoll makes an epoll instance with its wake-up eventfd.
func NewEpoll() (*Epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := errors.Join(
		EpollCtl(fd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}),
		unix.SetNonblock(fd, true),
	); err != nil {
		Close(fd)
		Close(wake)
		return nil, fmt.Errorf("epoll setup: %w", err)
	}
	e := &Epoll{fd: fd, wake: wake, file: os.NewFile(uintptr(fd), "epoll")}
	if e.rc, err = e.file.SyscallConn(); err != nil {
		e.file.Close()
		Close(wake)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	e.harvest = e.doHarvest
	return e, nil
}

// Ctl adds (EPOLL_CTL_ADD), changes (MOD) or removes (DEL) fd's interest.
func (e *Epoll) Ctl(op int, fd int32, events uint32) error {
	return EpollCtl(e.fd, op, int(fd), &unix.EpollEvent{Events: events, Fd: fd})
}

// Wait parks until an event is ready or Wake is called, and returns the
// ready events in events[:n], without the wake-up's own (so n may be 0).
// It returns an error wrapping os.ErrClosed once the Epoll is closed.
func (e *Epoll) Wait(events []unix.EpollEvent) (n int, err error) {
	e.events = events
	rerr := e.rc.Read(e.harvest)
	n, err = e.n, e.err
	e.events = nil
	if rerr != nil {
		// The file's RawConn fails only once the Epoll is closed, with the
		// poller's own "use of closed file" error: name it os.ErrClosed.
		return 0, fmt.Errorf("epoll wait: %w (%v)", os.ErrClosed, rerr)
	}
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		if events[i].Fd == int32(e.wake) {
			var b [8]byte
			_, _ = Read(e.wake, b[:])
			n--
			events[i] = events[n]
			break
		}
	}
	return n, nil
}

// doHarvest runs under the netpoller; false means "park until readable".
func (e *Epoll) doHarvest(uintptr) bool {
	e.n, e.err = EpollWait(e.fd, e.events)
	if errors.Is(e.err, unix.EINTR) {
		e.n, e.err = 0, nil
	}
	return e.n > 0 || e.err != nil
}

// Wake makes the current or next Wait return.
func (e *Epoll) Wake() {
	one := [8]byte{1}
	_, _ = Write(e.wake, one[:])
}

// Close frees the instance; a Wait in progress returns an error.
func (e *Epoll) Close() error {
	Close(e.wake)
	return e.file.Close()
}
