package pushapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/embeddednats"
)

func TestConfigErrors(t *testing.T) {
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	nc := busConn(t, ns)
	edges := newEdges(EdgesConfig{})
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no password":       {Config{}, "InnerPassword"},
		"bad outer server":  {Config{InnerPassword: "x", OuterServers: []string{"10.0.0.1"}}, "host:port"},
		"negative timeout":  {Config{InnerPassword: "x", RequestTimeout: -time.Second}, "RequestTimeout"},
		"wait over request": {Config{InnerPassword: "x", RequestTimeout: time.Second, WaitTimeout: 2 * time.Second}, "WaitTimeout"},
		"factor below 1":    {Config{InnerPassword: "x", Backoff: Backoff{Factor: 0.5}}, "Factor"},
		"jitter above 1":    {Config{InnerPassword: "x", Backoff: Backoff{Jitter: 1.5}}, "Jitter"},
		"max below base":    {Config{InnerPassword: "x", Backoff: Backoff{Base: time.Minute, Max: time.Second}}, "Backoff.Max"},
		"negative limits":   {Config{InnerPassword: "x", MaxUIDs: -1}, "negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg, nc, edges)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %s", err, tc.want)
			}
		})
	}
	if _, err := New(Config{InnerPassword: "x"}, nil, edges); err == nil {
		t.Fatal("nil bus accepted")
	}
	if _, err := New(Config{InnerPassword: "x"}, nc, nil); err == nil {
		t.Fatal("nil edges accepted")
	}
	if _, err := WatchEdges(nil, EdgesConfig{}); err == nil {
		t.Fatal("WatchEdges(nil) accepted")
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.Heartbeat != 60*time.Second || c.Backoff != (Backoff{time.Second, 1.8, 0.3, 300 * time.Second}) ||
		c.MaxBodyBytes != 1<<20 || c.MaxUIDs != 1000 || c.MaxMessageBytes != 65472 ||
		c.RequestTimeout != 10*time.Second || c.WaitTimeout != 5*time.Second || c.WaitGrace != 50*time.Millisecond ||
		c.Logger == nil || c.Gatherer != nil {
		t.Fatalf("defaults %+v", c)
	}
	c = Config{RequestTimeout: 2 * time.Second, Registerer: prometheus.NewRegistry()}
	c.setDefaults()
	if c.WaitTimeout != time.Second || c.Gatherer == nil {
		t.Fatalf("WaitTimeout %s with RequestTimeout 2 s, Gatherer %v", c.WaitTimeout, c.Gatherer)
	}
}

func TestHostAnswerCustomPolicy(t *testing.T) {
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	h, err := New(Config{
		InnerPassword: "x",
		OuterServers:  []string{"[2001:db8::1]:9578"},
		Heartbeat:     1500 * time.Millisecond,
		Backoff:       Backoff{Base: 500 * time.Millisecond, Factor: 2, Jitter: 0.25, Max: 90500 * time.Millisecond},
	}, busConn(t, ns), newEdges(EdgesConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/plex/v1/host", nil))
	want := `{"host":"[2001:db8::1]:9578","heartbeat":2,"backoff":{"base":0.5,"factor":2.0,"jitter":0.25,"max":91}}` + "\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("%d %s, want %s", rec.Code, rec.Body, want)
	}
}

func TestNewServer(t *testing.T) {
	h := http.NotFoundHandler()
	s := NewServer(":9579", h, Config{RequestTimeout: 3 * time.Second})
	if s.Addr != ":9579" || s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 3*time.Second ||
		s.WriteTimeout != 8*time.Second || s.IdleTimeout != 120*time.Second || s.MaxHeaderBytes != 64<<10 || s.ErrorLog == nil {
		t.Fatalf("server %+v", s)
	}
	if d := NewServer("", h, Config{}); d.WriteTimeout != DefaultRequestTimeout+writeSlack {
		t.Fatalf("default WriteTimeout %s", d.WriteTimeout)
	}
}
