package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/wire"
)

// Server is one edge. Create it with New, serve with Run.
type Server struct {
	cfg        Config
	bus        *nats.Conn
	log        *slog.Logger
	ln         net.Listener
	id         string
	advertise  string
	started    time.Time
	metrics    *metrics
	reg        *registry
	shards     []*dispatcher
	pollers    []*poller
	nextPoll   atomic.Uint32
	auth       *authPipe
	failedIPs  *ipLimiter
	connSeq    atomic.Uint64
	draining   atomic.Bool
	fdWarned   atomic.Int64    // unix nanos of the last out-of-fds warning
	authWarned atomic.Int64    // unix nanos of the last auth service warning
	ctx        context.Context // ends when Run's shutdown has finished draining
	cancel     context.CancelFunc
	wg         sync.WaitGroup // every goroutine the server starts
	runOnce    sync.Once

	// successBody is the /auth/success body minus the uid, built once.
	heartbeatSecs int

	connsMu sync.RWMutex
	conns   map[*conn]struct{}
}

// New validates cfg, binds the listener and returns a server ready to Run.
// bus is owned by the caller, who closes it after Run returns.
func New(cfg Config, bus *nats.Conn) (*Server, error) {
	if bus == nil {
		return nil, errors.New("edge: nil bus connection")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := cfg.ID
	if id == "" {
		id = NewID()
	}
	lc := net.ListenConfig{Control: listenControl(cfg.SocketSendBuffer)}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("edge: listen %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:           cfg,
		bus:           bus,
		log:           log.With("edge", id),
		ln:            ln,
		id:            id,
		started:       time.Now().UTC(),
		reg:           newRegistry(),
		failedIPs:     newIPLimiter(cfg.FailedAuthRate, cfg.FailedAuthBurst),
		conns:         make(map[*conn]struct{}),
		heartbeatSecs: int((cfg.Heartbeat + time.Second - 1) / time.Second),
	}
	s.advertise = cfg.Advertise
	switch {
	case s.advertise == "":
		s.advertise = advertiseAddr(ln.Addr())
	case !strings.Contains(s.advertise, ":") || strings.HasSuffix(s.advertise, "]"):
		// A bare host: the port is the listener's.
		s.advertise = net.JoinHostPort(strings.Trim(s.advertise, "[]"), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	s.metrics = newMetrics(func() float64 { return float64(s.NumConns()) })
	if err := s.metrics.register(cfg.Registerer); err != nil {
		ln.Close()
		return nil, fmt.Errorf("edge: register metrics: %w", err)
	}
	n := cfg.Dispatchers
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.auth, err = newAuthPipe(s); err != nil {
		ln.Close()
		s.metrics.unregister(cfg.Registerer)
		return nil, fmt.Errorf("edge: subscribe auth replies: %w", err)
	}
	for i := 0; i < n; i++ {
		s.shards = append(s.shards, newDispatcher(s, cfg.BusQueueLen/n+1))
	}
	if !cfg.GoroutinePerConn && cfg.TLS == nil && pollSupported {
		loops := cfg.ReadLoops
		if loops == 0 {
			loops = runtime.GOMAXPROCS(0)
		}
		for i := 0; i < loops; i++ {
			p, err := newPoller(s)
			if err != nil {
				s.closePollers()
				_ = s.auth.sub.Unsubscribe()
				ln.Close()
				s.metrics.unregister(cfg.Registerer)
				return nil, err
			}
			s.pollers = append(s.pollers, p)
		}
	}
	return s, nil
}

// NewID makes an edge id: the hostname and a random suffix.
func NewID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edge"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// advertiseAddr turns a listener address into one clients can dial.
func advertiseAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ad := range addrs {
				if in, ok := ad.(*net.IPNet); ok && !in.IP.IsLoopback() && in.IP.To4() != nil {
					ip = in.IP
					break
				}
			}
		}
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// ID is the edge's id on the bus.
func (s *Server) ID() string { return s.id }

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Advertise is the address published for clients.
func (s *Server) Advertise() string { return s.advertise }

// NumConns is the number of open client sockets.
func (s *Server) NumConns() int {
	s.connsMu.RLock()
	defer s.connsMu.RUnlock()
	return len(s.conns)
}

// NumUsers is the number of distinct online uids (= bus subscriptions).
func (s *Server) NumUsers() int { return s.reg.len() }

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// send /reconnect to every client, close them (publishing offline
// presence), stop the background loops and wait for every goroutine, all
// within DrainTimeout. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("edge: Run called twice")
	}
	for _, d := range s.shards {
		s.goBackground(d.run)
	}
	s.goBackground(s.auth.run)
	for _, p := range s.pollers {
		s.goBackground(p.run)
	}
	if len(s.pollers) > 0 {
		if err := s.pollers[0].listen(s.ln); err != nil {
			return fmt.Errorf("edge: accept via epoll: %w", err)
		}
	}
	s.goBackground(s.sweepLoop)
	s.goBackground(s.statsLoop)
	s.goBackground(s.watchBus)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		if len(s.pollers) == 0 {
			s.acceptLoop()
		}
	}()
	s.log.Info("edge listening", "addr", s.ln.Addr().String(), "advertise", s.advertise)

	<-ctx.Done()
	s.log.Info("edge shutting down", "conns", s.NumConns())
	if len(s.pollers) > 0 {
		s.pollers[0].unlisten()
	}
	s.ln.Close()
	<-acceptDone
	err := s.drain()
	s.cancel()
	for _, p := range s.pollers {
		p.stop()
	}
	s.wg.Wait()
	_ = s.auth.sub.Unsubscribe()
	s.closePollers()
	if ferr := s.bus.FlushTimeout(2 * time.Second); ferr != nil && s.bus.IsConnected() {
		s.log.Warn("flush bus on shutdown", "err", ferr)
	}
	s.metrics.unregister(s.cfg.Registerer)
	s.log.Info("edge stopped")
	return err
}

// Close releases the listener of a server whose Run was never called.
func (s *Server) Close() error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if ran {
		s.cancel()
		s.closePollers()
		_ = s.auth.sub.Unsubscribe()
		s.metrics.unregister(s.cfg.Registerer)
		return s.ln.Close()
	}
	return nil
}

func (s *Server) closePollers() {
	for _, p := range s.pollers {
		p.close()
	}
	s.pollers = nil
}

func (s *Server) goBackground(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// acceptLoop is the goroutine path's accept: a net.Conn per client (TLS,
// GoroutinePerConn, or no epoll on this system).
func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.fdExhausted(nil)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.metrics.accepted.Inc()
		s.accept(nc)
	}
}

func (s *Server) accept(nc net.Conn) {
	ip, hasIP := remoteIP(nc.RemoteAddr())
	if hasIP && !s.failedIPs.take(ip, time.Now()) {
		s.metrics.limited.WithLabelValues("failed_auth_ip").Inc()
		s.refuse(nc, wire.FailTooManyFailures)
		return
	}
	if s.cfg.TLS != nil {
		// The handshake runs in the reader under the auth deadline.
		nc = tlsServer(nc, s.cfg.TLS)
	}
	c := newConn(s, nc, -1, nc.RemoteAddr().String())
	c.reserved.Store(hasIP)
	if !s.register(c) {
		if hasIP {
			s.failedIPs.refund(ip, time.Now())
		}
		s.refuse(nc, wire.FailServerFull)
		return
	}
	s.wg.Add(1)
	go c.readLoop()
}

// fdExhausted counts a connection refused for lack of file descriptors,
// runs refuse, and logs at most once a second.
func (s *Server) fdExhausted(refuse func()) {
	s.metrics.limited.WithLabelValues("fds").Inc()
	if refuse != nil {
		refuse()
	}
	now := time.Now().UnixNano()
	if last := s.fdWarned.Load(); now-last > int64(time.Second) && s.fdWarned.CompareAndSwap(last, now) {
		s.log.Warn("out of file descriptors: refusing connections; lower --max-conns below the process's open-file limit", "conns", s.NumConns())
	}
}

// register adds c to the open connections unless MaxConnections is reached.
func (s *Server) register(c *conn) bool {
	s.connsMu.Lock()
	full := s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections
	if !full {
		s.conns[c] = struct{}{}
	}
	s.connsMu.Unlock()
	if full {
		s.metrics.limited.WithLabelValues("max_conns").Inc()
		s.metrics.disconnects.WithLabelValues(string(ReasonServerFull)).Inc()
	}
	return !full
}

// refuse tells a just-accepted client why and closes, without a
// goroutine: one small write to a fresh socket does not block (a TLS
// handshake might, so TLS clients just see the close).
func (s *Server) refuse(nc net.Conn, reason string) {
	if s.cfg.TLS == nil {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write(wire.AppendFrame(nil, s.cfg.ByteOrder, &wire.Message{URI: wire.URIAuthFailed, Body: reason}))
	}
	nc.Close()
}

func (s *Server) removeConn(c *conn) {
	s.connsMu.Lock()
	delete(s.conns, c)
	s.connsMu.Unlock()
}

func (s *Server) snapshot() []*conn {
	s.connsMu.RLock()
	defer s.connsMu.RUnlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// drain tells every client to reconnect elsewhere and waits for the
// sockets to close, forcing what is left at DrainTimeout.
func (s *Server) drain() error {
	s.draining.Store(true)
	s.publishStats()
	for _, c := range s.snapshot() {
		c.fail(ReasonShutdown, wire.URIReconnect, "")
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for s.NumConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	left := s.snapshot()
	for _, c := range left {
		c.closeSocket()
	}
	if len(left) > 0 {
		s.log.Warn("drain timeout: closed remaining sockets", "count", len(left))
	}
	return nil
}
