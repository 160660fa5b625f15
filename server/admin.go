package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin endpoint (--admin-addr; off unless set): /metrics in the
// Prometheus format, /healthz, /readyz, /moderation/ (admin_moderation.go)
// and /debug/pprof/. It is for operators: serve it on a loopback or
// private address.

// healthTimeout is how long every event loop has to answer /healthz.
const healthTimeout = time.Second

// adminServer is the admin endpoint's HTTP server.
type adminServer struct {
	srv  *Server
	http *http.Server
}

func newAdminServer(s *Server) *adminServer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(s), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(s.app.metrics...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	a := &adminServer{srv: s}
	mux.HandleFunc("/healthz", a.healthz)
	mux.HandleFunc("/readyz", a.readyz)
	a.routeModeration(mux)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	return a
}

func (a *adminServer) serve(ln net.Listener) error {
	err := a.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// healthz is 200 when every event loop ran a task within healthTimeout:
// a loop stuck in a callback makes it 503.
func (a *adminServer) healthz(w http.ResponseWriter, _ *http.Request) {
	if err := a.srv.hub.Probe(healthTimeout); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// readyz is 200 while the server takes new users: it listens, is not
// shutting down, and in a cluster is connected to NATS. It turns 503 as
// soon as a shutdown begins, before any bye shutdown is sent.
func (a *adminServer) readyz(w http.ResponseWriter, _ *http.Request) {
	if why := a.srv.notReady(); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// notReady says why the server should get no new users, or "".
func (s *Server) notReady() string {
	select {
	case <-s.ready:
	default:
		return "not listening yet"
	}
	switch st := s.hub.Broker().Stats(); {
	case s.leaving.Load():
		return "shutting down"
	case st != nil && !st.Connected:
		return "the cluster bus is down"
	}
	return ""
}
