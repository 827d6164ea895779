//go:build linux

package busfaults

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/client"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
)

// sdkDevice is a client SDK device whose callbacks the test reads.
type sdkDevice struct {
	mu       sync.Mutex
	connects []string // edge addresses, in order
	discErrs []error
	msgs     []string
}

func (d *sdkDevice) lastConnect() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.connects) == 0 {
		return ""
	}
	return d.connects[len(d.connects)-1]
}

func (d *sdkDevice) got(body string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.msgs {
		if m == body {
			return true
		}
	}
	return false
}

// runSDK runs a client SDK device with a host-discovery URL until cleanup.
func runSDK(t *testing.T, hostURL, auth string) *sdkDevice {
	t.Helper()
	d := &sdkDevice{}
	c, err := client.New(client.Config{
		HostURL: hostURL,
		Auth:    auth,
		Backoff: client.Backoff{Base: 100 * time.Millisecond, Max: time.Second},
		OnConnect: func(ci client.ConnectInfo) {
			d.mu.Lock()
			d.connects = append(d.connects, ci.Addr)
			d.mu.Unlock()
		},
		OnDisconnect: func(di client.DisconnectInfo) {
			d.mu.Lock()
			d.discErrs = append(d.discErrs, di.Err)
			d.mu.Unlock()
		},
		OnMessage: func(m client.Message) {
			d.mu.Lock()
			d.msgs = append(d.msgs, m.Body)
			d.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Close()
		if err := <-done; err != nil {
			t.Errorf("client Run: %v", err)
		}
	})
	return d
}

// TestEdgeSIGTERM: SIGTERM on a `plex edge` process drains it. It stops
// accepting at once, sends /reconnect to every device, publishes offline
// presence (reason shutdown) for every connection, tells host discovery it
// is draining, and exits 0 within its drain timeout. A client SDK device
// that found it through the host URL reconnects to the other edge, where
// pushes reach it.
func TestEdgeSIGTERM(t *testing.T) {
	t.Parallel()
	const devices = 50
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	url := ns.ClientURL()
	nc := connectBus(t, url)
	var pmu sync.Mutex
	offline := map[string]string{} // conn → reason, for the draining edge
	psub, err := bus.SubscribePresence(nc, func(p bus.Presence) {
		if !p.Online {
			pmu.Lock()
			offline[p.Conn] = p.Reason
			pmu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer psub.Unsubscribe()
	harness.StartDevAuth(t, url)
	_, apiURL := harness.StartAPI(t, nil, "--nats", url, "--inner-password", "ops-secret")
	edgeArgs := []string{"--nats", url, "--stats-interval", "200ms", "--drain-timeout", "5s"}
	e1 := harness.StartEdge(t, nil, edgeArgs...)
	waitEdges(t, apiURL, e1.ID)

	fleet := newFleet(t, harness.FleetConfig{})
	conns := loginAll(t, fleet, e1.Addr, uids("d", devices))
	sdk := runSDK(t, apiURL+"/plex/v1/host", "sdk-user")
	harness.WaitFor(t, 10*time.Second, "the SDK device on edge 1", func() bool { return sdk.lastConnect() == e1.Addr })
	// A device that stopped reading: the drain waits for it only so long.
	stuck := harness.Dial(t, e1.Addr)
	stuck.Login("stuck")

	e2 := harness.StartEdge(t, nil, edgeArgs...)
	waitEdges(t, apiURL, e1.ID, e2.ID)

	sigterm := time.Now()
	e1.Signal(syscall.SIGTERM)
	refused := harness.WaitFor(t, 2*time.Second, "edge 1 refusing new connections", func() bool {
		c, err := net.DialTimeout("tcp", e1.Addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if e1.Exited() {
		t.Fatal("edge 1 exited before the drain could be observed")
	}
	code, exited := e1.Wait(10 * time.Second)
	drain := exited.Sub(sigterm)
	if code != 0 {
		t.Fatalf("edge exit code %d after SIGTERM", code)
	}
	if drain > 5*time.Second+2*time.Second {
		t.Fatalf("drain took %s, over its 5 s drain timeout", drain)
	}
	t.Logf("MEASURED: SIGTERM drain of an edge with %d connections: refusing new connections after %s, exited 0 after %s",
		devices+2, refused.Round(time.Millisecond), drain.Round(time.Millisecond))

	for _, c := range conns {
		if !c.Reconnect.Load() || !c.PeerClosed.Load() {
			t.Fatalf("%s: /reconnect %v, closed %v", c.UID, c.Reconnect.Load(), c.PeerClosed.Load())
		}
	}
	harness.WaitFor(t, 5*time.Second, "offline presence for every connection", func() bool {
		pmu.Lock()
		defer pmu.Unlock()
		n := 0
		for conn, reason := range offline {
			if strings.HasPrefix(conn, e1.ID+"-") && reason == "shutdown" {
				n++
			}
		}
		return n == devices+2
	})

	harness.WaitFor(t, 10*time.Second, "the SDK device on edge 2", func() bool { return sdk.lastConnect() == e2.Addr })
	sdk.mu.Lock()
	firstErr := sdk.discErrs[0]
	sdk.mu.Unlock()
	if !errors.Is(firstErr, client.ErrServerReconnect) {
		t.Fatalf("SDK disconnect: %v, want ErrServerReconnect", firstErr)
	}
	harness.WaitFor(t, 5*time.Second, "a push through edge 2", func() bool {
		_ = bus.Publish(nc, bus.Push{UID: "sdk-user", Body: []byte("after drain")})
		time.Sleep(50 * time.Millisecond)
		return sdk.got("after drain")
	})
}

// waitEdges waits until the API lists exactly these live edges.
func waitEdges(t *testing.T, apiURL string, ids ...string) {
	t.Helper()
	harness.WaitFor(t, 10*time.Second, "edges "+strings.Join(ids, ","), func() bool {
		code, body, err := harness.HTTPGet(apiURL+"/plex/v1/edges", "ops-secret")
		if err != nil || code != 200 {
			return false
		}
		for _, id := range ids {
			if !strings.Contains(body, `"id":"`+id+`"`) {
				return false
			}
		}
		return strings.Count(body, `"id":`) == len(ids)
	})
}
