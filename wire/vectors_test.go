package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"
)

// vectorFile is the shape of testdata/vectors.json, shared with other SDKs.
type vectorFile struct {
	MaxFrameSize int `json:"max_frame_size"`
	Encode       []struct {
		Name    string  `json:"name"`
		Order   string  `json:"order"`
		Message Message `json:"message"`
		Hex     string  `json:"hex"`
	} `json:"encode"`
	Decode []struct {
		Name         string    `json:"name"`
		Order        string    `json:"order"`
		Hex          string    `json:"hex"`
		Messages     []Message `json:"messages"`
		Error        string    `json:"error"`
		MaxFrameSize int       `json:"max_frame_size"`
	} `json:"decode"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Encode) == 0 || len(vf.Decode) == 0 || vf.MaxFrameSize != DefaultMaxFrameSize {
		t.Fatalf("vectors file incomplete: %d encode, %d decode, max %d", len(vf.Encode), len(vf.Decode), vf.MaxFrameSize)
	}
	return vf
}

func mustOrder(t testing.TB, s string) Order {
	t.Helper()
	o, err := ParseOrder(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestEncodeVectors(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range vf.Encode {
		t.Run(v.Name, func(t *testing.T) {
			order := mustOrder(t, v.Order)
			got := AppendFrame(nil, order, &v.Message)
			if h := hex.EncodeToString(got); h != v.Hex {
				t.Fatalf("encode mismatch\n got %s\nwant %s", h, v.Hex)
			}
			// The bytes/string body variants must agree.
			got2 := AppendFrameParts(nil, order, v.Message.Seq, v.Message.URI, []byte(v.Message.Body))
			if !bytes.Equal(got, got2) {
				t.Fatalf("[]byte body encodes differently: %q vs %q", got2, got)
			}
			// Independent oracle: encoding/json reads our payload back.
			var back Message
			if err := json.Unmarshal(got[HeaderSize:], &back); err != nil {
				t.Fatalf("encoding/json rejects our payload %q: %v", got[HeaderSize:], err)
			}
			if back != v.Message {
				t.Fatalf("encoding/json read %+v, want %+v", back, v.Message)
			}
			if n := order.Uint32(got); int(n) != len(got)-HeaderSize {
				t.Fatalf("length prefix %d, payload %d", n, len(got)-HeaderSize)
			}
		})
	}
}

func errClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrFrameTooLarge):
		return "frame_too_large"
	case errors.Is(err, ErrBadPayload):
		return "bad_payload"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	}
	return "other: " + err.Error()
}

func TestDecodeVectors(t *testing.T) {
	vf := loadVectors(t)
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one_byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, v := range vf.Decode {
		for rname, wrap := range readers {
			t.Run(v.Name+"/"+rname, func(t *testing.T) {
				raw, err := hex.DecodeString(v.Hex)
				if err != nil {
					t.Fatal(err)
				}
				max := vf.MaxFrameSize
				if v.MaxFrameSize > 0 {
					max = v.MaxFrameSize
				}
				r := NewReader(wrap(bytes.NewReader(raw)), mustOrder(t, v.Order), max)
				var got []Message
				var final error
				for {
					var m Message
					err := r.ReadMessage(&m)
					if err != nil {
						final = err
						break
					}
					got = append(got, m)
				}
				if len(got) != len(v.Messages) {
					t.Fatalf("got %d messages %+v, want %d %+v", len(got), got, len(v.Messages), v.Messages)
				}
				for i := range got {
					if got[i] != v.Messages[i] {
						t.Fatalf("message %d: got %+v, want %+v", i, got[i], v.Messages[i])
					}
				}
				if v.Error == "" {
					if final != io.EOF {
						t.Fatalf("want clean EOF, got %v", final)
					}
				} else if c := errClass(final); c != v.Error {
					t.Fatalf("error %v (%s), want %s", final, c, v.Error)
				}
			})
		}
	}
}

// TestDecodeAgreesWithEncodingJSON checks every decode vector payload
// against encoding/json, the original framework's decoder.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range vf.Decode {
		raw, _ := hex.DecodeString(v.Hex)
		order := mustOrder(t, v.Order)
		for len(raw) >= HeaderSize {
			n := int(order.Uint32(raw))
			if n > len(raw)-HeaderSize {
				break
			}
			checkAgainstStdlib(t, raw[HeaderSize:HeaderSize+n])
			raw = raw[HeaderSize+n:]
		}
	}
}
