package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// webServer is the HTTP server of the web port: the WebSocket endpoint
// at /ws, whose connections go to the event loops once upgraded, and
// Config.Page for every other path.
type webServer struct {
	layer   *Layer
	origins map[string]bool // origins allowed besides the page's own, serialized (ParseOrigin); "*": any
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

func newWebServer(l *Layer) *webServer {
	w := &webServer{layer: l, origins: map[string]bool{}}
	for _, o := range l.cfg.Origins {
		if norm, ok := ParseOrigin(o); ok {
			o = norm
		}
		w.origins[o] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", w.upgrade)
	if l.cfg.Page != nil {
		mux.Handle("/", l.cfg.Page)
	}
	header := min(l.cfg.Handshake, httpHeaderTimeout)
	w.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: header, // a slow upgrade is closed like a login that never comes
		ReadTimeout:       header, // requests have no body worth waiting for
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          httpErrorLog(l.cfg.Hub.WarnLimited),
	}
	if l.cfg.Certs != nil {
		w.http.TLSConfig = l.cfg.Certs.tlsConfig()
	}
	return w
}

// serve serves ln until it closes.
func (w *webServer) serve(ln net.Listener) error {
	ln = &admitListener{Listener: ln, adm: w.layer.adm, tls: w.http.TLSConfig != nil}
	if w.http.TLSConfig != nil {
		ln = &tlsListener{Listener: ln, cfg: w.http.TLSConfig}
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
func (w *webServer) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, ok := ParseOrigin(origin)
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
	own, ok := ParseOrigin(scheme + "://" + r.Host)
	return ok && o == own
}

// ParseOrigin returns an origin in its serialized form: the scheme
// (http or https) and the host, in lower case, with the port only when it
// is not the scheme's default. It refuses anything else.
func ParseOrigin(s string) (string, bool) {
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

// tlsListener is tls.NewListener with each tls.Conn on a loopConn, so
// that an upgraded WebSocket's TLS can go on on its loop.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&loopConn{Conn: c}, l.cfg), nil
}

// upgrade answers a WebSocket handshake (gobwas/ws, on net/http's
// goroutine for the connection) and hands the connection to an event
// loop, with what was read past the request. Admission counted it when
// it was accepted, and the hub's session keeps that count.
func (w *webServer) upgrade(rw http.ResponseWriter, r *http.Request) {
	h := w.layer.cfg.Hub
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
	tcp, ok := ac.tcp()
	if !ok {
		_ = conn.Close()
		return
	}
	ac.release(true)
	_ = conn.SetDeadline(time.Time{})
	wc := &wireConn{transport: WS, ws: &wsCodec{}}
	if tc, ok := conn.(*tls.Conn); ok {
		wc.tc, wc.lc = tc, tc.NetConn().(*loopConn)
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		wc.plain = append([]byte(nil), b...)
	}
	w.layer.toLoop(tcp, r.RemoteAddr, wc)
}
