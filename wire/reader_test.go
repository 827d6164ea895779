package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// headerOnly serves a length prefix and then blocks forever, like a peer
// announcing a huge frame it never sends.
type headerOnly struct {
	hdr  []byte
	read int
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if h.read >= len(h.hdr) {
		return 0, errors.New("reader asked for payload bytes")
	}
	n := copy(p, h.hdr[h.read:])
	h.read += n
	return n, nil
}

func TestReaderRejectsHugeLengthBeforeAllocating(t *testing.T) {
	for _, order := range []Order{BigEndian, LittleEndian} {
		hdr := []byte{0xff, 0xff, 0xff, 0x7f}
		r := NewReader(&headerOnly{hdr: hdr}, order, DefaultMaxFrameSize)
		_, err := r.ReadFrame()
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("%v: err = %v, want ErrFrameTooLarge", order, err)
		}
		if len(r.buf) > readerMinBuf {
			t.Fatalf("%v: reader grew its buffer to %d bytes", order, len(r.buf))
		}
	}
}

func TestReaderTruncated(t *testing.T) {
	frame := AppendFrame(nil, BigEndian, &Message{URI: "/x", Body: "hello"})
	for cut := 1; cut < len(frame); cut++ {
		r := NewReader(bytes.NewReader(frame[:cut]), BigEndian, 0)
		_, err := r.ReadFrame()
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: err = %v", cut, err)
		}
	}
	r := NewReader(bytes.NewReader(nil), BigEndian, 0)
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("empty stream: err = %v, want io.EOF", err)
	}
}

func TestReaderLargeFrames(t *testing.T) {
	// Frames larger than the initial buffer, back to back, little-endian.
	var stream []byte
	var want []Message
	for i, size := range []int{10, readerMinBuf, 3 * readerMinBuf, DefaultMaxFrameSize - 20, 7} {
		m := Message{Seq: int64(i + 1), Body: string(bytes.Repeat([]byte{'a' + byte(i)}, size))}
		stream = AppendFrame(stream, LittleEndian, &m)
		want = append(want, m)
	}
	r := NewReader(bytes.NewReader(stream), LittleEndian, DefaultMaxFrameSize)
	for i, w := range want {
		var m Message
		if err := r.ReadMessage(&m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m != w {
			t.Fatalf("frame %d: body len %d, want %d", i, len(m.Body), len(w.Body))
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestParseFrameNeed(t *testing.T) {
	frame := AppendFrame(nil, BigEndian, &Message{URI: "/hello"})
	p, n, need, err := ParseFrame(frame[:6], BigEndian, 100)
	if p != nil || n != 0 || need != len(frame) || err != nil {
		t.Fatalf("partial: p=%q n=%d need=%d err=%v", p, n, need, err)
	}
	p, n, need, err = ParseFrame(frame[:2], BigEndian, 100)
	if p != nil || n != 0 || need != 0 || err != nil {
		t.Fatalf("partial header: p=%q n=%d need=%d err=%v", p, n, need, err)
	}
	// Zero-length frames before a partial frame are consumed on their own.
	buf := append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, frame[:5]...)
	p, n, _, err = ParseFrame(buf, BigEndian, 100)
	if p != nil || n != 8 || err != nil {
		t.Fatalf("zero frames: p=%q n=%d err=%v", p, n, err)
	}
}

func TestParseOrder(t *testing.T) {
	for in, want := range map[string]Order{"": BigEndian, "big": BigEndian, "LITTLE": LittleEndian, "le": LittleEndian} {
		got, err := ParseOrder(in)
		if err != nil || got != want {
			t.Fatalf("ParseOrder(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOrder("middle"); err == nil {
		t.Fatal("ParseOrder(middle) accepted")
	}
}
