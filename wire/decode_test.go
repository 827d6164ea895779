package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// checkAgainstStdlib asserts that DecodeInto accepts exactly what
// encoding/json accepts into a Message (apart from a top-level null, which
// is not an object), with the same values.
func checkAgainstStdlib(t testing.TB, payload []byte) {
	t.Helper()
	var ours Message
	ourErr := DecodeInto(payload, &ours)
	var std Message
	stdErr := json.Unmarshal(payload, &std)
	if ourErr != nil && !errors.Is(ourErr, ErrBadPayload) {
		t.Fatalf("decode %q: error %v does not wrap ErrBadPayload", payload, ourErr)
	}
	switch {
	case ourErr == nil && stdErr != nil:
		t.Fatalf("decode %q: we accept %+v, encoding/json rejects: %v", payload, ours, stdErr)
	case ourErr != nil && stdErr == nil:
		if string(bytes.TrimSpace(payload)) == "null" {
			return
		}
		t.Fatalf("decode %q: we reject (%v), encoding/json accepts %+v", payload, ourErr, std)
	case ourErr == nil && ours != std:
		t.Fatalf("decode %q: we read %+v, encoding/json %+v", payload, ours, std)
	}
}

func TestDecode(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Message
		err  bool
	}{
		"all fields":         {in: `{"seq":1,"uri":"/a","body":"b"}`, want: Message{1, "/a", "b"}},
		"empty object":       {in: `{}`},
		"long s folds to s":  {in: `{"ſeq":9}`, want: Message{Seq: 9}},
		"kelvin not in ours": {in: `{"\u212a":1}`},
		"escaped key":        {in: `{"\u0075ri":"/x"}`, want: Message{URI: "/x"}},
		"long escaped key":   {in: `{"` + strings.Repeat(`\u0041`, 20) + `":1,"uri":"/y"}`, want: Message{URI: "/y"}},
		"negative zero":      {in: `{"seq":-0}`},
		"exponent seq":       {in: `{"seq":1e2}`, err: true},
		"leading zero":       {in: `{"x":01}`, err: true},
		"bare minus":         {in: `{"x":-}`, err: true},
		"true false":         {in: `{"x":[true,false,null]}`},
		"bad literal":        {in: `{"x":tru}`, err: true},
		"deep array":         {in: `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`},
		"unbalanced":         {in: `{"x":[}`, err: true},
		"mismatched":         {in: `{"x":[1}]}`, err: true},
		"missing colon":      {in: `{"uri" "x"}`, err: true},
		"nested key no str":  {in: `{"x":{1:2}}`, err: true},
		"empty payload":      {in: ``, err: true},
		"only spaces":        {in: `   `, err: true},
		"surrogate pair":     {in: `{"body":"\ud83d\ude00"}`, want: Message{Body: "😀"}},
		"high then bad low":  {in: `{"body":"\ud83d\u0041"}`, want: Message{Body: "\ufffdA"}},
		"short unicode":      {in: `{"body":"\u12"}`, err: true},
		"raw tab in string":  {in: "{\"body\":\"a\tb\"}", err: true},
		"whitespace around":  {in: " \n{ } \r\n"},
		"unknown huge num":   {in: `{"x":1e99999}`},
		"nested in unknown":  {in: `{"x":{"uri":"/no"},"uri":"/yes"}`, want: Message{URI: "/yes"}},
		"string not object":  {in: `"{}"`, err: true},
		"two objects":        {in: `{}{}`, err: true},
		"unterminated key":   {in: `{"uri`, err: true},
		"escape at end":      {in: `{"body":"\`, err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if tc.err != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			checkAgainstStdlib(t, []byte(tc.in))
		})
	}
}

func TestDecodeDepthLimit(t *testing.T) {
	in := `{"x":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`
	if _, err := Decode([]byte(in)); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("err = %v, want ErrBadPayload", err)
	}
	ok := `{"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	if _, err := Decode([]byte(ok)); err != nil {
		t.Fatalf("depth %d refused: %v", maxDepth, err)
	}
}

func TestDecodeIntoResets(t *testing.T) {
	m := Message{Seq: 5, URI: "/old", Body: "old"}
	if err := DecodeInto([]byte(`{"uri":"/new"}`), &m); err != nil {
		t.Fatal(err)
	}
	if m != (Message{URI: "/new"}) {
		t.Fatalf("got %+v", m)
	}
}
