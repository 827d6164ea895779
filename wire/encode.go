package wire

import (
	"strconv"
	"unicode/utf8"
)

// Message is one frame's payload.
type Message struct {
	Seq  int64  `json:"seq,omitempty"`
	URI  string `json:"uri,omitempty"`
	Body string `json:"body,omitempty"`
}

// AppendFrame appends m as a complete frame (length prefix and JSON) to dst.
// It allocates only when dst lacks capacity.
func AppendFrame(dst []byte, order Order, m *Message) []byte {
	return AppendFrameParts(dst, order, m.Seq, m.URI, m.Body)
}

// AppendFrameParts is AppendFrame for a body held as bytes or a string, so the
// push path can encode a bus message's data without converting it.
func AppendFrameParts[B string | []byte](dst []byte, order Order, seq int64, uri string, body B) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendJSON(dst, seq, uri, body)
	order.PutUint32(dst[start:], uint32(len(dst)-start-HeaderSize))
	return dst
}

// AppendJSON appends the payload of a message (no length prefix).
func AppendJSON(dst []byte, m *Message) []byte {
	return appendJSON(dst, m.Seq, m.URI, m.Body)
}

func appendJSON[B string | []byte](dst []byte, seq int64, uri string, body B) []byte {
	dst = append(dst, '{')
	sep := false
	if seq != 0 {
		dst = append(dst, `"seq":`...)
		dst = strconv.AppendInt(dst, seq, 10)
		sep = true
	}
	if uri != "" {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"uri":`...)
		dst = appendString(dst, uri)
		sep = true
	}
	if len(body) != 0 {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"body":`...)
		dst = appendString(dst, body)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. It escapes only what JSON
// requires, plus U+2028 and U+2029 (which break JavaScript), and replaces
// each invalid UTF-8 byte with U+FFFD, as encoding/json does.
func appendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func decodeRune[S string | []byte](s S) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	panic("unreachable")
}
