package wire

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestReasonsFile keeps testdata/reasons.json, which other SDKs read, in
// step with TemporaryFailure and Kicked.
func TestReasonsFile(t *testing.T) {
	raw, err := os.ReadFile("testdata/reasons.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Temporary    []string `json:"temporary"`
		KickedPrefix string   `json:"kicked_prefix"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Temporary {
		if !TemporaryFailure(r) {
			t.Errorf("%q is temporary in the file, not in TemporaryFailure", r)
		}
	}
	want := []string{FailAuthUnavailable, FailAuthTimedOut, FailAuthTimeout, FailServerBusy, FailServerFull, FailTooManyFailures}
	if strings.Join(want, "|") != strings.Join(f.Temporary, "|") {
		t.Errorf("file lists %q, code %q", f.Temporary, want)
	}
	for _, r := range []string{"invalid token", FailKicked, FailNotAuthenticated, FailAlreadyLoggedIn, ""} {
		if TemporaryFailure(r) {
			t.Errorf("%q counted as temporary", r)
		}
	}
	if !Kicked(FailKicked) || !strings.HasPrefix(FailKicked, f.KickedPrefix) || Kicked("invalid token") {
		t.Error("kicked reasons disagree with the file")
	}
}

func TestCutReason(t *testing.T) {
	if got := CutReason("  short  "); got != "short" {
		t.Fatalf("got %q", got)
	}
	long := strings.Repeat("é", 200) // 400 bytes
	got := CutReason(long)
	if len(got) != MaxReasonLen || got != long[:MaxReasonLen] {
		t.Fatalf("cut to %d bytes", len(got))
	}
	odd := "x" + long // the cut falls inside a rune
	if got := CutReason(odd); len(got) != MaxReasonLen-1 || !strings.HasPrefix(odd, got) {
		t.Fatalf("cut to %d bytes", len(got))
	}
}
