package server

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"parley/server/web"
)

// wsServer is the HTTP server of --ws-addr: the web chat at / and the
// WebSocket endpoint at /ws, whose connections run on the stream
// transport's loops with WebSocket framing.
type wsServer struct {
	srv     *Server
	adm     *admission
	origins map[string]bool // origins allowed besides the page's own, serialized (parseOrigin); "*": any
	next    atomic.Uint64
	http    *http.Server
}

// upgradeTimeout bounds writing the handshake's answer.
const upgradeTimeout = 5 * time.Second

// HTTP timeouts of the web port: a request's headers must come within
// the login timeout (httpHeaderTimeout at most), a kept-alive connection
// waits httpIdleTimeout for its next request, and answering one (the page,
// a few KiB) may take httpWriteTimeout. A connection that only reads or
// only idles holds its descriptor for seconds, not a minute.
const (
	httpHeaderTimeout = 5 * time.Second
	httpIdleTimeout   = 5 * time.Second
	httpWriteTimeout  = 10 * time.Second
)

func newWSServer(s *Server, adm *admission) *wsServer {
	w := &wsServer{srv: s, adm: adm, origins: map[string]bool{}}
	for _, o := range s.cfg.WSOrigins {
		if norm, ok := parseOrigin(o); ok {
			o = norm
		}
		w.origins[o] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", w.upgrade)
	mux.Handle("/info", web.Info(web.ServerInfo{Auth: s.cfg.Auth, MaxBody: s.cfg.MaxBody, NickHold: s.cfg.NickHold.Milliseconds()}))
	mux.Handle("/", web.Handler())
	header := min(s.cfg.LoginTimeout, httpHeaderTimeout)
	w.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: header, // a slow upgrade is closed like a login that never comes
		ReadTimeout:       header, // requests have no body worth waiting for
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          httpErrorLog(s.cfg.Logger),
	}
	if s.certs != nil {
		w.http.TLSConfig = s.certs.tlsConfig()
	}
	return w
}

// serve serves ln until it closes.
func (w *wsServer) serve(ln net.Listener) error {
	ln = &admitListener{Listener: ln, adm: w.adm, tls: w.http.TLSConfig != nil}
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
// page, and is let through; a browser's must be the server's own origin
// (the scheme the page was served with, its host and port), always
// allowed, or one of --ws-origins, compared the same way. An origin with userinfo, a path
// or another scheme is never a page's own (RFC 6454 serializes an origin
// as scheme://host[:port] alone). The page's scheme is https on a TLS
// listener, or when a proxy that terminated TLS says so in
// X-Forwarded-Proto: a page in a browser, which this check is about,
// cannot set that header on its WebSocket's handshake.
func (w *wsServer) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, ok := parseOrigin(origin)
	switch {
	case !ok:
		return false
	case w.origins["*"] || w.origins[o]:
		return true
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	own, ok := parseOrigin(scheme + "://" + r.Host)
	return ok && o == own
}

// parseOrigin returns an origin in its serialized form: the scheme
// (http or https) and the host, in lower case, with the port only when it
// is not the scheme's default. It refuses anything else.
func parseOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" ||
		u.Path != "" && u.Path != "/" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	case scheme != "http" && scheme != "https":
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// upgrade hands a WebSocket connection to a stream loop; admission
// counted it when it was accepted, and the hub's session keeps that count.
func (w *wsServer) upgrade(rw http.ResponseWriter, r *http.Request) {
	h := w.srv.hub
	if !w.originAllowed(r) {
		h.WarnLimited("ws-origin", "WebSocket refused: origin not allowed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(rw, "origin not allowed", http.StatusForbidden)
		return
	}
	conn, brw, _, err := ws.HTTPUpgrader{Timeout: upgradeTimeout}.Upgrade(r, rw)
	if err != nil {
		return // net/http closes the connection, which gives its count back
	}
	ac := admittedOf(conn)
	if ac == nil {
		_ = conn.Close()
		return
	}
	ac.release(true)
	_ = conn.SetDeadline(time.Time{})
	loops := w.srv.streamLoops
	loop := loops[w.next.Add(1)%uint64(len(loops))]
	startStream(h, loop, conn, r.RemoteAddr, &w.srv.cfg, &wsWire{r: brw.Reader}, &w.srv.transports)
}
