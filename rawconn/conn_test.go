package rawconn_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plexbus/plex/rawconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair dials a listener on loopback and returns both ends.
func pair(t *testing.T) (client net.Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = rawconn.Dialer{Timeout: time.Second}.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestRoundTrip(t *testing.T) {
	c, s := pair(t)
	if _, ok := c.(*rawconn.Conn); !ok {
		t.Skipf("raw connections are Linux only; got %T", c)
	}
	if n, err := c.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	buf := make([]byte, 16)
	if _, err := io.ReadFull(s, buf[:4]); err != nil || string(buf[:4]) != "ping" {
		t.Fatalf("server read %q %v", buf[:4], err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	// Read blocks in the netpoller until the bytes arrive.
	if _, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("client read %q %v", buf[:4], err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d %v", n, err)
	}
	s.Close()
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("read after peer close: %v, want io.EOF", err)
	}
}

// A write larger than the socket buffers completes once the peer reads.
func TestLargeWriteWaitsForPeer(t *testing.T) {
	c, s := pair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond) // let the writer hit EAGAIN first
		got, _ = io.ReadAll(io.LimitReader(s, int64(len(want))))
	}()
	n, err := c.Write(want)
	wg.Wait()
	if n != len(want) || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes, not what was written", len(got))
	}
}

func TestConcurrentWritersKeepWholeWrites(t *testing.T) {
	c, s := pair(t)
	const writers, each, size = 4, 200, 1000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte('a' + w)}, size)
			for i := 0; i < each; i++ {
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	buf := make([]byte, writers*each*size)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := 0; i < len(buf); i += size {
		if !bytes.Equal(buf[i:i+size], bytes.Repeat(buf[i:i+1], size)) {
			t.Fatalf("write at %d interleaved with another", i)
		}
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %v does not name the read", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed conn: %v", err)
	}
}

func TestWriteToResetPeer(t *testing.T) {
	c, s := pair(t)
	s.(*net.TCPConn).SetLinger(0)
	s.Close() // RST
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write([]byte("hello"))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset peer kept succeeding")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("error %v is not a write OpError", err)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := (rawconn.Dialer{Timeout: time.Second}).Dial("tcp", addr); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}
