package authsvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
)

// hook plays a business's auth endpoint, answering by the auth body.
func hook(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") != "Bearer hook-key" {
			http.Error(w, "bad call", http.StatusBadRequest)
			return
		}
		var req bus.AuthRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		if req.Remote != "10.0.0.1:5555" || req.Edge != "e1" || req.Conn != "e1-7" {
			http.Error(w, "fields lost", http.StatusBadRequest)
			return
		}
		switch req.Body {
		case "alice":
			_, _ = io.WriteString(w, `{"uid":"alice"}`)
		case "no-uid":
			_, _ = io.WriteString(w, `{"reason":"try again later"}`)
		case "banned":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"reason":"account banned"}`)
		case "plain-401":
			http.Error(w, "go away", http.StatusUnauthorized)
		case "boom":
			http.Error(w, `{"reason":"stack trace with secrets"}`, http.StatusInternalServerError)
		case "redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "garbage":
			_, _ = io.WriteString(w, "<html>oops</html>")
		case "huge":
			_, _ = io.WriteString(w, `{"uid":"alice","pad":"`+strings.Repeat("x", 4096)+`"}`)
		case "slow":
			<-r.Context().Done()
		default:
			http.Error(w, "unknown", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newWebhook(t *testing.T, cfg authsvc.WebhookConfig) *authsvc.Webhook {
	t.Helper()
	if cfg.Header == nil {
		cfg.Header = http.Header{"Authorization": {"Bearer hook-key"}}
	}
	v, err := authsvc.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.CloseIdleConnections)
	return v
}

func TestWebhook(t *testing.T) {
	srv := hook(t)
	v := newWebhook(t, authsvc.WebhookConfig{URL: srv.URL + "/auth", Timeout: 200 * time.Millisecond, MaxResponse: 1024})

	const (
		accept = iota
		refuse
		unavailable
		failure // an error, not ErrUnavailable
	)
	tests := map[string]struct {
		body   string
		want   int
		uid    string
		reason string
	}{
		"accept":          {body: "alice", want: accept, uid: "alice"},
		"200 without uid": {body: "no-uid", want: refuse, reason: "try again later"},
		"403 with reason": {body: "banned", want: refuse, reason: "account banned"},
		"401 plain text":  {body: "plain-401", want: refuse, reason: authsvc.ReasonRefused},
		"404":             {body: "stranger", want: refuse, reason: authsvc.ReasonRefused},
		"500":             {body: "boom", want: unavailable},
		"redirect":        {body: "redirect", want: unavailable},
		"timeout":         {body: "slow", want: unavailable},
		"garbage body":    {body: "garbage", want: failure},
		"huge body":       {body: "huge", want: failure},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			uid, err := v.Verify(context.Background(), bus.AuthRequest{Body: tc.body, Remote: "10.0.0.1:5555", Edge: "e1", Conn: "e1-7"})
			var refused *authsvc.RefusedError
			switch tc.want {
			case accept:
				if err != nil || uid != tc.uid {
					t.Fatalf("got %q, %v", uid, err)
				}
			case refuse:
				if !errors.As(err, &refused) || refused.Reason != tc.reason {
					t.Fatalf("got %q, %v; want refusal %q", uid, err, tc.reason)
				}
			case unavailable:
				if !errors.Is(err, authsvc.ErrUnavailable) || errors.Is(err, authsvc.ErrRefused) {
					t.Fatalf("got %q, %v; want ErrUnavailable", uid, err)
				}
			case failure:
				if err == nil || errors.Is(err, authsvc.ErrUnavailable) || errors.Is(err, authsvc.ErrRefused) {
					t.Fatalf("got %q, %v; want a plain error", uid, err)
				}
			}
		})
	}
}

func TestWebhookContext(t *testing.T) {
	srv := hook(t)
	v := newWebhook(t, authsvc.WebhookConfig{URL: srv.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, bus.AuthRequest{Body: "slow", Remote: "10.0.0.1:5555", Edge: "e1", Conn: "e1-7"})
	if !errors.Is(err, authsvc.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s: the context was not honoured", d)
	}
}

// TestWebhookNoSecretsInErrors: errors are logged, so they must not carry
// the URL's credentials or the header's.
func TestWebhookNoSecretsInErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there now
	v := newWebhook(t, authsvc.WebhookConfig{
		URL:    "http://user:pass-secret@" + addr + "/auth?token=query-secret",
		Header: http.Header{"Authorization": {"Bearer header-secret"}},
	})
	_, err := v.Verify(context.Background(), bus.AuthRequest{Body: "tok-body-secret"})
	if !errors.Is(err, authsvc.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	for _, s := range []string{"pass-secret", "query-secret", "header-secret", "tok-body-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q leaks %q", err, s)
		}
	}
}

func TestNewWebhookErrors(t *testing.T) {
	for name, cfg := range map[string]authsvc.WebhookConfig{
		"empty URL":        {},
		"relative URL":     {URL: "/auth"},
		"ftp":              {URL: "ftp://example.com/auth"},
		"no host":          {URL: "http:///auth"},
		"unparsable":       {URL: "http://[::1"},
		"negative timeout": {URL: "http://example.com", Timeout: -time.Second},
		"negative max":     {URL: "http://example.com", MaxResponse: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := authsvc.NewWebhook(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	_, err := authsvc.NewWebhook(authsvc.WebhookConfig{URL: "ftp://u:pw-secret@example.com"})
	if err == nil || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("error %v", err)
	}
}

// TestWebhookOverBus: a failing webhook reaches the client as a refusal
// with a generic reason, never the webhook's own text.
func TestWebhookOverBus(t *testing.T) {
	srv := hook(t)
	v := newWebhook(t, authsvc.WebhookConfig{URL: srv.URL})
	_, client := startService(t, authsvc.Config{}, v)
	req := func(body string) bus.AuthReply {
		t.Helper()
		data, _ := json.Marshal(bus.AuthRequest{Body: body, Remote: "10.0.0.1:5555", Edge: "e1", Conn: "e1-7"})
		msg, err := client.Request(bus.SubjectAuth, data, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep bus.AuthReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := req("alice"); !rep.OK || rep.UID != "alice" {
		t.Fatalf("alice: %+v", rep)
	}
	if rep := req("banned"); rep.OK || rep.Reason != "account banned" {
		t.Fatalf("banned: %+v", rep)
	}
	if rep := req("boom"); rep.OK || rep.Reason != authsvc.ReasonUnavailable {
		t.Fatalf("boom: %+v", rep)
	}
}
