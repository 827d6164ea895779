package hostile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plexbus/plex/test/busfaults/harness"
)

// edgeProc is a `plex edge` subprocess.
type edgeProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string // where devices dial
	metrics string // its /metrics URL
	log     *logTail
	done    chan struct{}
	exitErr error
}

var listenRe = regexp.MustCompile(`listening on (\S+) \(advertised`)

// startEdge runs `plex edge` on a free loopback port against natsURL,
// with --metrics-addr on another free port, plus extra flags. It is
// stopped with SIGTERM at cleanup, where a non-zero exit or a panic in
// its log fails the test.
func startEdge(t *testing.T, natsURL string, extra ...string) *edgeProc {
	t.Helper()
	bin := harness.Plex(t) // built without the race detector: the memory figures are the shipped binary's
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		mport := harness.FreePort(t)
		args := append([]string{"edge",
			"--nats", natsURL, "--bind", "127.0.0.1", "--port", "0",
			"--metrics-addr", "127.0.0.1:" + strconv.Itoa(mport),
			"--stats-interval", "1s", "--log-level", "info",
		}, extra...)
		e := &edgeProc{t: t, log: newLogTail(), done: make(chan struct{})}
		e.cmd = exec.Command(bin, args...)
		e.cmd.Env = os.Environ()
		e.cmd.Stderr = e.log
		stdout, err := e.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
					addr <- m[1]
				}
			}
		}()
		go func() {
			e.exitErr = e.cmd.Wait()
			close(e.done)
		}()
		select {
		case a := <-addr:
			e.addr = a
			e.metrics = "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
			t.Cleanup(e.stop)
			waitFor(t, 5*time.Second, "edge metrics endpoint", func() bool {
				_, err := e.tryScrape()
				return err == nil
			})
			return e
		case <-e.done:
			lastErr = e.log.String()
			if !strings.Contains(lastErr, "address already in use") {
				t.Fatalf("plex edge exited at start: %v\n%s", e.exitErr, lastErr)
			}
		case <-time.After(15 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
			t.Fatalf("plex edge did not start\n%s", e.log.String())
		}
	}
	t.Fatalf("plex edge could not get a metrics port: %s", lastErr)
	return nil
}

// stop sends SIGTERM and waits for a clean exit.
func (e *edgeProc) stop() {
	select {
	case <-e.done:
	default:
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(15 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.done
			e.t.Errorf("plex edge did not exit within 15 s of SIGTERM")
		}
	}
	if e.exitErr != nil {
		e.t.Errorf("plex edge exit: %v\n%s", e.exitErr, e.log.String())
	}
	if e.log.Contains("panic") {
		e.t.Errorf("plex edge panicked:\n%s", e.log.String())
	}
}

// rss is the edge's resident memory, from /proc/<pid>/status.
func (e *edgeProc) rss() int64 {
	e.t.Helper()
	n, err := vmRSS(e.cmd.Process.Pid)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// metricSet maps a series, written as Prometheus' text format writes it
// (`plex_edge_limited_total{limit="max_conns"}`), to its value.
type metricSet map[string]float64

func (e *edgeProc) scrape() metricSet {
	e.t.Helper()
	m, err := e.tryScrape()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *edgeProc) tryScrape() (metricSet, error) {
	res, err := http.Get(e.metrics)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", e.metrics, res.Status)
	}
	return parseMetrics(res.Body)
}

func parseMetrics(r io.Reader) (metricSet, error) {
	m := metricSet{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// get returns a series that must exist (the edge creates its label
// values at zero).
func (m metricSet) get(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := m[series]
	if !ok {
		t.Fatalf("no series %s in the edge's metrics", series)
	}
	return v
}

// delta is after − before of one series.
func delta(t *testing.T, before, after metricSet, series string) float64 {
	t.Helper()
	return after.get(t, series) - before.get(t, series)
}

// logTail keeps the last 64 KiB of a process's log and counts its lines.
type logTail struct {
	mu    sync.Mutex
	buf   []byte
	lines int
	panic bool
}

func newLogTail() *logTail { return &logTail{} }

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines += bytes.Count(p, []byte("\n"))
	if bytes.Contains(p, []byte("panic")) || bytes.Contains(p, []byte("fatal error")) {
		l.panic = true
	}
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - 64<<10; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// Lines is how many log lines were written so far.
func (l *logTail) Lines() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

func (l *logTail) Contains(s string) bool {
	if s == "panic" {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.panic
	}
	return strings.Contains(l.String(), s)
}
