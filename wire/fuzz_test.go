package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary payloads to the decoder: it must never panic,
// must agree with encoding/json, and what it accepts must survive a
// round trip through the encoder.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"seq":1,"uri":"/auth/server","body":"42"}`,
		`{"uri":"/heartbeat"}`,
		`{}`, `null`, `[]`, `{"x":[{"y":null}],"body":"\ud83d\ude00"}`,
		`{"seq":9223372036854775807}`, `{"seq":-9223372036854775809}`,
		`{"body":"\u2028\"\\\/\b\f\n\r\t"}`, "{\"body\":\"\xff\"}", `{"URI":"/x","ſeq":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkAgainstStdlib(t, payload)
		var m Message
		if DecodeInto(payload, &m) != nil {
			return
		}
		frame := AppendFrame(nil, BigEndian, &m)
		var back Message
		if err := DecodeInto(frame[HeaderSize:], &back); err != nil {
			t.Fatalf("re-encoded %+v as %q, which fails: %v", m, frame, err)
		}
		if back != m {
			t.Fatalf("round trip %+v -> %+v", m, back)
		}
	})
}

// FuzzReader feeds arbitrary streams to the frame reader: no panic, frames
// never exceed the limit, errors are the typed ones, and ParseFrame over the
// whole buffer sees the same frames.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'}, uint16(64), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(64), false)
	f.Add([]byte{2, 0, 0, 0, '{', '}', 0, 0, 0, 0}, uint16(8), true)
	f.Fuzz(func(t *testing.T, stream []byte, max uint16, little bool) {
		order := BigEndian
		if little {
			order = LittleEndian
		}
		limit := int(max) + 1
		r := NewReader(bytes.NewReader(stream), order, limit)
		var viaReader [][]byte
		var rerr error
		for {
			p, err := r.ReadFrame()
			if err != nil {
				rerr = err
				break
			}
			if len(p) == 0 || len(p) > limit {
				t.Fatalf("frame of %d bytes with limit %d", len(p), limit)
			}
			viaReader = append(viaReader, append([]byte(nil), p...))
		}
		if rerr != io.EOF && !errors.Is(rerr, ErrFrameTooLarge) && !errors.Is(rerr, ErrTruncated) {
			t.Fatalf("untyped error %v", rerr)
		}
		var viaParse [][]byte
		buf := stream
		for {
			p, n, _, err := ParseFrame(buf, order, limit)
			if err != nil || n == 0 {
				break
			}
			buf = buf[n:]
			if p != nil {
				viaParse = append(viaParse, p)
			}
		}
		if len(viaParse) != len(viaReader) {
			t.Fatalf("reader saw %d frames, ParseFrame %d", len(viaReader), len(viaParse))
		}
		for i := range viaParse {
			if !bytes.Equal(viaParse[i], viaReader[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}
