package authsvc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
)

func TestDev(t *testing.T) {
	if v, err := authsvc.NewDev(authsvc.DevConfig{}); !errors.Is(err, authsvc.ErrDevDisabled) || v != nil {
		t.Fatalf("dev without Insecure: %v, %v", v, err)
	}
	log, logs := newLogger()
	v, err := authsvc.NewDev(authsvc.DevConfig{Insecure: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "INSECURE") {
		t.Fatalf("no loud warning: %q", out)
	}
	tests := map[string]struct {
		body string
		ok   bool
	}{
		"uid":       {"alice@example:com", true},
		"digits":    {"42", true},
		"empty":     {"", false},
		"space":     {"a b", false},
		"wildcard":  {"*", false},
		"separator": {"a.b", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			uid, err := v.Verify(context.Background(), bus.AuthRequest{Body: tc.body})
			if tc.ok && (err != nil || uid != tc.body) {
				t.Fatalf("got %q, %v", uid, err)
			}
			if !tc.ok && !errors.Is(err, authsvc.ErrRefused) {
				t.Fatalf("got %q, %v; want a refusal", uid, err)
			}
		})
	}
}

func TestDevOverBus(t *testing.T) {
	v, err := authsvc.NewDev(authsvc.DevConfig{Insecure: true, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, client := startService(t, authsvc.Config{}, v)
	if rep := rawAuth(t, client, "42"); !rep.OK || rep.UID != "42" {
		t.Fatalf("got %+v", rep)
	}
	if rep := rawAuth(t, client, "4 2"); rep.OK || rep.Reason != authsvc.ReasonInvalidUID {
		t.Fatalf("got %+v", rep)
	}
}
