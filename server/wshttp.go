package server

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"parley/server/hub"
	"parley/server/web"
)

// wsServer is the HTTP server of --ws-addr: the web chat at / and the
// WebSocket endpoint at /ws, whose connections run on the stream
// transport's loops with WebSocket framing.
type wsServer struct {
	srv     *Server
	origins map[string]bool // allowed Origin values; empty: same origin only; "*": any
	mu      sync.Mutex      // guards rate: handlers run on goroutines of their own
	rate    *ipRates
	next    atomic.Uint64
	http    *http.Server
}

// upgradeTimeout bounds writing the handshake's answer.
const upgradeTimeout = 5 * time.Second

func newWSServer(s *Server) *wsServer {
	w := &wsServer{srv: s, origins: map[string]bool{}, rate: newIPRates(s.cfg.ConnRatePerIP)}
	for _, o := range s.cfg.WSOrigins {
		w.origins[strings.TrimSuffix(o, "/")] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", w.upgrade)
	mux.Handle("/", web.Handler())
	w.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.LoginTimeout, // a slow upgrade is closed like a login that never comes
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
	}
	if s.certs != nil {
		w.http.TLSConfig = s.certs.tlsConfig()
	}
	return w
}

// serve serves ln until it closes.
func (w *wsServer) serve(ln net.Listener) error {
	if w.http.TLSConfig != nil {
		ln = tls.NewListener(ln, w.http.TLSConfig)
	}
	err := w.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// originAllowed: a request without Origin comes from a program, not a
// page, and is let through; a browser's must be the server's own origin,
// or one of --ws-origins.
func (w *wsServer) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return true
	case len(w.origins) > 0:
		return w.origins["*"] || w.origins[origin]
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// upgrade admits a WebSocket connection under the same limits as the
// listeners, then hands it to a stream loop.
func (w *wsServer) upgrade(rw http.ResponseWriter, r *http.Request) {
	h := w.srv.hub
	if !w.originAllowed(r) {
		h.WarnLimited("ws-origin", "WebSocket refused: origin not allowed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(rw, "origin not allowed", http.StatusForbidden)
		return
	}
	remote := r.RemoteAddr
	if limit := w.admit(remote); limit != "" {
		if limit != "shutdown" {
			h.Refuse(remote, limit)
		}
		http.Error(rw, "server full or shutting down: try again later", http.StatusServiceUnavailable)
		return
	}
	conn, brw, _, err := ws.HTTPUpgrader{Timeout: upgradeTimeout}.Upgrade(r, rw)
	if err != nil {
		h.Unreserve(hub.IPKey(remote))
		return
	}
	_ = conn.SetDeadline(time.Time{})
	loops := w.srv.streamLoops
	loop := loops[w.next.Add(1)%uint64(len(loops))]
	startStream(h, loop, conn, remote, &w.srv.cfg, &wsWire{r: brw.Reader}, &w.srv.transports)
}

// admit counts a connection from remote against the limits, or says which
// it is over ("shutdown" while draining).
func (w *wsServer) admit(remote string) string {
	h := w.srv.hub
	if h.Draining() {
		return "shutdown"
	}
	w.mu.Lock()
	ok := w.rate.allow(hub.IPKey(remote))
	w.mu.Unlock()
	if !ok {
		return "conn-rate-per-ip"
	}
	return h.Reserve(hub.IPKey(remote))
}
