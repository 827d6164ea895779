package cluster

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plexbus/plex/test/busfaults/harness"
)

// proc is a plex subprocess: harness.Proc, stopped with SIGTERM (then
// SIGKILL) at cleanup so nodes and edges leave the way operators stop them.
type proc struct {
	*harness.Proc
	t testing.TB
}

// startProc runs `plex args...`, logging at info (tests read the logs).
func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{Proc: harness.Start(t, nil, append(args, "--log-level", "info")...), t: t}
	p.Name = name
	t.Cleanup(p.stop) // runs before harness's own cleanup, which kills
	return p
}

// stop shuts the process down, failing the test if SIGTERM did not stop it
// within 15 s. Idempotent.
func (p *proc) stop() {
	if !p.Stop(15 * time.Second) {
		p.t.Errorf("%s did not stop on SIGTERM within 15s", p.Name)
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
	p := startProc(t, "nats "+name, args...)
	n := &natsProc{proc: p, node: name, monitor: "http://127.0.0.1:" + strconv.Itoa(mon)}
	n.url = p.WaitOut(natsURLRe, 15*time.Second)[1]
	n.route = p.WaitOut(natsRouteRe, time.Second)[1]
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
