package authsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/plexbus/plex/bus"
)

// Webhook defaults.
const (
	DefaultWebhookTimeout     = 5 * time.Second
	DefaultWebhookMaxResponse = 64 << 10
)

// WebhookConfig configures the Webhook verifier.
type WebhookConfig struct {
	// URL receives a POST of the bus.AuthRequest as JSON. http or https;
	// required. It may carry credentials: it is never logged.
	URL string
	// Header is added to every request, e.g. an Authorization header the
	// business checks. Never logged.
	Header http.Header
	// Timeout bounds one call, body included. Zero = 5 s; negative is an
	// error. The service's VerifyTimeout also applies.
	Timeout time.Duration
	// MaxResponse bounds the response body, in bytes; a longer 200
	// response is an error. Zero = 64 KiB; negative is an error.
	MaxResponse int64
	// Client makes the calls. Nil = a client of its own with Timeout that
	// does not follow redirects and keeps up to 64 idle connections.
	Client *http.Client
}

// Webhook asks the business's HTTP endpoint. It POSTs the auth request as
// JSON ({"body","remote","edge","conn"}) and reads the answer:
//
//   - 200 with {"uid": "..."}: accepted as that uid;
//   - 200 without a uid, or any 4xx: refused, with the JSON body's
//     "reason" field when there is one, else "refused";
//   - any other status, a network error or a timeout: an ErrUnavailable
//     error (logged; the client sees "auth unavailable");
//   - a 200 body that is not JSON or too long: an error ("auth error").
type Webhook struct {
	url    string
	header http.Header
	max    int64
	client *http.Client
}

var _ Verifier = (*Webhook)(nil)

// webhookReply is the JSON a webhook answers.
type webhookReply struct {
	UID    string `json:"uid"`
	Reason string `json:"reason"`
}

// NewWebhook checks cfg and returns the verifier.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("authsvc: webhook: unparsable URL") // err would echo the URL
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("authsvc: webhook: URL %s: want an http or https URL", u.Redacted())
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("authsvc: webhook: negative timeout %s", cfg.Timeout)
	}
	if cfg.MaxResponse < 0 {
		return nil, fmt.Errorf("authsvc: webhook: negative MaxResponse %d", cfg.MaxResponse)
	}
	w := &Webhook{url: cfg.URL, header: cfg.Header.Clone(), max: cfg.MaxResponse, client: cfg.Client}
	if w.max == 0 {
		w.max = DefaultWebhookMaxResponse
	}
	if w.client == nil {
		timeout := cfg.Timeout
		if timeout == 0 {
			timeout = DefaultWebhookTimeout
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 64
		tr.MaxIdleConnsPerHost = 64
		w.client = &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return w, nil
}

// Verify asks the webhook about req.
func (w *Webhook) Verify(ctx context.Context, req bus.AuthRequest) (string, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("authsvc: webhook: encode request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(data))
	if err != nil {
		return "", errors.New("authsvc: webhook: build request") // err would echo the URL
	}
	for k, v := range w.header {
		hreq.Header[k] = v
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if hreq.Header.Get("User-Agent") == "" {
		hreq.Header.Set("User-Agent", "plex-authsvc")
	}
	resp, err := w.client.Do(hreq)
	if err != nil {
		return "", fmt.Errorf("%w: webhook: %w", ErrUnavailable, stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, w.max+1))
	if err != nil {
		return "", fmt.Errorf("%w: webhook: read response: %w", ErrUnavailable, stripURL(err))
	}
	tooLong := int64(len(body)) > w.max

	switch {
	case resp.StatusCode == http.StatusOK:
		if tooLong {
			return "", fmt.Errorf("authsvc: webhook: response longer than %d bytes", w.max)
		}
		var rep webhookReply
		if err := json.Unmarshal(body, &rep); err != nil {
			return "", fmt.Errorf("authsvc: webhook: 200 response is not JSON: %w", err)
		}
		if rep.UID == "" {
			return "", Refuse(rep.Reason)
		}
		return rep.UID, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var rep webhookReply
		if !tooLong && json.Unmarshal(body, &rep) == nil {
			return "", Refuse(rep.Reason)
		}
		return "", Refuse(ReasonRefused)
	default:
		return "", fmt.Errorf("%w: webhook: status %d", ErrUnavailable, resp.StatusCode)
	}
}

// CloseIdleConnections closes the client's idle keep-alive connections.
// The webhook stays usable.
func (w *Webhook) CloseIdleConnections() { w.client.CloseIdleConnections() }

// stripURL drops the URL that net/http puts in its errors: it may carry
// credentials.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s: %w", uerr.Op, uerr.Err)
	}
	return err
}
