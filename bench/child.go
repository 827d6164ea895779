package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The parent and a child process talk in lines. Parent → child: a command
// ("connect N", "hold NS", "finish", "go"); child → parent: "progress C F"
// at any time, then "ok", "result <json>" or "error <text>" per command.

// Child is a Worker running in a child process (`plex bench … --child`).
type Child struct {
	cmd       *exec.Cmd
	in        io.WriteCloser
	replies   chan string
	connected atomic.Int64
	failed    atomic.Int64
	readDone  chan struct{}
	waitOnce  sync.Once
	waitErr   error
}

// StartChild starts cmd (stdout must be unset) and reads its lines.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	c := &Child{cmd: cmd, in: in, replies: make(chan string, 4), readDone: make(chan struct{})}
	go c.readLines(out)
	return c, nil
}

func (c *Child) readLines(out io.Reader) {
	defer close(c.readDone)
	defer close(c.replies)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "progress "); ok {
			var conn, fail int64
			if _, err := fmt.Sscan(rest, &conn, &fail); err == nil {
				c.connected.Store(conn)
				c.failed.Store(fail)
			}
			continue
		}
		c.replies <- line
	}
}

// call sends a command and waits for its reply line.
func (c *Child) call(ctx context.Context, command string) (string, error) {
	if _, err := io.WriteString(c.in, command+"\n"); err != nil {
		return "", fmt.Errorf("child: send %q: %w", command, err)
	}
	select {
	case line, ok := <-c.replies:
		if !ok {
			return "", fmt.Errorf("child exited: %w", c.wait())
		}
		if rest, isErr := strings.CutPrefix(line, "error "); isErr {
			return "", errors.New("child: " + rest)
		}
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *Child) wait() error {
	c.waitOnce.Do(func() {
		<-c.readDone
		c.waitErr = c.cmd.Wait()
	})
	return c.waitErr
}

// Kill stops the child at once (on an error elsewhere).
func (c *Child) Kill() {
	_ = c.cmd.Process.Kill()
	_ = c.wait()
}

func (c *Child) Connect(ctx context.Context, n int) error {
	_, err := c.call(ctx, "connect "+strconv.Itoa(n))
	return err
}

func (c *Child) Progress() (int64, int64) { return c.connected.Load(), c.failed.Load() }

func (c *Child) Hold(ctx context.Context, iv time.Duration) error {
	_, err := c.call(ctx, "hold "+strconv.FormatInt(int64(iv), 10))
	return err
}

func (c *Child) Finish(ctx context.Context) (ConnsPart, error) {
	var part ConnsPart
	err := c.result(ctx, "finish", &part)
	return part, err
}

// result sends command and decodes its "result <json>" reply into v, then
// waits for the child to exit.
func (c *Child) result(ctx context.Context, command string, v any) error {
	line, err := c.call(ctx, command)
	if err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(line, "result ")
	if !ok {
		return fmt.Errorf("child: unexpected reply %q", line)
	}
	if err := json.Unmarshal([]byte(rest), v); err != nil {
		return fmt.Errorf("child: bad result: %w", err)
	}
	_ = c.in.Close()
	return c.wait()
}

// ServeWorker is the child's side for a connection benchmark: it runs the
// parent's commands on w, reporting progress every half second.
func ServeWorker(ctx context.Context, w Worker, in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c, f := w.Progress()
				say("progress %d %d", c, f)
			case <-stop:
				return
			}
		}
	}()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "connect":
			n, _ := strconv.Atoi(arg)
			if err := w.Connect(ctx, n); err != nil {
				say("error %v", err)
				continue
			}
			c, f := w.Progress()
			say("progress %d %d", c, f)
			say("ok")
		case "hold":
			ns, _ := strconv.ParseInt(arg, 10, 64)
			if err := w.Hold(ctx, time.Duration(ns)); err != nil {
				say("error %v", err)
				continue
			}
			say("ok")
		case "finish":
			part, err := w.Finish(ctx)
			if err != nil {
				say("error %v", err)
				return err
			}
			data, _ := json.Marshal(part)
			say("result %s", data)
			return nil
		default:
			say("error unknown command %q", cmd)
		}
	}
	return sc.Err()
}

// Ready asks a push child to connect its users and waits until it has.
func (c *Child) Ready(ctx context.Context) error {
	line, err := c.call(ctx, "start")
	if err != nil {
		return err
	}
	if line != "ready" {
		return fmt.Errorf("child: unexpected reply %q", line)
	}
	return nil
}

// Go starts a ready push child and returns its result.
func (c *Child) Go(ctx context.Context) (PushResult, error) {
	var r PushResult
	err := c.result(ctx, "go", &r)
	return r, err
}
