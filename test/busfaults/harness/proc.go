package harness

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// Plex builds the plex binary once per test process (without the race
// detector: it is the product under test, not the test) and returns its
// path. Call Cleanup from TestMain to remove it.
func Plex(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "plex-faults-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "plex")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/plexbus/plex/cmd/plex")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/plex: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Cleanup removes the binary Plex built.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Proc is a plex subprocess whose output the test reads.
type Proc struct {
	t    testing.TB
	Name string // for failure messages: the subcommand and a label
	cmd  *exec.Cmd

	mu     sync.Mutex // guards out and errOut
	out    bytes.Buffer
	errOut bytes.Buffer

	done    chan struct{} // closed when the process has exited
	exitErr error         // set before done is closed
	ended   time.Time     // set before done is closed
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

// Start runs plex with args. Unless args set --log-level, the process logs
// at warn. PLEX_* variables of the test's environment are not passed on;
// env adds variables (NAME=value).
func Start(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	hasLevel := false
	for _, a := range args {
		if a == "--log-level" || strings.HasPrefix(a, "--log-level=") {
			hasLevel = true
		}
	}
	if !hasLevel {
		args = append(args, "--log-level", "warn")
	}
	p := &Proc{t: t, Name: "plex " + args[0], done: make(chan struct{})}
	p.cmd = exec.Command(Plex(t), args...)
	p.cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLEX_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	dieWithParent(p.cmd)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.errOut}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitErr, p.ended = err, time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
		}
		<-p.done
		if t.Failed() {
			t.Logf("%s (pid %d) stderr:\n%s", p.Name, p.cmd.Process.Pid, tail(p.Stderr(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stdout is everything the process printed on standard output so far.
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Stderr is everything the process printed on standard error so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errOut.String()
}

// Output is standard output and standard error together.
func (p *Proc) Output() string { return p.Stdout() + p.Stderr() }

// WaitOut waits until standard output matches re and returns the match.
func (p *Proc) WaitOut(re *regexp.Regexp, d time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(p.Stdout()); m != nil {
			return m
		}
		if p.Exited() || time.Now().After(deadline) {
			p.t.Fatalf("%s: stdout never matched %s (exited %v)\nstdout:\n%s\nstderr:\n%s",
				p.Name, re, p.Exited(), p.Stdout(), tail(p.Stderr(), 4000))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit and returns its exit code
// and when it exited. It fails the test if it does not exit in time.
func (p *Proc) Wait(d time.Duration) (code int, at time.Time) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %s\nstderr:\n%s", p.Name, d, tail(p.Stderr(), 4000))
	}
	var ee *exec.ExitError
	switch {
	case p.exitErr == nil:
		return 0, p.ended
	case errors.As(p.exitErr, &ee):
		return ee.ExitCode(), p.ended
	}
	p.t.Fatalf("%s: %v", p.Name, p.exitErr)
	return -1, p.ended
}

// Stop asks the process to shut down (SIGTERM) and kills it if it has not
// exited within d. It reports whether it stopped by itself; a process that
// had already exited counts as stopped.
func (p *Proc) Stop(d time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return false
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() time.Time {
	p.t.Helper()
	p.Signal(syscall.SIGKILL)
	_, at := p.Wait(10 * time.Second)
	return at
}

// Run runs plex to completion (a CLI call) and returns its output and exit code.
func Run(t testing.TB, timeout time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := Start(t, env, args...)
	code, _ = p.Wait(timeout)
	return p.Stdout(), p.Stderr(), code
}

// FreePort returns a TCP port that was free on every address a moment ago,
// for processes that must be told their port (and bind it again after a
// restart). It is taken from just below the kernel's ephemeral range where
// there is room: a port from that range may meanwhile become the local end
// of some outgoing connection (the hostile and bench tests open thousands),
// and the bind would then fail with "address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	if low := ephemeralLow(); low >= 3072 {
		for range 1000 {
			p := low - 2048 + rand.IntN(2048)
			if ln, err := net.Listen("tcp", ":"+strconv.Itoa(p)); err == nil {
				ln.Close()
				return p
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port of Linux's ephemeral range, or -1.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return -1
	}
	return n
}

// WaitFor polls cond every few milliseconds until it holds, failing the
// test after d. It returns how long it took.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}
