package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
)

// newRegistry is a Prometheus registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// opsFlags are a process's own operations listeners.
type opsFlags struct {
	metricsAddr string
	pprofAddr   string
}

func (o *opsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (empty = off)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve /debug/pprof on this address, for profiling (empty = off; keep it private)")
}

// start serves the enabled listeners until stop is called, telling out
// where they listen (a port of 0 picks a free one).
func (o *opsFlags) start(reg *prometheus.Registry, log *slog.Logger, out io.Writer) (stop func(), err error) {
	var servers []*httpServer
	stop = func() {
		for _, s := range servers {
			s.stop(2 * time.Second)
		}
	}
	if o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		s, err := serveHTTP(o.metricsAddr, mux, log)
		if err != nil {
			return stop, err
		}
		servers = append(servers, s)
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", s.addr)
	}
	if o.pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		s, err := serveHTTP(o.pprofAddr, mux, log)
		if err != nil {
			stop()
			return func() {}, err
		}
		servers = append(servers, s)
		fmt.Fprintf(out, "pprof on http://%s/debug/pprof/\n", s.addr)
	}
	return stop, nil
}

// httpServer is an http.Server serving in a goroutine that stop waits for.
type httpServer struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// serveHTTP listens now (so errors surface at start) and serves in the background.
func serveHTTP(addr string, h http.Handler, log *slog.Logger) (*httpServer, error) {
	return serveServer(&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}, addr, log)
}

// serveServer listens on addr and serves srv in the background.
func serveServer(srv *http.Server, addr string, log *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{srv: srv, addr: ln.Addr(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// stop shuts the server down gracefully within timeout and waits for it.
func (s *httpServer) stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	<-s.done
}
