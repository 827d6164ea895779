//go:build linux

package edge

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestAcceptedSocketsNoDelay: pushes must not wait for Nagle; the epoll
// path relies on accepted sockets inheriting TCP_NODELAY from the listener.
func TestAcceptedSocketsNoDelay(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{})
	c := dial(t, e)
	c.login("nd")
	var fd int32 = -1
	for _, cc := range e.snapshot() {
		fd = cc.fd
	}
	if fd < 0 {
		t.Fatal("no epoll connection")
	}
	v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || v != 1 {
		t.Fatalf("TCP_NODELAY = %d, %v", v, err)
	}
}
