package pushapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
)

// waitParallel bounds the uids of one ?wait=1 push waited for at once.
const waitParallel = 64

const busDown = "bus unavailable"

// pushRequest is the body of POST /plex/v1/push. Exactly one of UID and
// UIDs is given.
type pushRequest struct {
	UID  *string  `json:"uid"`
	UIDs []string `json:"uids"`
	URI  string   `json:"uri"`  // frame uri; empty = the edge's default, /push
	Body string   `json:"body"` // frame body, delivered verbatim
	Seq  int64    `json:"seq"`  // frame seq; 0 = assigned by the edge
}

// pushTarget is a validated push.
type pushTarget struct {
	uids   []string // distinct, in request order
	single bool     // the request named one "uid" (not "uids")
	uri    string
	body   []byte
	seq    int64
}

// Answers of POST /plex/v1/push.
type (
	acceptedAnswer struct {
		Accepted int `json:"accepted"`
	}
	deliveredAnswer struct {
		Delivered int `json:"delivered"`
	}
	deliveredManyAnswer struct {
		Delivered int               `json:"delivered"`
		Results   map[string]int    `json:"results"`
		Errors    map[string]string `json:"errors,omitempty"`
	}
)

// push answers POST /plex/v1/push.
func (a *api) push(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	pt, status, err := a.parsePush(r.Body)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	if !a.bus.IsConnected() {
		writeError(w, http.StatusServiceUnavailable, busDown)
		return
	}
	start := time.Now()
	if wait {
		a.pushWait(w, r, pt)
	} else {
		a.pushAsync(w, r, pt)
	}
	a.metrics.pushDuration.WithLabelValues(strconv.FormatBool(wait)).Observe(time.Since(start).Seconds())
}

func parseWait(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("wait: %q is not a boolean (use wait=1)", v)
	}
	return b, nil
}

// parsePush decodes and validates a push body; the status goes with the error.
func (a *api) parsePush(body io.Reader) (pushTarget, int, error) {
	var req pushRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return pushTarget{}, decodeStatus(err), decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return pushTarget{}, decodeStatus(err), decodeError(err)
		}
		return pushTarget{}, http.StatusBadRequest, errors.New("request body: more than one JSON value")
	}
	bad := func(format string, args ...any) (pushTarget, int, error) {
		return pushTarget{}, http.StatusBadRequest, fmt.Errorf(format, args...)
	}
	pt := pushTarget{uri: req.URI, body: []byte(req.Body), seq: req.Seq}
	switch {
	case req.UID != nil && req.UIDs != nil:
		return bad(`give "uid" or "uids", not both`)
	case req.UID != nil:
		if err := bus.ValidUID(*req.UID); err != nil {
			return bad("%s", uidError(err))
		}
		pt.uids, pt.single = []string{*req.UID}, true
	case req.UIDs != nil:
		if len(req.UIDs) == 0 {
			return bad(`"uids" is empty`)
		}
		if len(req.UIDs) > a.cfg.MaxUIDs {
			return bad("too many uids: %d, at most %d per request", len(req.UIDs), a.cfg.MaxUIDs)
		}
		seen := make(map[string]struct{}, len(req.UIDs))
		for i, uid := range req.UIDs {
			if err := bus.ValidUID(uid); err != nil {
				return bad("uids[%d]: %s", i, uidError(err))
			}
			if _, dup := seen[uid]; !dup {
				seen[uid] = struct{}{}
				pt.uids = append(pt.uids, uid)
			}
		}
	default:
		return bad(`missing "uid" or "uids"`)
	}
	if len(req.URI) > maxURILen {
		return bad("uri: longer than %d bytes", maxURILen)
	}
	if i := strings.IndexFunc(req.URI, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return bad("uri: control character at byte %d", i)
	}
	if n := len(req.Body) + len(req.URI); n > a.cfg.MaxMessageBytes {
		return pushTarget{}, http.StatusRequestEntityTooLarge,
			fmt.Errorf("message of %d bytes (body + uri): at most %d, edges drop larger frames", n, a.cfg.MaxMessageBytes)
	}
	return pt, 0, nil
}

func decodeStatus(err error) int {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// decodeError words a JSON decoding error for the caller.
func decodeError(err error) error {
	if mb, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return errors.New(tooLarge(mb.Limit))
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("request body: malformed JSON at byte %d: %v", se.Offset, se)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return fmt.Errorf("request body: want a JSON object, got %s", te.Value)
		}
		return fmt.Errorf("%q must be %s, got %s", te.Field, jsonType(te.Type.Kind().String()), te.Value)
	}
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("request body: empty, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("request body: truncated JSON")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return fmt.Errorf("request body: %s", msg) // e.g. unknown field "x"
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "int64", "int":
		return "an integer"
	}
	return kind
}

func uidError(err error) string {
	return strings.TrimPrefix(err.Error(), "bus: ")
}

// pushAsync publishes every message, flushes so the bus has them, and
// answers 202 with their count.
func (a *api) pushAsync(w http.ResponseWriter, r *http.Request, pt pushTarget) {
	n := 0
	var err error
	for _, uid := range pt.uids {
		if err = bus.Publish(a.bus, bus.Push{UID: uid, URI: pt.uri, Seq: pt.seq, Body: pt.body}); err != nil {
			break
		}
		n++
	}
	if err == nil {
		err = a.bus.FlushWithContext(r.Context())
	}
	if err != nil {
		status, msg := busFailure(err)
		a.log.Debug("push failed", "uids", len(pt.uids), "published", n, "err", err)
		writeError(w, status, msg)
		return
	}
	a.metrics.pushes.Add(float64(n))
	writeJSON(w, http.StatusAccepted, acceptedAnswer{Accepted: n})
}

// pushWait publishes each message with a reply inbox and sums the edges'
// delivery counts, waiting for up to waitParallel uids at once.
func (a *api) pushWait(w http.ResponseWriter, r *http.Request, pt pushTarget) {
	ctx, cancel := a.waitContext(r)
	defer cancel()
	counts := make([]int, len(pt.uids))
	errs := make([]error, len(pt.uids))
	sem := make(chan struct{}, waitParallel)
	var wg sync.WaitGroup
	for i, uid := range pt.uids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p := bus.Push{UID: uid, URI: pt.uri, Seq: pt.seq, Body: pt.body}
			counts[i], errs[i] = bus.PublishWait(ctx, a.bus, p, a.cfg.WaitGrace)
		})
	}
	wg.Wait()

	total, failed := 0, 0
	var firstErr error
	for i, err := range errs {
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		total += counts[i]
	}
	a.metrics.pushes.Add(float64(len(pt.uids) - failed))
	a.metrics.delivered.Add(float64(total))
	if failed == len(pt.uids) {
		status, msg := busFailure(firstErr)
		a.log.Debug("push failed", "uids", len(pt.uids), "err", firstErr)
		writeError(w, status, msg)
		return
	}
	if pt.single {
		writeJSON(w, http.StatusOK, deliveredAnswer{Delivered: total})
		return
	}
	ans := deliveredManyAnswer{Delivered: total, Results: make(map[string]int, len(pt.uids))}
	for i, uid := range pt.uids {
		if errs[i] != nil {
			if ans.Errors == nil {
				ans.Errors = make(map[string]string)
			}
			_, ans.Errors[uid] = busFailure(errs[i])
			continue
		}
		ans.Results[uid] = counts[i]
	}
	if failed > 0 {
		a.log.Debug("push partly failed", "uids", len(pt.uids), "failed", failed, "err", firstErr)
	}
	writeJSON(w, http.StatusOK, ans)
}

// waitContext bounds a wait for edges' answers by WaitTimeout.
func (a *api) waitContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.WaitTimeout)
}

// busFailure maps a bus error to a status and a message for the caller.
func busFailure(err error) (int, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timed out waiting for the edges to answer"
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "request canceled"
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionDraining):
		return http.StatusServiceUnavailable, busDown
	}
	return http.StatusServiceUnavailable, busDown + ": " + strings.TrimPrefix(err.Error(), "bus: ")
}
