package pushapi

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plexbus/plex/bus"
)

// Route patterns, also the route label of the metrics.
const (
	routeHost      = "/plex/v1/host"
	routeHosts     = "/plex/v1/hosts"
	routePush      = "/plex/v1/push"
	routeOnline    = "/plex/v1/online/{uid}"
	routeEdges     = "/plex/v1/edges"
	routeHealth    = "/healthz"
	routeMetrics   = "/metrics"
	routeUnmatched = "unmatched"
)

func knownRoute(p string) bool {
	return p != routeUnmatched && slices.Contains(routeLabels, p)
}

// api holds what the handlers share; all of it is immutable after New.
type api struct {
	cfg          Config
	bus          *nats.Conn
	edges        *Edges
	log          *slog.Logger
	metrics      *metrics
	passwordHash [sha256.Size]byte
	hostTail     hostTail // the heartbeat and backoff part of the host answer
	retryAfter   string   // Retry-After of a 503 host answer: Backoff.Base in whole seconds
}

// New validates cfg and builds the API's router. nc (the bus) and edges
// (the table behind /plex/v1/host and /plex/v1/edges) are owned by the
// caller, who closes them after the HTTP server has shut down. The API's
// metrics are registered in cfg.Registerer.
func New(cfg Config, nc *nats.Conn, edges *Edges) (http.Handler, error) {
	if nc == nil {
		return nil, errors.New("pushapi: nil bus connection")
	}
	if edges == nil {
		return nil, errors.New("pushapi: nil edge table (see WatchEdges)")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &api{
		cfg:          cfg,
		bus:          nc,
		edges:        edges,
		log:          cfg.Logger,
		passwordHash: sha256.Sum256([]byte(cfg.InnerPassword)),
		hostTail:     newHostTail(cfg),
		retryAfter:   strconv.FormatInt(max(1, ceilSeconds(cfg.Backoff.Base)), 10),
	}
	a.metrics = newMetrics(func() float64 { return float64(edges.Len()) })
	if err := a.metrics.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("pushapi: register metrics: %w", err)
	}
	return a.routes(), nil
}

func (a *api) routes() *chi.Mux {
	r := chi.NewRouter()
	r.Use(a.instrument, a.recoverer, a.timeout)
	r.NotFound(notFound)
	r.MethodNotAllowed(methodNotAllowed(r))
	r.Group(func(r chi.Router) {
		// After routing, so a refused body is counted under its route.
		r.Use(a.limitBody)
		r.Get(routeHealth, a.health)
		if a.cfg.Gatherer != nil {
			r.Method(http.MethodGet, routeMetrics, promhttp.HandlerFor(a.cfg.Gatherer, promhttp.HandlerOpts{
				ErrorLog:      promLogger{a.log},
				ErrorHandling: promhttp.ContinueOnError,
			}))
		}
		r.Get(routeHost, a.host)
		r.Get(routeHosts, a.host)
		r.Group(func(r chi.Router) {
			r.Use(a.requireBearer)
			r.Post(routePush, a.push)
			r.Get(routeOnline, a.online)
			r.Get(routeEdges, a.listEdges)
		})
	})
	return r
}

// promLogger passes promhttp's gathering errors to the logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// hostTail is the client policy sent with every host answer.
type hostTail struct {
	Heartbeat int64       `json:"heartbeat"` // seconds
	Backoff   backoffJSON `json:"backoff"`
}

type backoffJSON struct {
	Base   decimal `json:"base"` // seconds
	Factor decimal `json:"factor"`
	Jitter decimal `json:"jitter"`
	Max    int64   `json:"max"` // seconds
}

func newHostTail(cfg Config) hostTail {
	return hostTail{
		Heartbeat: ceilSeconds(cfg.Heartbeat),
		Backoff: backoffJSON{
			Base:   decimal(cfg.Backoff.Base.Seconds()),
			Factor: decimal(cfg.Backoff.Factor),
			Jitter: decimal(cfg.Backoff.Jitter),
			Max:    ceilSeconds(cfg.Backoff.Max),
		},
	}
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

type hostAnswer struct {
	Host string `json:"host"`
	hostTail
}

// host answers GET /plex/v1/host: the least-loaded live edge, else a
// random OuterServers address, else 503.
func (a *api) host(w http.ResponseWriter, r *http.Request) {
	addr, ok := a.edges.Pick()
	source := sourceEdge
	if !ok && len(a.cfg.OuterServers) > 0 {
		addr, ok, source = a.cfg.OuterServers[rand.IntN(len(a.cfg.OuterServers))], true, sourceFallback
	}
	if !ok {
		a.metrics.hostAnswers.WithLabelValues(sourceNone).Inc()
		w.Header().Set("Retry-After", a.retryAfter)
		writeError(w, http.StatusServiceUnavailable, "no edge available")
		return
	}
	a.metrics.hostAnswers.WithLabelValues(source).Inc()
	writeJSON(w, http.StatusOK, hostAnswer{Host: addr, hostTail: a.hostTail})
}

type edgesAnswer struct {
	Edges []EdgeInfo `json:"edges"`
}

// listEdges answers GET /plex/v1/edges.
func (a *api) listEdges(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, edgesAnswer{Edges: a.edges.List()})
}

type healthAnswer struct {
	Status string `json:"status"`
	Bus    string `json:"bus"`
	Error  string `json:"error,omitempty"`
}

// health answers GET /healthz: 200 while the bus is connected.
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	st := a.bus.Status()
	if st == nats.CONNECTED {
		writeJSON(w, http.StatusOK, healthAnswer{Status: "ok", Bus: "connected"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, healthAnswer{
		Status: "unavailable", Bus: strings.ToLower(st.String()), Error: "bus not connected",
	})
}

type onlineAnswer struct {
	UID    string         `json:"uid"`
	Online bool           `json:"online"`
	Conns  []bus.ConnInfo `json:"conns"`
}

// online answers GET /plex/v1/online/{uid} by asking the edges holding
// the user (Plex-Op: presence); no responders means offline.
func (a *api) online(w http.ResponseWriter, r *http.Request) {
	uid := chi.URLParam(r, "uid")
	if err := bus.ValidUID(uid); err != nil {
		writeError(w, http.StatusBadRequest, uidError(err))
		return
	}
	if !a.bus.IsConnected() {
		writeError(w, http.StatusServiceUnavailable, busDown)
		return
	}
	ctx, cancel := a.waitContext(r)
	defer cancel()
	conns, err := bus.QueryPresence(ctx, a.bus, uid, a.cfg.WaitGrace)
	if err != nil {
		status, msg := busFailure(err)
		a.log.Debug("online query failed", "uid", uid, "err", err)
		writeError(w, status, msg)
		return
	}
	if conns == nil {
		conns = []bus.ConnInfo{}
	}
	slices.SortFunc(conns, func(x, y bus.ConnInfo) int {
		return strings.Compare(x.Edge+"\x00"+x.ID, y.Edge+"\x00"+y.ID)
	})
	writeJSON(w, http.StatusOK, onlineAnswer{UID: uid, Online: len(conns) > 0, Conns: conns})
}
