package pushapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

const defaultTail = `"heartbeat":60,"backoff":{"base":1.0,"factor":1.8,"jitter":0.3,"max":300}}`

func TestHostPicksLeastLoaded(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	a, b, c := st.edge(edge.Config{}), st.edge(edge.Config{}), st.edge(edge.Config{})
	for i, n := range map[*edge.Server]int{a: 3, b: 1, c: 2} {
		for j := range n {
			login(t, i, fmt.Sprintf("%s-%d", i.ID(), j))
		}
	}
	st.waitConns(map[*edge.Server]int{a: 3, b: 1, c: 2})

	r := st.get("/plex/v1/host")
	r.want(t, http.StatusOK, nil)
	if want := `{"host":"` + b.Advertise() + `",` + defaultTail + "\n"; string(r.body) != want {
		t.Fatalf("body %s, want %s", r.body, want)
	}
	if r.hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", r.hdr.Get("Cache-Control"))
	}
	// The alias answers the same shape; b took one hand-out, so b or c.
	var got struct {
		Host      string `json:"host"`
		Heartbeat int    `json:"heartbeat"`
		Backoff   struct {
			Base, Factor, Jitter, Max float64
		} `json:"backoff"`
	}
	st.get("/plex/v1/hosts").want(t, http.StatusOK, &got)
	if (got.Host != b.Advertise() && got.Host != c.Advertise()) || got.Heartbeat != 60 || got.Backoff.Max != 300 || got.Backoff.Factor != 1.8 {
		t.Fatalf("alias answer %+v", got)
	}
}

// TestHostEdgeStatsStop: an edge that stops publishing is no longer handed
// out once its advertised interval has been missed (the table's Missed).
func TestHostEdgeStatsStop(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{OuterServers: []string{"192.0.2.1:9578"}})
	ghost := bus.EdgeStats{ID: "ghost", Addr: "192.0.2.99:9578", IntervalMS: 10} // expires 200 ms after its last stats
	if err := bus.PublishEdgeStats(st.nc, ghost); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "ghost edge listed", func() bool { return st.edges.Len() == 1 })
	var got struct{ Host string }
	st.get("/plex/v1/host").want(t, http.StatusOK, &got)
	if got.Host != ghost.Addr {
		// Possible only if this run was slow enough for 200 ms to pass.
		t.Logf("ghost already expired: got %s", got.Host)
	}
	waitFor(t, 3*time.Second, "ghost edge dropped", func() bool { return st.edges.Len() == 0 })
	st.get("/plex/v1/host").want(t, http.StatusOK, &got)
	if got.Host != "192.0.2.1:9578" {
		t.Fatalf("after expiry: host %s, want the fallback", got.Host)
	}
	var list struct{ Edges []EdgeInfo }
	st.getAuth("/plex/v1/edges").want(t, http.StatusOK, &list)
	if len(list.Edges) != 0 {
		t.Fatalf("expired edge still listed: %+v", list.Edges)
	}
}

func TestHostFallbackAndNone(t *testing.T) {
	t.Parallel()
	outer := []string{"10.0.0.1:9578", " 10.0.0.2:9578 "}
	st := newStack(t, Config{OuterServers: outer})
	seen := map[string]int{}
	for range 40 {
		var got struct{ Host string }
		st.get("/plex/v1/host").want(t, http.StatusOK, &got)
		seen[got.Host]++
	}
	if len(seen) != 2 || seen["10.0.0.1:9578"] == 0 || seen["10.0.0.2:9578"] == 0 {
		t.Fatalf("fallback picks %v", seen)
	}

	none := newStack(t, Config{})
	r := none.get("/plex/v1/host")
	if msg := r.wantError(t, http.StatusServiceUnavailable); !strings.Contains(msg, "no edge") {
		t.Fatalf("error %q", msg)
	}
	if r.hdr.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	none.get("/plex/v1/hosts").wantError(t, http.StatusServiceUnavailable)
}

// TestHostSkipsDrainingEdge: an edge shutting down says so in its stats
// and is not handed out from then on.
func TestHostSkipsDrainingEdge(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	live := st.edge(edge.Config{})
	st.waitConns(map[*edge.Server]int{live: 0})
	drain := bus.EdgeStats{ID: "leaving", Addr: "192.0.2.5:9578", Draining: true, IntervalMS: 1000}
	if err := bus.PublishEdgeStats(st.nc, drain); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "draining edge listed", func() bool { return st.edges.Len() == 2 })
	for range 10 {
		var got struct{ Host string }
		st.get("/plex/v1/host").want(t, http.StatusOK, &got)
		if got.Host != live.Advertise() {
			t.Fatalf("host %s, want the live edge %s", got.Host, live.Advertise())
		}
	}
}

func TestPush(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	a, b := st.edge(edge.Config{}), st.edge(edge.Config{})
	alice1, alice2 := login(t, a, "alice"), login(t, b, "alice")
	carol := login(t, a, "carol")
	expect := func(d *device, uri, body string, seq int64) {
		t.Helper()
		m := d.expect(uri)
		if m.Body != body || (seq != 0 && m.Seq != seq) {
			t.Fatalf("frame %+v, want uri %s body %q seq %d", m, uri, body, seq)
		}
	}

	t.Run("wait one user with two connections", func(t *testing.T) {
		var got map[string]int
		st.postPush("?wait=1", `{"uid":"alice","uri":"/sync","body":"hello","seq":7}`).want(t, http.StatusOK, &got)
		if len(got) != 1 || got["delivered"] != 2 {
			t.Fatalf("answer %v, want delivered 2", got)
		}
		expect(alice1, "/sync", "hello", 7)
		expect(alice2, "/sync", "hello", 7)
	})
	t.Run("wait offline user", func(t *testing.T) {
		r := st.postPush("?wait=true", `{"uid":"bob","body":"x"}`)
		r.want(t, http.StatusOK, nil)
		if string(r.body) != `{"delivered":0}`+"\n" {
			t.Fatalf("answer %s", r.body)
		}
	})
	t.Run("wait many", func(t *testing.T) {
		var got struct {
			Delivered int               `json:"delivered"`
			Results   map[string]int    `json:"results"`
			Errors    map[string]string `json:"errors"`
		}
		st.postPush("?wait=1", `{"uids":["alice","bob","carol","alice"],"uri":"/n","body":"{\"k\":1}"}`).want(t, http.StatusOK, &got)
		want := map[string]int{"alice": 2, "bob": 0, "carol": 1}
		if got.Delivered != 3 || len(got.Results) != 3 || got.Errors != nil {
			t.Fatalf("answer %+v", got)
		}
		for uid, n := range want {
			if got.Results[uid] != n {
				t.Fatalf("results %v, want %v", got.Results, want)
			}
		}
		for _, d := range []*device{alice1, alice2, carol} {
			expect(d, "/n", `{"k":1}`, 0)
		}
	})
	t.Run("async one", func(t *testing.T) {
		r := st.postPush("", `{"uid":"carol","body":"hi"}`)
		r.want(t, http.StatusAccepted, nil)
		if string(r.body) != `{"accepted":1}`+"\n" {
			t.Fatalf("answer %s", r.body)
		}
		expect(carol, wire.URIPush, "hi", 0)
	})
	t.Run("async many", func(t *testing.T) {
		var got map[string]int
		st.postPush("?wait=0", `{"uids":["alice","bob"],"uri":"/m","body":""}`).want(t, http.StatusAccepted, &got)
		if got["accepted"] != 2 {
			t.Fatalf("answer %v", got)
		}
		expect(alice1, "/m", "", 0)
		expect(alice2, "/m", "", 0)
	})
}

func TestPushBadInput(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{MaxUIDs: 3, MaxBodyBytes: 4096, MaxMessageBytes: 1000})
	tests := map[string]struct {
		query, body string
		code        int
		contains    string
	}{
		"bad json":            {body: `{"uid":`, code: 400, contains: "JSON"},
		"syntax error":        {body: `{"uid" "a"}`, code: 400, contains: "malformed"},
		"not an object":       {body: `[1,2]`, code: 400, contains: "object"},
		"trailing data":       {body: `{"uid":"a"} {"uid":"b"}`, code: 400, contains: "more than one"},
		"trailing garbage":    {body: `{"uid":"a"}x`, code: 400},
		"empty body":          {body: ``, code: 400, contains: "empty"},
		"unknown field":       {body: `{"uid":"a","bdy":"x"}`, code: 400, contains: `"bdy"`},
		"missing uid":         {body: `{"body":"x"}`, code: 400, contains: "missing"},
		"null uid":            {body: `{"uid":null,"body":"x"}`, code: 400, contains: "missing"},
		"uid and uids":        {body: `{"uid":"a","uids":["b"]}`, code: 400, contains: "not both"},
		"empty uids":          {body: `{"uids":[]}`, code: 400, contains: "empty"},
		"invalid uid":         {body: `{"uid":"a.b"}`, code: 400, contains: "invalid uid"},
		"wildcard uid":        {body: `{"uid":">"}`, code: 400, contains: "invalid uid"},
		"empty uid":           {body: `{"uid":""}`, code: 400, contains: "invalid uid"},
		"long uid":            {body: `{"uid":"` + strings.Repeat("x", 129) + `"}`, code: 400, contains: "invalid uid"},
		"invalid uid in list": {body: `{"uids":["ok","a b"]}`, code: 400, contains: "uids[1]"},
		"uid not a string":    {body: `{"uid":42}`, code: 400, contains: `"uid" must be a string`},
		"uids not an array":   {body: `{"uids":"a"}`, code: 400, contains: `"uids" must be an array`},
		"body not a string":   {body: `{"uid":"a","body":{"x":1}}`, code: 400, contains: `"body"`},
		"seq not an integer":  {body: `{"uid":"a","seq":1.5}`, code: 400, contains: `"seq"`},
		"too many uids":       {body: `{"uids":["a","b","c","d"]}`, code: 400, contains: "too many"},
		"uri with newline":    {body: `{"uid":"a","uri":"/x\r\nPlex-Op: kick"}`, code: 400, contains: "control"},
		"uri too long":        {body: `{"uid":"a","uri":"/` + strings.Repeat("u", 1024) + `"}`, code: 400, contains: "uri"},
		"message too large":   {body: `{"uid":"a","body":"` + strings.Repeat("b", 1001) + `"}`, code: 413, contains: "at most 1000"},
		"oversized body":      {body: `{"uid":"a","body":"` + strings.Repeat("b", 5000) + `"}`, code: 413, contains: "4096"},
		"bad wait":            {query: "?wait=maybe", body: `{"uid":"a"}`, code: 400, contains: "wait"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			msg := st.postPush(tc.query, tc.body).wantError(t, tc.code)
			if !strings.Contains(msg, tc.contains) {
				t.Fatalf("error %q does not mention %q", msg, tc.contains)
			}
		})
	}
	t.Run("counted under the push route", func(t *testing.T) {
		st.postPush("", `{"uid":"a","body":"`+strings.Repeat("b", 5000)+`"}`).wantError(t, 413)
		r := st.get("/metrics")
		for _, want := range []string{
			`plex_api_http_requests_total{code="413",route="/plex/v1/push"}`,
			`plex_api_http_requests_total{code="400",route="/plex/v1/push"}`,
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	t.Run("oversized chunked body", func(t *testing.T) {
		// No Content-Length: the limit applies while reading.
		body := io.MultiReader(strings.NewReader(`{"uid":"a","body":"`), strings.NewReader(strings.Repeat("b", 5000)+`"}`))
		req, _ := http.NewRequest("POST", st.srv.URL+"/plex/v1/push", body)
		req.Header.Set("Authorization", "Bearer "+testPassword)
		res, err := st.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		if req.ContentLength != 0 || res.StatusCode != 413 || !strings.Contains(string(data), `"error"`) {
			t.Fatalf("status %d body %s (request length %d)", res.StatusCode, data, req.ContentLength)
		}
	})
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	tests := map[string]struct {
		method, path string
		code         int
		allow        string
	}{
		"get push":       {"GET", "/plex/v1/push", 405, "POST"},
		"post host":      {"POST", "/plex/v1/host", 405, "GET"},
		"put hosts":      {"PUT", "/plex/v1/hosts", 405, "GET"},
		"delete edges":   {"DELETE", "/plex/v1/edges", 405, "GET"},
		"post online":    {"POST", "/plex/v1/online/alice", 405, "GET"},
		"post healthz":   {"POST", "/healthz", 405, "GET"},
		"unknown":        {"GET", "/plex/v1/nope", 404, ""},
		"root":           {"GET", "/", 404, ""},
		"trailing slash": {"GET", "/plex/v1/host/", 404, ""},
		"odd method":     {"FOO", "/plex/v1/host", 405, "GET"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := st.call(tc.method, tc.path, testPassword, "")
			r.wantError(t, tc.code)
			if r.hdr.Get("Allow") != tc.allow {
				t.Fatalf("Allow %q, want %q", r.hdr.Get("Allow"), tc.allow)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	routes := []struct {
		method, path, body string
		ok                 int
	}{
		{"POST", "/plex/v1/push", `{"uid":"nobody","body":"x"}`, http.StatusAccepted},
		{"GET", "/plex/v1/online/nobody", "", http.StatusOK},
		{"GET", "/plex/v1/edges", "", http.StatusOK},
	}
	headers := map[string]struct {
		value string
		code  int
	}{
		"missing":         {"", 401},
		"wrong":           {"Bearer wrong", 401},
		"prefix":          {"Bearer " + testPassword[:4], 401},
		"longer":          {"Bearer " + testPassword + "x", 401},
		"empty bearer":    {"Bearer ", 401},
		"basic":           {"Basic " + testPassword, 401},
		"no scheme":       {testPassword, 401},
		"right":           {"Bearer " + testPassword, 0},
		"lowercase right": {"bearer  " + testPassword, 0},
	}
	for _, rt := range routes {
		for name, h := range headers {
			t.Run(rt.path+"/"+name, func(t *testing.T) {
				var body io.Reader
				if rt.body != "" {
					body = strings.NewReader(rt.body)
				}
				req, _ := http.NewRequest(rt.method, st.srv.URL+rt.path, body)
				if h.value != "" {
					req.Header.Set("Authorization", h.value)
				}
				res, err := st.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				data, _ := io.ReadAll(res.Body)
				want := cmpInt(h.code, rt.ok)
				if res.StatusCode != want {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, want, data)
				}
				if want == 401 {
					if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
						t.Fatalf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
					}
					var e errorBody
					if json.Unmarshal(data, &e) != nil || e.Error == "" || strings.Contains(string(data), testPassword[:4]) {
						t.Fatalf("error body %s", data)
					}
				}
			})
		}
	}
	// Public routes need no token.
	for _, p := range []string{"/healthz", "/metrics", "/plex/v1/hosts"} {
		if r := st.get(p); r.code == http.StatusUnauthorized {
			t.Fatalf("%s asks for auth", p)
		}
	}
}

func cmpInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestOnline(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	a, b := st.edge(edge.Config{}), st.edge(edge.Config{})
	login(t, a, "alice")
	login(t, b, "alice")

	var got struct {
		UID    string         `json:"uid"`
		Online bool           `json:"online"`
		Conns  []bus.ConnInfo `json:"conns"`
	}
	st.getAuth("/plex/v1/online/alice").want(t, http.StatusOK, &got)
	if got.UID != "alice" || !got.Online || len(got.Conns) != 2 {
		t.Fatalf("alice: %+v", got)
	}
	edges := []string{got.Conns[0].Edge, got.Conns[1].Edge}
	slices.Sort(edges)
	want := []string{a.ID(), b.ID()}
	slices.Sort(want)
	if !slices.Equal(edges, want) || got.Conns[0].ID == "" || got.Conns[0].Remote == "" || got.Conns[0].Since.IsZero() {
		t.Fatalf("alice's conns %+v, want one on each of %v", got.Conns, want)
	}

	r := st.getAuth("/plex/v1/online/bob")
	r.want(t, http.StatusOK, nil)
	if string(r.body) != `{"uid":"bob","online":false,"conns":[]}`+"\n" {
		t.Fatalf("bob: %s", r.body)
	}
	for _, bad := range []string{"a.b", "%2A", "%3E", strings.Repeat("x", 129), "a%20b"} {
		st.getAuth("/plex/v1/online/"+bad).wantError(t, http.StatusBadRequest)
	}
}

func TestEdgesRoute(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	a := st.edge(edge.Config{Version: "test-1"})
	b := st.edge(edge.Config{MaxConnections: 50})
	login(t, b, "x")
	st.waitConns(map[*edge.Server]int{a: 0, b: 1})
	var got struct{ Edges []EdgeInfo }
	st.getAuth("/plex/v1/edges").want(t, http.StatusOK, &got)
	if len(got.Edges) != 2 {
		t.Fatalf("edges %+v", got.Edges)
	}
	byID := map[string]EdgeInfo{}
	for _, e := range got.Edges {
		byID[e.ID] = e
	}
	ea, eb := byID[a.ID()], byID[b.ID()]
	if ea.Addr != a.Advertise() || ea.Version != "test-1" || ea.IntervalMS != 50 || ea.LastSeen.IsZero() || ea.Started.IsZero() {
		t.Fatalf("edge a %+v", ea)
	}
	if eb.Addr != b.Advertise() || eb.Conns != 1 || eb.MaxConns != 50 || eb.Draining {
		t.Fatalf("edge b %+v", eb)
	}
}

func TestHealthzAndBusDown(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	r := st.get("/healthz")
	r.want(t, http.StatusOK, nil)
	if string(r.body) != `{"status":"ok","bus":"connected"}`+"\n" {
		t.Fatalf("healthz %s", r.body)
	}

	st.ns.Shutdown()
	waitFor(t, 5*time.Second, "healthz 503", func() bool { return st.get("/healthz").code == http.StatusServiceUnavailable })
	var h healthAnswer
	st.get("/healthz").want(t, http.StatusServiceUnavailable, &h)
	if h.Status != "unavailable" || h.Bus != "reconnecting" || h.Error == "" {
		t.Fatalf("healthz while reconnecting %+v", h)
	}
	for _, q := range []string{"", "?wait=1"} {
		st.postPush(q, `{"uid":"a","body":"x"}`).wantError(t, http.StatusServiceUnavailable)
		st.postPush(q, `{"uids":["a","b"],"body":"x"}`).wantError(t, http.StatusServiceUnavailable)
	}
	st.getAuth("/plex/v1/online/a").wantError(t, http.StatusServiceUnavailable)
	// Bad input is still a 400, not a 503.
	st.postPush("", `{"uid":"a.b"}`).wantError(t, http.StatusBadRequest)

	st.nc.Close()
	st.get("/healthz").want(t, http.StatusServiceUnavailable, &h)
	if h.Bus != "closed" {
		t.Fatalf("healthz after close %+v", h)
	}
}

// TestWaitTimeout: an edge that holds the user but never answers makes
// ?wait=1 and the online query end with 504 after WaitTimeout.
func TestWaitTimeout(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{WaitTimeout: 200 * time.Millisecond})
	mute := busConn(t, st.ns)
	got := make(chan *nats.Msg, 8)
	if _, err := mute.ChanSubscribe("plex.user.mute", got); err != nil {
		t.Fatal(err)
	}
	if err := mute.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st.postPush("?wait=1", `{"uid":"mute","body":"x"}`).wantError(t, http.StatusGatewayTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	var many deliveredManyAnswer
	st.postPush("?wait=1", `{"uids":["mute","bob"]}`).want(t, http.StatusOK, &many)
	if many.Delivered != 0 || len(many.Results) != 1 || many.Results["bob"] != 0 || !strings.Contains(many.Errors["mute"], "timed out") {
		t.Fatalf("partial answer %+v", many)
	}
	st.getAuth("/plex/v1/online/mute").wantError(t, http.StatusGatewayTimeout)
	// The push did reach the bus every time.
	if len(got) != 3 {
		t.Fatalf("mute subscriber got %d messages, want 3", len(got))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	e := st.edge(edge.Config{Registerer: st.reg})
	login(t, e, "m")
	st.waitConns(map[*edge.Server]int{e: 1})
	st.get("/plex/v1/host").want(t, http.StatusOK, nil)
	st.postPush("?wait=1", `{"uid":"m","body":"x"}`).want(t, http.StatusOK, nil)
	st.call("POST", "/plex/v1/push", "", `{"uid":"m"}`).wantError(t, http.StatusUnauthorized)
	st.get("/no/such/route/42").wantError(t, http.StatusNotFound)

	r := st.get("/metrics")
	if r.code != http.StatusOK {
		t.Fatalf("metrics %d", r.code)
	}
	text := string(r.body)
	for _, want := range []string{
		`plex_api_http_requests_total{code="200",route="/plex/v1/host"} 1`,
		`plex_api_http_requests_total{code="200",route="/plex/v1/push"} 1`,
		`plex_api_http_requests_total{code="401",route="/plex/v1/push"} 1`,
		`plex_api_http_requests_total{code="404",route="unmatched"} 1`,
		`plex_api_http_request_seconds_bucket{route="/plex/v1/online/{uid}"`,
		`plex_api_pushes_accepted_total 1`,
		`plex_api_push_delivered_total 1`,
		`plex_api_push_seconds_count{wait="true"} 1`,
		`plex_api_push_seconds_count{wait="false"} 0`,
		`plex_api_auth_failures_total{reason="missing"} 1`,
		`plex_api_auth_failures_total{reason="invalid"} 0`,
		`plex_api_host_answers_total{source="edge"} 1`,
		`plex_api_host_answers_total{source="none"} 0`,
		`plex_api_live_edges 1`,
		"plex_edge_connections 1",
		`plex_edge_auths_total{result="ok"} 1`,
		`plex_edge_disconnects_total{reason=`,
		`plex_edge_queue_drops_total{queue="bus"} 0`,
		"plex_edge_auth_seconds_bucket",
		"plex_edge_push_seconds_bucket",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
	// A second API on the same registry is refused, not half registered.
	if _, err := New(Config{InnerPassword: "x", Registerer: st.reg}, st.nc, st.edges); err == nil {
		t.Fatal("second registration accepted")
	}
}

func TestNoMetricsWithoutGatherer(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{Registerer: prometheus.NewRegistry(), Gatherer: nil})
	if r := st.get("/metrics"); r.code != http.StatusOK || !strings.Contains(string(r.body), "plex_api_live_edges") {
		t.Fatalf("/metrics from the Registerer: %d", r.code) // a Registry is a Gatherer
	}

	h, err := New(Config{InnerPassword: "x"}, st.nc, st.edges)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/metrics without a gatherer: %d", rec.Code)
	}
}

// TestPanicIsJSON500: a panicking handler behind the API's middleware
// answers a JSON 500, is counted, and the server goes on.
func TestPanicIsJSON500(t *testing.T) {
	t.Parallel()
	st := newStack(t, Config{})
	h, err := New(Config{InnerPassword: "x", Registerer: prometheus.NewRegistry()}, st.nc, st.edges)
	if err != nil {
		t.Fatal(err)
	}
	h.(*chi.Mux).Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	var e errorBody
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != "internal error" {
		t.Fatalf("panic answer %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("after a panic: %d", rec.Code)
	}

	a := &api{log: slog.New(slog.DiscardHandler)}
	abort := a.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("ErrAbortHandler not passed on: %v", v)
		}
	}()
	abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}
