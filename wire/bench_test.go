package wire

import (
	"bytes"
	"testing"
)

var pushBody = []byte(`{"t":1732500000000000000,"n":123456}`)

// BenchmarkAppendFramePush is the edge's push path: a bus message's bytes
// encoded into a reused buffer.
func BenchmarkAppendFramePush(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendFrameParts(buf[:0], BigEndian, int64(i), URIPush, pushBody)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendFrameEscaped(b *testing.B) {
	body := []byte("line one\nline \"two\"\t\u00e9\u4f60\u2028")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrameParts(buf[:0], BigEndian, 1, "/notify", body)
	}
}

func BenchmarkDecodePush(b *testing.B) {
	frame := AppendFrameParts(nil, BigEndian, 42, URIPush, pushBody)
	payload := frame[HeaderSize:]
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := DecodeInto(payload, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeartbeat(b *testing.B) {
	payload := []byte(`{"uri":"/heartbeat"}`)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeInto(payload, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	var stream []byte
	for i := range 1000 {
		stream = AppendFrameParts(stream, BigEndian, int64(i), URIPush, pushBody)
	}
	src := bytes.NewReader(stream)
	r := NewReader(src, BigEndian, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)) / 1000)
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			src.Reset(stream)
			r = NewReader(src, BigEndian, 0)
		}
	}
}
