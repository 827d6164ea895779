package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// hostReply is the answer of GET /plex/v1/host. Times are seconds.
type hostReply struct {
	Host      string       `json:"host"`
	Heartbeat float64      `json:"heartbeat"`
	Backoff   *hostBackoff `json:"backoff"`
	Error     string       `json:"error"`
}

type hostBackoff struct {
	Base   *float64 `json:"base"`
	Factor *float64 `json:"factor"`
	Jitter *float64 `json:"jitter"`
	Max    *float64 `json:"max"`
}

// maxHostReply bounds the discovery reply read into memory.
const maxHostReply = 64 << 10

// discover asks the host URL for an edge.
func discover(ctx context.Context, hc *http.Client, url string) (hostReply, error) {
	var rep hostReply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrNoHost, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrNoHost, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHostReply))
	if err != nil {
		return rep, fmt.Errorf("%w: read reply: %w", ErrNoHost, err)
	}
	jerr := json.Unmarshal(body, &rep)
	if resp.StatusCode != http.StatusOK {
		msg := rep.Error
		if jerr != nil || msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return rep, fmt.Errorf("%w: %s: %d %s", ErrNoHost, url, resp.StatusCode, msg)
	}
	if jerr != nil {
		return rep, fmt.Errorf("%w: bad reply: %w", ErrNoHost, jerr)
	}
	if _, _, err := net.SplitHostPort(rep.Host); err != nil {
		return rep, fmt.Errorf("%w: bad host %q: %w", ErrNoHost, rep.Host, err)
	}
	return rep, nil
}

// newHTTPClient is the private discovery client: no keep-alives, so
// nothing lingers between reconnects (and no goroutine outlives Run).
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

// heartbeatOf converts an announced interval in seconds; 0 = none.
func heartbeatOf(secs float64) time.Duration {
	if secs <= 0 {
		return 0
	}
	return seconds(secs)
}
