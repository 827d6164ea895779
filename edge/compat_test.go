package edge

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"testing"
	"time"

	"github.com/plexbus/plex/wire"
)

// originalMessage is the original framework's pack.Message: no omitempty,
// encoded with encoding/json, framed with binary.Write big-endian.
type originalMessage struct {
	Seq  int64  `json:"seq"`
	URI  string `json:"uri"`
	Body string `json:"body"`
}

func originalPack(t *testing.T, m originalMessage) []byte {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.BigEndian, uint32(len(data))); err != nil {
		t.Fatal(err)
	}
	buf.Write(data)
	return buf.Bytes()
}

func originalUnpack(t *testing.T, c net.Conn) originalMessage {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		head := make([]byte, 4)
		if _, err := io.ReadFull(c, head); err != nil {
			t.Fatalf("read head: %v", err)
		}
		n := binary.BigEndian.Uint32(head)
		if n == 0 {
			continue
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c, data); err != nil {
			t.Fatalf("read body: %v", err)
		}
		var m originalMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("unmarshal %q: %v", data, err)
		}
		return m
	}
}

// TestOriginalClient speaks exactly as the original framework's clients do.
func TestOriginalClient(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{InnerPassword: "plex-inner"})

		dev, err := net.Dial("tcp", e.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		if _, err := dev.Write(originalPack(t, originalMessage{URI: "/auth/server", Body: "uid:1"})); err != nil {
			t.Fatal(err)
		}
		if m := originalUnpack(t, dev); m.URI != "/auth/success" {
			t.Fatalf("got %+v", m)
		}
		if _, err := dev.Write(originalPack(t, originalMessage{URI: "/heartbeat"})); err != nil {
			t.Fatal(err)
		}
		if m := originalUnpack(t, dev); m.URI != "/heartbeat" {
			t.Fatalf("got %+v", m)
		}

		// The original push client: inner login, then /logic/send/msg.
		pusher, err := net.Dial("tcp", e.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer pusher.Close()
		if _, err := pusher.Write(originalPack(t, originalMessage{URI: "/inner/auth/server", Body: "plex-inner"})); err != nil {
			t.Fatal(err)
		}
		if m := originalUnpack(t, pusher); m.URI != "/auth/success" {
			t.Fatalf("inner login: %+v", m)
		}
		send, _ := json.Marshal(map[string]string{"uid": "1", "body": `{"logic": 1}`, "uri": "/logic/test/1"})
		if _, err := pusher.Write(originalPack(t, originalMessage{Seq: 5, URI: "/logic/send/msg", Body: string(send)})); err != nil {
			t.Fatal(err)
		}
		m := originalUnpack(t, dev)
		if m.URI != "/logic/test/1" || m.Body != `{"logic": 1}` {
			t.Fatalf("pushed %+v", m)
		}
	})
}

func TestInnerPushGuarded(t *testing.T) {
	st := newStack(t)
	t.Run("disabled by default", func(t *testing.T) {
		e := st.edge(Config{})
		c := dial(t, e)
		c.send(wire.URIInnerAuth, "plex-inner")
		if m := c.expect(wire.URIAuthFailed); m.Body != "inner push disabled" {
			t.Fatalf("reason %q", m.Body)
		}
		c.expectClosed(2 * time.Second)
	})
	t.Run("wrong password", func(t *testing.T) {
		e := st.edge(Config{InnerPassword: "s3cret"})
		c := dial(t, e)
		c.send(wire.URIInnerAuth, "plex-inner")
		c.expect(wire.URIAuthFailed)
		c.expectClosed(2 * time.Second)
	})
	t.Run("invalid uid or reserved uri not published", func(t *testing.T) {
		e := st.edge(Config{InnerPassword: "s3cret"})
		user := dial(t, e)
		user.login("9")
		c := dial(t, e)
		c.send(wire.URIInnerAuth, "s3cret")
		c.expect(wire.URIAuthSuccess)
		c.send(wire.URIInnerSend, `{"uid":"a.b","body":"x"}`)
		c.send(wire.URIInnerSend, `not json`)
		c.send(wire.URIInnerSend, `{"uid":"9","uri":"/auth/failed","body":"fake"}`)
		c.send(wire.URIInnerSend, `{"uid":"9","body":"real"}`)
		if m := user.expect(wire.URIPush); m.Body != "real" {
			t.Fatalf("got %+v", m)
		}
		// The pusher's connection survives bad input.
		c.send(wire.URIHeartbeat, "")
		c.expect(wire.URIHeartbeat)
	})
}
