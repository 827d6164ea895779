//go:build linux

package rawsys_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/rawsys"
)

// TestSocketLifecycle drives a connection through every call: socket, bind,
// connect, epoll, accept4, write, read, close.
func TestSocketLifecycle(t *testing.T) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.File() // a dup of the listener's fd, blocking mode cleared below
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lfd := int(f.Fd())
	if err := unix.SetNonblock(lfd, true); err != nil {
		t.Fatal(err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer rawsys.Close(epfd)
	if err := rawsys.EpollCtl(epfd, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rawsys.Accept4(lfd, unix.SOCK_NONBLOCK); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("accept with nothing pending: %v, want EAGAIN", err)
	}

	cfd, err := rawsys.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rawsys.Close(cfd)
	if err := rawsys.SetsockoptInt(cfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := unix.GetsockoptInt(cfd, unix.SOL_SOCKET, unix.SO_REUSEADDR); err != nil || v != 1 {
		t.Fatalf("SO_REUSEADDR reads back %d, %v", v, err)
	}
	src := netip.MustParseAddrPort("127.0.0.2:0")
	if err := rawsys.Bind(cfd, src); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(cfd)
	bound := sa.(*unix.SockaddrInet4)
	if bound.Addr != [4]byte{127, 0, 0, 2} || bound.Port == 0 {
		t.Fatalf("bound to %v:%d", bound.Addr, bound.Port)
	}
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	if err := rawsys.Connect(cfd, dst); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		t.Fatal(err)
	}

	events := make([]unix.EpollEvent, 4)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := rawsys.EpollWait(epfd, events)
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("listener never became readable")
		}
		time.Sleep(time.Millisecond)
	}
	afd, peer, err := rawsys.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer rawsys.Close(afd)
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(bound.Port)); peer != want {
		t.Fatalf("accepted peer %v, want %v", peer, want)
	}

	if n, err := rawsys.Write(cfd, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	buf := make([]byte, 16)
	var got []byte
	for len(got) < 5 && time.Now().Before(deadline) {
		n, err := rawsys.Read(afd, buf)
		if errors.Is(err, unix.EAGAIN) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	if _, err := rawsys.Read(afd, buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read with nothing sent: %v, want EAGAIN", err)
	}
	if n, err := rawsys.Read(afd, nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d %v", n, err)
	}
	if n, err := rawsys.EpollWait(epfd, nil); n != 0 || err != nil {
		t.Fatalf("epoll wait with no room: %d %v", n, err)
	}
}

func TestErrorsAreErrnos(t *testing.T) {
	fd, err := rawsys.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rawsys.Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := rawsys.Close(fd); !errors.Is(err, unix.EBADF) {
		t.Fatalf("second close: %v, want EBADF", err)
	}
	if _, err := rawsys.Write(fd, []byte("x")); !errors.Is(err, unix.EBADF) {
		t.Fatalf("write to a closed fd: %v, want EBADF", err)
	}
	if _, err := rawsys.Socket(-1, unix.SOCK_STREAM, 0); err == nil {
		t.Fatal("socket with a bad domain succeeded")
	}
}
