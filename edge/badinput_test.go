package edge

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plexbus/plex/wire"
)

func header(n uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, n)
	return b
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		reg := prometheus.NewRegistry()
		e := st.edge(Config{AuthTimeout: 500 * time.Millisecond, Registerer: reg})
		good := dial(t, e)
		good.login("good")

		cases := map[string]struct {
			login bool
			bytes []byte
		}{
			"huge length prefix before auth": {bytes: header(0x7fffffff)},
			"huge length prefix after auth":  {login: true, bytes: header(wire.DefaultMaxFrameSize + 1)},
			"login frame above auth limit":   {bytes: header(DefaultAuthFrameSize + 1)},
			"not json":                       {bytes: append(header(5), "hello"...)},
			"json array":                     {login: true, bytes: append(header(2), "[]"...)},
			"wrong field type":               {login: true, bytes: append(header(11), `{"seq":"1"}`...)},
			"cut json":                       {login: true, bytes: append(header(10), `{"seq":"1"}`[:10]...)},
			"invalid utf8 and garbage":       {bytes: append(header(4), 0xff, 0xfe, 0x00, 0x01)},
		}
		i := 0
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				c := dial(t, e)
				if tc.login {
					c.login("bad" + strconv.Itoa(i))
				}
				i++
				start := time.Now()
				if _, err := c.c.Write(tc.bytes); err != nil {
					t.Fatal(err)
				}
				c.expectClosed(2 * time.Second)
				if d := time.Since(start); d > 400*time.Millisecond {
					t.Fatalf("closed after %s: not at once", d)
				}
				_ = st.nc.Publish("plex.user.good", []byte(name))
				if m := good.expect(wire.URIPush); m.Body != name {
					t.Fatalf("good client got %+v", m)
				}
			})
		}
		if n := testutil.ToFloat64(e.metrics.badFrames.WithLabelValues("too_large")); n < 3 {
			t.Errorf("too_large counted %v, want 3", n)
		}
		if n := testutil.ToFloat64(e.metrics.badFrames.WithLabelValues("bad_payload")); n < 4 {
			t.Errorf("bad_payload counted %v, want 4", n)
		}
		waitFor(t, 2*time.Second, "bad connections gone", func() bool { return e.NumConns() == 1 })
	})
}

func TestFrameCutShort(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{AuthTimeout: 300 * time.Millisecond})
		frame := wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: wire.URIAuth, Body: "uid:cut"})

		// Half a frame, then the client hangs up.
		c := dial(t, e)
		_, _ = c.c.Write(frame[:len(frame)/2])
		c.c.Close()
		// Half a frame, then silence: closed at the auth deadline.
		s := dial(t, e)
		_, _ = s.c.Write(frame[:len(frame)/2])
		s.expect(wire.URIAuthFailed)
		s.expectClosed(2 * time.Second)
		waitFor(t, 2*time.Second, "both gone", func() bool { return e.NumConns() == 0 })
	})
}

func TestSlowConsumerDisconnected(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		reg := prometheus.NewRegistry()
		e := st.edge(Config{SendQueueBytes: 128 << 10, WriteTimeout: 2 * time.Second, Registerer: reg})
		stuck := dial(t, e)
		stuck.login("stuck")
		good := dial(t, e)
		good.login("good")

		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		body := bytes.Repeat([]byte("x"), 4096)
		goodGot := make(chan int, 1)
		go func() { // the good client reads all its pushes meanwhile
			n := 0
			for n < 200 {
				m, err := good.read(10 * time.Second)
				if err != nil {
					break
				}
				if m.Body != strconv.Itoa(n) {
					break // out of order or lost
				}
				n++
			}
			goodGot <- n
		}()
		// Push ~80 MB at the stuck client; the kernel takes a few MB, the edge
		// queues at most 128 KiB more, then it must cut the client off.
		sent := 0
		for i := 0; i < 20000 && e.NumUsers() == 2; i++ {
			_ = st.nc.Publish("plex.user.stuck", body)
			if i%100 == 0 {
				_ = st.nc.Publish("plex.user.good", []byte(strconv.Itoa(sent)))
				sent++
			}
		}
		waitFor(t, 10*time.Second, "stuck client dropped", func() bool { return e.NumUsers() == 1 })
		for ; sent < 200; sent++ {
			_ = st.nc.Publish("plex.user.good", []byte(strconv.Itoa(sent)))
		}
		if n := <-goodGot; n != 200 {
			t.Fatalf("good client got %d of 200 in order", n)
		}
		if n := testutil.ToFloat64(e.metrics.disconnects.WithLabelValues(string(ReasonSlow))); n != 1 {
			t.Fatalf("slow_consumer disconnects %v", n)
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 32<<20 {
			t.Fatalf("heap grew by %d MiB while a client was stuck", grow>>20)
		}
	})
}

// TestFramesSplitAnywhere writes frames one byte at a time, several frames
// in one write, and no-op frames in between.
func TestFramesSplitAnywhere(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{ClientFrameRate: -1})
		c := dial(t, e)
		var stream []byte
		stream = append(stream, 0, 0, 0, 0)
		stream = wire.AppendFrame(stream, wire.BigEndian, &wire.Message{URI: wire.URIAuth, Body: "uid:split"})
		stream = append(stream, 0, 0, 0, 0)
		stream = wire.AppendFrame(stream, wire.BigEndian, &wire.Message{URI: wire.URIHeartbeat})
		for i := range stream {
			if _, err := c.c.Write(stream[i : i+1]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		c.expect(wire.URIAuthSuccess)
		c.expect(wire.URIHeartbeat)
		var burst []byte
		for i := 0; i < 50; i++ {
			burst = wire.AppendFrame(burst, wire.BigEndian, &wire.Message{URI: wire.URIHeartbeat})
			burst = append(burst, 0, 0, 0, 0)
		}
		if _, err := c.c.Write(burst); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			c.expect(wire.URIHeartbeat)
		}
		// A large application frame cut in three writes is read whole.
		big := wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: "/app", Body: string(bytes.Repeat([]byte("b"), 30000))})
		big = wire.AppendFrame(big, wire.BigEndian, &wire.Message{URI: wire.URIHeartbeat})
		for _, part := range [][]byte{big[:2], big[2:20000], big[20000:]} {
			if _, err := c.c.Write(part); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.expect(wire.URIHeartbeat)
	})
}

// TestWriteDeadline: a client that stops reading, with a send queue too
// large to overflow, is closed once its socket has taken nothing for
// WriteTimeout.
func TestWriteDeadline(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		reg := prometheus.NewRegistry()
		e := st.edge(Config{SendQueueBytes: 64 << 20, WriteTimeout: 300 * time.Millisecond, Registerer: reg})
		stuck := dial(t, e)
		stuck.login("stuck")
		body := bytes.Repeat([]byte("y"), 32<<10)
		start := time.Now()
		for e.NumUsers() == 1 && time.Since(start) < 10*time.Second {
			for i := 0; i < 64; i++ {
				_ = st.nc.Publish("plex.user.stuck", body)
			}
			_ = st.nc.Flush()
			time.Sleep(5 * time.Millisecond)
		}
		waitFor(t, 5*time.Second, "stalled client closed", func() bool { return e.NumUsers() == 0 })
		if n := testutil.ToFloat64(e.metrics.disconnects.WithLabelValues(string(ReasonSlow))); n != 1 {
			t.Fatalf("slow_consumer disconnects %v", n)
		}
	})
}
