package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

const (
	// HeaderSize is the size of the length prefix.
	HeaderSize = 4
	// DefaultMaxFrameSize is the largest payload accepted unless configured.
	DefaultMaxFrameSize = 64 << 10
)

// Errors returned by the codec. Wrapped errors carry details; test with errors.Is.
var (
	// ErrFrameTooLarge: the length prefix exceeds the maximum frame size.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrBadPayload: the payload is not a JSON object with the expected field types.
	ErrBadPayload = errors.New("wire: bad payload")
	// ErrTruncated: the stream ended inside a frame.
	ErrTruncated = errors.New("wire: frame cut short")
)

// Order is the byte order of the length prefix.
type Order uint8

const (
	// BigEndian is the default, as in the original framework.
	BigEndian Order = iota
	// LittleEndian must be configured on both sides.
	LittleEndian
)

// ParseOrder parses "big" or "little" (case-insensitive; "" means big).
func ParseOrder(s string) (Order, error) {
	switch strings.ToLower(s) {
	case "", "big", "bigendian", "big-endian", "be":
		return BigEndian, nil
	case "little", "littleendian", "little-endian", "le":
		return LittleEndian, nil
	}
	return BigEndian, fmt.Errorf("wire: unknown byte order %q (want big or little)", s)
}

func (o Order) String() string {
	if o == LittleEndian {
		return "little"
	}
	return "big"
}

// Uint32 reads a length prefix.
func (o Order) Uint32(b []byte) uint32 {
	if o == LittleEndian {
		return binary.LittleEndian.Uint32(b)
	}
	return binary.BigEndian.Uint32(b)
}

// PutUint32 writes a length prefix.
func (o Order) PutUint32(b []byte, v uint32) {
	if o == LittleEndian {
		binary.LittleEndian.PutUint32(b, v)
		return
	}
	binary.BigEndian.PutUint32(b, v)
}

// ParseFrame finds the first non-empty frame in buf. It returns the payload
// (aliasing buf) and the number of bytes consumed, including any zero-length
// frames before it. When buf holds no complete frame it returns n == 0 and,
// if at least a header was seen, need = the total bytes that frame occupies,
// so a caller can size its buffer exactly. A header announcing more than max
// bytes is an error at once.
func ParseFrame(buf []byte, order Order, max int) (payload []byte, n int, need int, err error) {
	off := 0
	for {
		rest := buf[off:]
		if len(rest) < HeaderSize {
			if off > 0 {
				return nil, off, 0, nil // consumed zero-length frames only
			}
			return nil, 0, 0, nil
		}
		size := order.Uint32(rest)
		if uint64(size) > uint64(max) {
			return nil, 0, 0, fmt.Errorf("%w: %d bytes > max %d", ErrFrameTooLarge, size, max)
		}
		if size == 0 {
			off += HeaderSize
			continue
		}
		total := HeaderSize + int(size)
		if len(rest) < total {
			if off > 0 {
				return nil, off, 0, nil
			}
			return nil, 0, total, nil
		}
		return rest[HeaderSize:total], off + total, 0, nil
	}
}
