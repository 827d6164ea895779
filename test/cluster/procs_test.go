package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plexbus/plex/test/busfaults/harness"
)

// builtDir is the temporary directory of the plex binary built for the
// tests, removed when they end.
var builtDir atomic.Pointer[string]

// plexBinary builds cmd/plex once per test run.
var plexBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "plex-cluster-")
	if err != nil {
		return "", err
	}
	builtDir.Store(&dir)
	bin := filepath.Join(dir, "plex")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/plexbus/plex/cmd/plex").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func buildPlex(t testing.TB) string {
	t.Helper()
	bin, err := plexBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// proc is a plex subprocess. Its output is kept and shown if the test
// fails; it is stopped (SIGTERM, then SIGKILL) at cleanup.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // Wait's result, after done

	mu  sync.Mutex
	out bytes.Buffer // stdout
	log bytes.Buffer // stderr
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startProc runs `plex args...` in dir (empty = a fresh temporary one).
func startProc(t testing.TB, name, dir string, args ...string) *proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(buildPlex(t), args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "PLEX_LOG_LEVEL=info")
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.log}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s (plex %v): stdout:\n%s--- stderr:\n%s", p.name, args, p.stdout(), p.stderr())
		}
	})
	return p
}

func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOut waits until stdout matches re and returns the submatches.
func (p *proc) waitOut(re *regexp.Regexp, d time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stdout()); m != nil {
			return m
		}
		if p.exited() {
			p.t.Fatalf("%s exited (%v) before printing %s\nstderr:\n%s", p.name, p.err, re, p.stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: stdout never matched %s\nstdout:\n%s\nstderr:\n%s", p.name, re, p.stdout(), p.stderr())
	return nil
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to shut down (SIGTERM) and waits up to 15 s before
// killing it. Idempotent.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s did not stop on SIGTERM within 15s", p.name)
		p.kill()
	}
}

// natsProc is a `plex nats` node.
type natsProc struct {
	*proc
	node    string // server name
	url     string // client URL
	route   string // nats-route:// URL
	monitor string // http://host:port of nats-server's monitoring
}

var (
	natsURLRe   = regexp.MustCompile(`nats listening on (nats://\S+)`)
	natsRouteRe = regexp.MustCompile(`cluster routes on (nats-route://\S+)`)
)

// startNATSProc runs `plex nats` as node name of cluster "plex" on free
// ports, with routes to the given nodes.
func startNATSProc(t testing.TB, name string, routes ...*natsProc) *natsProc {
	t.Helper()
	mon := harness.FreePort(t)
	args := []string{"nats", "--nats-port", "0", "--server-name", name,
		"--cluster-name", "plex", "--cluster-listen", "127.0.0.1:0",
		"--nats-monitor-port", strconv.Itoa(mon)}
	if len(routes) > 0 {
		urls := make([]string, len(routes))
		for i, r := range routes {
			urls[i] = r.route
		}
		args = append(args, "--routes", strings.Join(urls, ","))
	}
	p := startProc(t, "nats "+name, "", args...)
	n := &natsProc{proc: p, node: name, monitor: "http://127.0.0.1:" + strconv.Itoa(mon)}
	n.url = p.waitOut(natsURLRe, 15*time.Second)[1]
	n.route = p.waitOut(natsRouteRe, time.Second)[1]
	return n
}

// holds reports whether a client of this node subscribes to subject,
// from nats-server's /connz.
func (n *natsProc) holds(subject string) (bool, error) {
	resp, err := http.Get(n.monitor + "/connz?subs=1&limit=1024")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var cz struct {
		Connections []struct {
			Subs []string `json:"subscriptions_list"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
		return false, err
	}
	for _, c := range cz.Connections {
		if slices.Contains(c.Subs, subject) {
			return true, nil
		}
	}
	return false, nil
}

// execOutput runs a command to completion and returns its stdout and stderr.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
