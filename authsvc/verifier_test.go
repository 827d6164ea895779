package authsvc_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/plexbus/plex/authsvc"
)

func TestRefuse(t *testing.T) {
	tests := map[string]struct {
		reason, want string
	}{
		"kept":    {"account banned", "account banned"},
		"trimmed": {"  banned\n", "banned"},
		"empty":   {"", authsvc.ReasonRefused},
		"blank":   {" \t", authsvc.ReasonRefused},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", authsvc.Refuse(tc.reason))
			var refused *authsvc.RefusedError
			if !errors.Is(err, authsvc.ErrRefused) || !errors.As(err, &refused) || refused.Reason != tc.want {
				t.Fatalf("got %v", err)
			}
		})
	}
	long := authsvc.Refuse(strings.Repeat("é", authsvc.MaxReasonLen)).(*authsvc.RefusedError).Reason
	if len(long) > authsvc.MaxReasonLen || len(long) < authsvc.MaxReasonLen-1 || !utf8.ValidString(long) {
		t.Fatalf("long reason cut to %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
	if errors.Is(errors.New("refused"), authsvc.ErrRefused) {
		t.Fatal("a plain error counts as a refusal")
	}
}

func TestResults(t *testing.T) {
	got := authsvc.Results()
	for _, r := range []string{authsvc.ResultOK, authsvc.ResultRefused, authsvc.ResultError, authsvc.ResultTimeout, authsvc.ResultBadRequest} {
		if !slices.Contains(got, r) {
			t.Errorf("Results() lacks %q", r)
		}
	}
	got[0] = "mutated"
	if authsvc.Results()[0] == "mutated" {
		t.Error("Results() shares its slice")
	}
}
