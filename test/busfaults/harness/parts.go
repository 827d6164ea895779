package harness

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	natsRe = regexp.MustCompile(`nats listening on (\S+)`)
	authRe = regexp.MustCompile(`answering plex\.auth on`)
	edgeRe = regexp.MustCompile(`edge (\S+) listening on (\S+) \(advertised (\S+)\)`)
	apiRe  = regexp.MustCompile(`api listening on (http://\S+)`)
)

// StartNATS runs `plex nats` with args (add --nats-port; 0 = a free port)
// and returns it with its client URL.
func StartNATS(t testing.TB, env []string, args ...string) (*Proc, string) {
	t.Helper()
	p := Start(t, env, append([]string{"nats", "--nats-bind", "127.0.0.1"}, args...)...)
	return p, p.WaitOut(natsRe, 15*time.Second)[1]
}

// StartAuth runs `plex auth` with args and waits until it answers.
func StartAuth(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	p := Start(t, env, append([]string{"auth"}, args...)...)
	p.WaitOut(authRe, 15*time.Second)
	return p
}

// StartDevAuth runs `plex auth` with the dev verifier (the auth body is the
// uid) on natsURL.
func StartDevAuth(t testing.TB, natsURL string, args ...string) *Proc {
	t.Helper()
	return StartAuth(t, nil, append([]string{"--nats", natsURL, "--verifier", "dev", "--allow-dev"}, args...)...)
}

// Edge is a running `plex edge`.
type Edge struct {
	*Proc
	ID   string // its id on the bus
	Addr string // where devices dial it
}

// StartEdge runs `plex edge` on a free loopback port with args (which
// should include --nats) and waits until it listens.
func StartEdge(t testing.TB, env []string, args ...string) *Edge {
	t.Helper()
	p := Start(t, env, append([]string{"edge", "--port", "0", "--bind", "127.0.0.1"}, args...)...)
	m := p.WaitOut(edgeRe, 15*time.Second)
	p.Name = "plex edge " + m[1]
	return &Edge{Proc: p, ID: m[1], Addr: m[2]}
}

// StartAPI runs `plex api` on a free loopback port with args and returns it
// with its base URL.
func StartAPI(t testing.TB, env []string, args ...string) (*Proc, string) {
	t.Helper()
	p := Start(t, env, append([]string{"api", "--http-port", "0", "--http-bind", "127.0.0.1"}, args...)...)
	return p, p.WaitOut(apiRe, 15*time.Second)[1]
}

// HTTPGet fetches url with an optional bearer and returns status and body.
func HTTPGet(url, bearer string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(req)
}

// HTTPPost posts a JSON body with an optional bearer.
func HTTPPost(url, bearer, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(req)
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func do(req *http.Request) (int, string, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// Metric scrapes a Prometheus text endpoint and returns the value of the
// first sample whose name and labels start with series, e.g.
// "go_goroutines" or `plex_edge_disconnects_total{reason="shutdown"}`.
func Metric(url, series string) (float64, error) {
	code, body, err := HTTPGet(url, "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d", url, code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, series) {
			continue
		}
		rest := line[len(series):]
		if strings.HasPrefix(rest, "{") && !strings.HasSuffix(series, "}") {
			rest = rest[strings.Index(rest, "}")+1:]
		}
		if len(rest) == 0 || rest[0] != ' ' {
			continue // a longer metric name with the same prefix
		}
		return strconv.ParseFloat(strings.Fields(rest)[0], 64)
	}
	return 0, fmt.Errorf("metric %s not found at %s", series, url)
}

// RSS returns the resident set size of process pid, in bytes, from
// /proc/<pid>/status (VmRSS).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// OpenFDs counts the open file descriptors of process pid.
func OpenFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
