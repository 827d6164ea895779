package wire

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of ignored values, as encoding/json does.
const maxDepth = 10000

// Decode parses a payload into a new Message.
func Decode(payload []byte) (Message, error) {
	var m Message
	err := DecodeInto(payload, &m)
	return m, err
}

// DecodeInto parses a payload into m, resetting it first. It accepts exactly
// what encoding/json accepts into the Message struct, except that the payload
// must be an object (not null): keys match case-insensitively, later
// duplicates win, null leaves a field empty, unknown fields are skipped, and
// invalid UTF-8 in strings becomes U+FFFD. Errors wrap ErrBadPayload.
func DecodeInto(payload []byte, m *Message) error {
	*m = Message{}
	d := decoder{b: payload}
	if err := d.object(m); err != nil {
		return fmt.Errorf("%w: %s at offset %d", ErrBadPayload, err.msg, err.off)
	}
	return nil
}

type syntaxErr struct {
	msg string
	off int
}

type decoder struct {
	b []byte
	i int
	// scratch holds an unescaped key between calls; it never escapes.
	scratch [16]byte
}

func (d *decoder) fail(msg string) *syntaxErr { return &syntaxErr{msg: msg, off: d.i} }

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) object(m *Message) *syntaxErr {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return d.fail("payload is not a JSON object")
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return d.end()
	}
	for {
		d.ws()
		key, err := d.key()
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.fail("expected ':' after object key")
		}
		d.i++
		d.ws()
		switch key {
		case fieldSeq:
			if err := d.seq(&m.Seq); err != nil {
				return err
			}
		case fieldURI:
			b, null, err := d.stringValue()
			if err != nil {
				return err
			}
			if !null {
				m.URI = intern(b)
			}
		case fieldBody:
			b, null, err := d.stringValue()
			if err != nil {
				return err
			}
			if !null {
				m.Body = string(b)
			}
		default:
			if err := d.skipValue(); err != nil {
				return err
			}
		}
		d.ws()
		if d.i >= len(d.b) {
			return d.fail("unexpected end of object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return d.end()
		default:
			return d.fail("expected ',' or '}' in object")
		}
	}
}

func (d *decoder) end() *syntaxErr {
	d.ws()
	if d.i != len(d.b) {
		return d.fail("data after the JSON object")
	}
	return nil
}

type field uint8

const (
	fieldOther field = iota
	fieldSeq
	fieldURI
	fieldBody
)

// key reads an object key and classifies it without allocating.
func (d *decoder) key() (field, *syntaxErr) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return fieldOther, d.fail("expected string key")
	}
	raw, work, err := d.rawString()
	if err != nil {
		return fieldOther, err
	}
	if !work {
		return classify(raw), nil
	}
	if len(raw) > 64 {
		return fieldOther, nil // too long to be one of ours once unescaped
	}
	u, _ := unquote(raw, d.scratch[:0]) // rawString already checked the escapes
	return classify(u), nil
}

// classify matches a key the way encoding/json does: exactly or under
// Unicode simple folding (so "URI", "Seq" and even "\u017feq" match).
func classify(k []byte) field {
	switch {
	case foldEq(k, "SEQ"):
		return fieldSeq
	case foldEq(k, "URI"):
		return fieldURI
	case foldEq(k, "BODY"):
		return fieldBody
	}
	return fieldOther
}

// foldEq reports whether k folds to upper, using encoding/json's folding:
// upper(lower(r)) per rune.
func foldEq(k []byte, upper string) bool {
	j := 0
	for i := 0; i < len(k); {
		if j >= len(upper) {
			return false
		}
		c := k[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != upper[j] {
				return false
			}
			i++
			j++
			continue
		}
		r, n := utf8.DecodeRune(k[i:])
		if unicode.ToUpper(unicode.ToLower(r)) != rune(upper[j]) {
			return false
		}
		i += n
		j++
	}
	return j == len(upper)
}

// rawString scans a JSON string starting at the opening quote and returns its
// raw contents, whether it has escapes or non-ASCII bytes needing a rewrite.
func (d *decoder) rawString() ([]byte, bool, *syntaxErr) {
	d.i++ // opening quote
	start := d.i
	needsWork := false
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			raw := d.b[start:d.i]
			d.i++
			return raw, needsWork, nil
		case c == '\\':
			needsWork = true
			if d.i+1 >= len(d.b) {
				return nil, false, d.fail("unterminated string")
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) || !isHex4(d.b[d.i+2:d.i+6]) {
					return nil, false, d.fail("invalid \\u escape")
				}
				d.i += 6
			default:
				return nil, false, d.fail("invalid escape in string")
			}
		case c < 0x20:
			return nil, false, d.fail("control character in string")
		case c >= utf8.RuneSelf:
			needsWork = true
			d.i++
		default:
			d.i++
		}
	}
	return nil, false, d.fail("unterminated string")
}

// stringValue reads a string or null; the bytes alias the payload when the
// string needs no unescaping.
func (d *decoder) stringValue() (b []byte, null bool, err *syntaxErr) {
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		return nil, true, d.literal("null") // null leaves the field as it was
	}
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false, d.fail("expected a string")
	}
	raw, work, err := d.rawString()
	if err != nil {
		return nil, false, err
	}
	if !work || (!hasEscape(raw) && utf8.Valid(raw)) {
		return raw, false, nil
	}
	u, _ := unquote(raw, make([]byte, 0, len(raw))) // escapes already checked
	return u, false, nil
}

// knownURIs are returned as constants so hot frames decode without garbage.
var knownURIs = [...]string{URIHeartbeat, URIPush, URIAuth, URIAuthSuccess, URIAuthFailed, URIInnerAuth, URIInnerSend, URIReconnect}

func intern(b []byte) string {
	for _, k := range knownURIs {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func (d *decoder) seq(dst *int64) *syntaxErr {
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		return d.literal("null")
	}
	start := d.i
	isInt, err := d.number()
	if err != nil {
		return err
	}
	if !isInt {
		d.i = start
		return d.fail("seq is not an integer")
	}
	v, perr := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if perr != nil {
		d.i = start
		return d.fail("seq out of int64 range")
	}
	*dst = v
	return nil
}

// number scans a JSON number and reports whether it is a plain integer.
func (d *decoder) number() (bool, *syntaxErr) {
	isInt := true
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && '1' <= d.b[d.i] && d.b[d.i] <= '9':
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	default:
		return false, d.fail("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		isInt = false
		d.i++
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return false, d.fail("invalid number")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		isInt = false
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.i >= len(d.b) || !isDigit(d.b[d.i]) {
			return false, d.fail("invalid number")
		}
		for d.i < len(d.b) && isDigit(d.b[d.i]) {
			d.i++
		}
	}
	return isInt, nil
}

func (d *decoder) literal(lit string) *syntaxErr {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.fail("invalid literal")
	}
	d.i += len(lit)
	return nil
}

// skipValue validates and skips any JSON value without recursion; the
// explicit stack grows only with the nesting actually present.
func (d *decoder) skipValue() *syntaxErr {
	var small [32]byte
	stack := small[:0] // '{' or '[' per open container
	for {
		// Expect a value.
		d.ws()
		if d.i >= len(d.b) {
			return d.fail("unexpected end of value")
		}
		switch c := d.b[d.i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return d.fail("nesting too deep")
			}
			d.i++
			d.ws()
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if d.i < len(d.b) && d.b[d.i] == closer {
				d.i++
				break // empty container is a complete value
			}
			stack = append(stack, c)
			if c == '{' {
				if err := d.skipKeyColon(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if _, _, err := d.rawString(); err != nil {
				return err
			}
		case c == '-' || isDigit(c):
			if _, err := d.number(); err != nil {
				return err
			}
		case c == 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		default:
			return d.fail("invalid value")
		}
		// A value is complete: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			if d.i >= len(d.b) {
				return d.fail("unexpected end of value")
			}
			top := stack[len(stack)-1]
			c := d.b[d.i]
			if c == ',' {
				d.i++
				if top == '{' {
					d.ws()
					if err := d.skipKeyColon(); err != nil {
						return err
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				d.i++
				stack = stack[:len(stack)-1]
				continue
			}
			return d.fail("expected ',' or a closing bracket")
		}
	}
}

func (d *decoder) skipKeyColon() *syntaxErr {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return d.fail("expected string key")
	}
	if _, _, err := d.rawString(); err != nil {
		return err
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return d.fail("expected ':' after object key")
	}
	d.i++
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquote decodes the contents of a JSON string (already syntax-checked)
// into dst, with encoding/json's rules for surrogates and invalid UTF-8.
// With dst nil it only validates.
func unquote(raw []byte, dst []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 >= len(raw) {
				return nil, false
			}
			switch e := raw[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
				i += 2
			case 'b':
				dst = append(dst, '\b')
				i += 2
			case 'f':
				dst = append(dst, '\f')
				i += 2
			case 'n':
				dst = append(dst, '\n')
				i += 2
			case 'r':
				dst = append(dst, '\r')
				i += 2
			case 't':
				dst = append(dst, '\t')
				i += 2
			case 'u':
				if i+6 > len(raw) || !isHex4(raw[i+2:]) {
					return nil, false
				}
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' && isHex4(raw[i+2:]) {
						r2 = hex4(raw[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return nil, false
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst, true
}
