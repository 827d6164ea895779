package wire

import (
	"errors"
	"fmt"
	"io"
)

const readerMinBuf = 4 << 10

// Reader reads frames from a byte stream, such as a blocking net.Conn.
// It buffers at most one maximum frame plus one read.
type Reader struct {
	r     io.Reader
	order Order
	max   int
	size  int // smallest buffer to allocate
	buf   []byte
	start int // first unconsumed byte
	end   int // end of buffered data
}

// NewReader returns a Reader; max <= 0 means DefaultMaxFrameSize.
func NewReader(r io.Reader, order Order, max int) *Reader {
	return NewReaderSize(r, order, max, readerMinBuf)
}

// NewReaderSize is NewReader with the size of its first buffer: a server
// holding many mostly idle connections keeps it small. The buffer grows to
// fit larger frames as they arrive, never beyond one frame.
func NewReaderSize(r io.Reader, order Order, max, size int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if size < 16 {
		size = 16
	}
	return &Reader{r: r, order: order, max: max, size: size}
}

// SetMaxFrameSize changes the limit for the frames that follow, as a server
// does once a client has authenticated.
func (r *Reader) SetMaxFrameSize(max int) {
	if max > 0 {
		r.max = max
	}
}

// ReadFrame returns the next non-empty payload; it is valid until the next
// call. At a clean end of stream it returns io.EOF; inside a frame,
// an error matching both ErrTruncated and io.ErrUnexpectedEOF.
func (r *Reader) ReadFrame() ([]byte, error) {
	for {
		payload, n, need, err := ParseFrame(r.buf[r.start:r.end], r.order, r.max)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.start += n
			if payload != nil {
				return payload, nil
			}
			continue
		}
		if err := r.fill(need); err != nil {
			return nil, err
		}
	}
}

// ReadMessage reads and decodes the next frame into m.
func (r *Reader) ReadMessage(m *Message) error {
	p, err := r.ReadFrame()
	if err != nil {
		return err
	}
	return DecodeInto(p, m)
}

// fill reads more bytes, making room for a frame of need bytes (0 = unknown).
func (r *Reader) fill(need int) error {
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	want := max(need, r.size)
	if len(r.buf)-r.start < want {
		if len(r.buf) < want {
			nb := make([]byte, want)
			r.end = copy(nb, r.buf[r.start:r.end])
			r.buf = nb
		} else {
			r.end = copy(r.buf, r.buf[r.start:r.end])
		}
		r.start = 0
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) && r.end > r.start {
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	return err
}
