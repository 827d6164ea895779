package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plexbus/plex/test/busfaults/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.Cleanup()
	os.Exit(code)
}

// runPlex runs a plex command to completion.
func runPlex(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return harness.Run(t, 20*time.Second, nil, args...)
}

var (
	natsRe = regexp.MustCompile(`nats   (nats://127\.0\.0\.1:\d+)`)
	edgeRe = regexp.MustCompile(`edge   (127\.0\.0\.1:\d+)`)
	apiRe  = regexp.MustCompile(`api    (http://127\.0\.0\.1:\d+)`)
)

// TestDevEndToEnd: plex dev on free ports, plex client as a device, pushes
// from plex push and from HTTP, then SIGINT.
func TestDevEndToEnd(t *testing.T) {
	dev := harness.Start(t, nil, "dev", "--port", "0", "--http-port", "0", "--nats-port", "0")
	natsURL := dev.WaitOut(natsRe, 15*time.Second)[1]
	edgeAddr := dev.WaitOut(edgeRe, time.Second)[1]
	apiURL := dev.WaitOut(apiRe, time.Second)[1]
	if !strings.Contains(dev.Stdout(), "plex push 42") || !strings.Contains(dev.Stdout(), "plex presence") {
		t.Fatalf("banner lacks the try-it lines:\n%s", dev.Stdout())
	}

	watcher := harness.Start(t, nil, "presence", "--nats", natsURL, "--json")
	waitUntil(t, 10*time.Second, "presence watcher subscribed", func() bool {
		return strings.Contains(watcher.Stderr(), "watching plex.presence")
	})
	cl := harness.Start(t, nil, "client", "--uid", "42", "--addr", edgeAddr, "--count", "2")
	viaHost := harness.Start(t, nil, "client", "--uid", "43", "--host-url", apiURL+"/plex/v1/host", "--count", "1", "--json")
	waitUntil(t, 10*time.Second, "both clients online", func() bool {
		_, _, c1 := runPlex(t, "online", "42", "--nats", natsURL)
		_, _, c2 := runPlex(t, "online", "43", "--nats", natsURL)
		return c1 == 0 && c2 == 0
	})

	out, errOut, code := runPlex(t, "push", "42", "hello from the cli", "--uri", "/notify", "--wait", "--nats", natsURL)
	if code != 0 || !strings.Contains(out, "delivered to 1 connection") {
		t.Fatalf("plex push: code %d\n%s%s", code, out, errOut)
	}
	req, _ := http.NewRequest("POST", apiURL+"/plex/v1/push?wait=1", strings.NewReader(`{"uids":["42","43"],"body":"hello over http"}`))
	req.Header.Set("Authorization", "Bearer plex-inner")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"delivered":2`) {
		t.Fatalf("HTTP push: %d %s", resp.StatusCode, body)
	}

	if code, _ := cl.Wait(10 * time.Second); code != 0 {
		t.Fatalf("client exit %d: %s", code, cl.Stderr())
	}
	lines := strings.Split(strings.TrimSpace(cl.Stdout()), "\n")
	if len(lines) != 2 || lines[0] != "[1] /notify hello from the cli" || lines[1] != "[2] /push hello over http" {
		t.Fatalf("client printed:\n%s", cl.Stdout())
	}
	if code, _ := viaHost.Wait(10 * time.Second); code != 0 || !strings.Contains(viaHost.Stdout(), `"body":"hello over http"`) {
		t.Fatalf("host-url client exit %d printed %q", code, viaHost.Stdout())
	}
	_, _, code = runPlex(t, "online", "42", "--api", apiURL, "--inner-password", "plex-inner")
	if code != 3 {
		t.Fatalf("plex online of a user who left: exit %d, want 3", code)
	}
	waitUntil(t, 5*time.Second, "presence events "+watcher.Stdout(), func() bool {
		s := watcher.Stdout()
		return strings.Count(s, `"online":true`) >= 2 && strings.Count(s, `"online":false`) >= 2
	})

	startStop := time.Now()
	dev.Signal(syscall.SIGINT)
	if code, _ := dev.Wait(5 * time.Second); code != 0 {
		t.Fatalf("plex dev exit %d after SIGINT\n%s", code, dev.Stderr())
	}
	t.Logf("plex dev stopped %s after SIGINT", time.Since(startStop).Round(time.Millisecond))
	watcher.Signal(syscall.SIGINT)
	if code, _ := watcher.Wait(5 * time.Second); code != 0 {
		t.Fatalf("plex presence exit %d", code)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHelpAndUsage: every command's help has examples and env variables;
// usage errors exit 2 with one line; env variables set flags.
func TestHelpAndUsage(t *testing.T) {
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		out, _, code := runPlex(t, c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "[$PLEX_") {
			t.Errorf("plex %s --help: exit %d, examples or env missing:\n%s", c.Name(), code, out)
		}
	}
	_, errOut, code := runPlex(t, "edge", "--byte-order", "middle")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "plex: ") {
		t.Errorf("bad flag value: exit %d, stderr %q", code, errOut)
	}
	for _, c := range []string{"dev", "edge", "nats", "auth", "api"} {
		_, errOut, code = runPlex(t, c, "--gomaxprocs", "0")
		if code != 2 || !strings.Contains(errOut, "--gomaxprocs") {
			t.Errorf("plex %s --gomaxprocs 0: exit %d, stderr %q", c, code, errOut)
		}
	}
	_, errOut, code = runPlex(t, "push")
	if code != 2 {
		t.Errorf("push without args: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runPlex(t, "online", "not.a.uid")
	if code != 2 || !strings.Contains(errOut, "invalid uid") {
		t.Errorf("invalid uid: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runPlex(t, "api")
	if code != 2 || !strings.Contains(errOut, "--inner-password") {
		t.Errorf("api without password: exit %d, stderr %q", code, errOut)
	}
	// An env variable reaches the flag: an unreachable NATS from PLEX_NATS.
	cmd := exec.Command(harness.Plex(t), "online", "42", "--timeout", "1s")
	cmd.Env = append(os.Environ(), "PLEX_NATS=nats://127.0.0.1:1")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "127.0.0.1:1") {
		t.Errorf("PLEX_NATS not applied: exit %d, %s", cmd.ProcessState.ExitCode(), out)
	}
	cmd = exec.Command(harness.Plex(t), "edge", "--port", "1")
	cmd.Env = append(os.Environ(), "PLEX_BYTE_ORDER=sideways")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "byte-order") {
		t.Errorf("bad env value: exit %d, %s", cmd.ProcessState.ExitCode(), out)
	}
}

// TestBenchEndToEnd runs plex bench with child processes against plex dev:
// the last stdout line is one JSON object with the merged figures.
func TestBenchEndToEnd(t *testing.T) {
	dev := harness.Start(t, nil, "dev", "--port", "0", "--http-port", "0", "--nats-port", "0")
	natsURL := dev.WaitOut(natsRe, 15*time.Second)[1]
	edgeAddr := dev.WaitOut(edgeRe, time.Second)[1]
	lastJSON := func(out string) map[string]any {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
			t.Fatalf("last line not JSON: %q", lines[len(lines)-1])
		}
		return v
	}
	out, errOut, code := runPlex(t, "bench", "conns", "--addr", edgeAddr, "-n", "300", "--procs", "2", "--steps", "2", "--settle", "100ms",
		"--edge-pid", fmt.Sprint(dev.Pid()))
	if code != 0 {
		t.Fatalf("bench conns: exit %d\n%s%s", code, out, errOut)
	}
	if v := lastJSON(out); v["connected"].(float64) != 300 || v["processes"].(float64) != 2 || v["rss_per_conn_bytes"] == nil {
		t.Fatalf("bench conns result %v", v)
	}
	out, errOut, code = runPlex(t, "bench", "push", "--addr", edgeAddr, "--nats", natsURL, "-n", "60", "--procs", "2",
		"--rate", "1200", "--duration", "1s", "--warmup", "200ms", "--uid-prefix", "bp-")
	if code != 0 {
		t.Fatalf("bench push: exit %d\n%s%s", code, out, errOut)
	}
	v := lastJSON(out)
	if v["sent"].(float64) == 0 || v["lost"].(float64) != 0 || v["reordered"].(float64) != 0 || v["processes"].(float64) != 2 {
		t.Fatalf("bench push result %v", v)
	}
	if r := v["delivered_per_sec"].(float64); r < 600 || r > 1800 {
		t.Fatalf("bench push rate %v at --rate 1200", r)
	}
}

// TestGOMAXPROCSFlag: a server process runs on one P by default (auto) and
// on what --gomaxprocs says otherwise, as its Go metrics show.
func TestGOMAXPROCSFlag(t *testing.T) {
	if runtime.NumCPU() < 2 || os.Getenv("GOMAXPROCS") != "" {
		t.Skip("needs 2 CPUs and no GOMAXPROCS in the environment")
	}
	ns := harness.Start(t, nil, "nats", "--nats-port", "0")
	natsURL := ns.WaitOut(regexp.MustCompile(`nats listening on (nats://\S+)`), 15*time.Second)[1]
	metricsRe := regexp.MustCompile(`metrics on (http://\S+)`)
	gomaxprocs := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\d+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no go_sched_gomaxprocs_threads in /metrics")
		}
		return string(m[1])
	}
	for _, tc := range []struct{ flag, want string }{{"auto", "1"}, {"2", "2"}} {
		auth := harness.Start(t, nil, "auth", "--verifier", "dev", "--allow-dev", "--nats", natsURL,
			"--metrics-addr", "127.0.0.1:0", "--gomaxprocs", tc.flag)
		url := auth.WaitOut(metricsRe, 15*time.Second)[1]
		// auto lowers the Ps just after the parts start; give it a moment.
		var got string
		waitUntil(t, 5*time.Second, "GOMAXPROCS "+tc.want+" with --gomaxprocs "+tc.flag, func() bool {
			got = gomaxprocs(url)
			return got == tc.want
		})
		auth.Signal(syscall.SIGINT)
		if code, _ := auth.Wait(5 * time.Second); code != 0 {
			t.Fatalf("plex auth exit %d", code)
		}
	}
}
