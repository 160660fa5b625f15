package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// webServer is the web port: the WebSocket endpoint at /ws, whose
// connections go to the event loops once upgraded, and net/http for every
// other path (Config.Page). Each new connection first meets the door
// (door.go), which answers a WebSocket handshake itself and hands
// everything else to net/http.
type webServer struct {
	layer   *Layer
	origins map[string]bool // origins allowed besides the page's own, serialized (ParseOrigin); "*": any
	tls     *tls.Config     // nil: plain HTTP
	http    *http.Server
	pages   *connQueue // the connections net/http serves
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

// maxHeaderBytes bounds a request's head.
const maxHeaderBytes = 16 << 10

// tlsKey marks, in a request's context, that its connection came over
// TLS: the door does the web port's TLS, so net/http does not set r.TLS.
type tlsKey struct{}

func newWebServer(l *Layer) *webServer {
	w := &webServer{layer: l, origins: map[string]bool{}}
	for _, o := range l.cfg.Origins {
		if norm, ok := ParseOrigin(o); ok {
			o = norm
		}
		w.origins[o] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", w.upgradeHTTP)
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
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          httpErrorLog(l.cfg.Hub.WarnLimited),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, tlsKey{}, isTLS(c))
		},
	}
	if l.cfg.Certs != nil {
		w.tls = l.cfg.Certs.tlsConfig()
	}
	return w
}

// serve serves ln until it closes: every connection admitted goes through
// the door, on a goroutine of its own, and net/http serves what the door
// hands it.
func (w *webServer) serve(ln net.Listener) error {
	w.pages = newConnQueue(ln.Addr())
	served := make(chan error, 1)
	go func() { served <- w.http.Serve(w.pages) }()
	adm := &admitListener{Listener: ln, adm: w.layer.adm, tls: w.tls != nil}
	var err error
	for {
		var c net.Conn
		if c, err = adm.Accept(); err != nil {
			break
		}
		if !w.layer.arriving.add(c) {
			_ = c.Close()
			continue
		}
		go w.door(c)
	}
	_ = w.pages.Close()
	if herr := <-served; herr != nil && !errors.Is(herr, http.ErrServerClosed) && !errors.Is(herr, net.ErrClosed) {
		return herr
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// originAllowed: a request without Origin comes from a program, not a
// page, and is let through; a browser's must be the server's own origin
// (the scheme the page was served with, its host and port), always
// allowed, or one of --ws-origins, compared the same way. An origin with
// userinfo, a path or another scheme is never a page's own (RFC 6454
// serializes an origin as scheme://host[:port] alone). The page's scheme
// is https on a TLS listener, or when a proxy that terminated TLS says so
// in X-Forwarded-Proto (proto): a page in a browser, which this check is
// about, cannot set that header on its WebSocket's handshake.
func (w *webServer) originAllowed(origin, host string, overTLS bool, proto string) bool {
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
	if overTLS || strings.EqualFold(proto, "https") {
		scheme = "https"
	}
	own, ok := ParseOrigin(scheme + "://" + host)
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

// upgradeHTTP answers a WebSocket handshake on a connection net/http
// already serves (a kept-alive one: the door sent it on for an earlier
// request), with gobwas/ws on net/http's goroutine, and hands the
// connection to a loop.
func (w *webServer) upgradeHTTP(rw http.ResponseWriter, r *http.Request) {
	overTLS, _ := r.Context().Value(tlsKey{}).(bool)
	if !w.originAllowed(r.Header.Get("Origin"), r.Host, overTLS, r.Header.Get("X-Forwarded-Proto")) {
		w.refused(r.RemoteAddr, r.Header.Get("Origin"))
		http.Error(rw, "origin not allowed", http.StatusForbidden)
		return
	}
	conn, brw, _, err := ws.HTTPUpgrader{Timeout: upgradeTimeout}.Upgrade(r, rw)
	if err != nil {
		return // net/http closes the connection, which gives its count back
	}
	var rest []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		rest = append([]byte(nil), b...)
	}
	if rc, ok := conn.(*readConn); ok {
		// net/http reads through the door's reader: what it still holds
		// came after what net/http read.
		if n := rc.r.Buffered(); n > 0 {
			b, _ := rc.r.Peek(n)
			rest = append(rest, b...)
		}
		conn = rc.Conn
	}
	w.handOver(conn, rest)
}

// refused logs a WebSocket refused for its origin.
func (w *webServer) refused(remote, origin string) {
	w.layer.cfg.Hub.WarnLimited("ws-origin", "WebSocket refused: origin not allowed", "remote", remote, "origin", origin)
}

// handOver sends an upgraded WebSocket to a loop, with the bytes read past
// its handshake. Admission counted it when it was accepted, and the hub's
// session keeps that count.
func (w *webServer) handOver(conn net.Conn, rest []byte) {
	ac := admittedOf(conn)
	tcp, ok := ac.tcp()
	if !ok {
		_ = conn.Close()
		return
	}
	ac.release(true)
	_ = conn.SetDeadline(time.Time{})
	wc := &wireConn{transport: WS, ws: &wsCodec{}, plain: rest}
	switch c := conn.(type) {
	case *recordConn:
		wc.sec = c.rec
		wc.plain = append(wc.plain, c.pending()...) // read after rest
	case *tls.Conn:
		wc.sec = &tlsConnRecords{tc: c, lc: c.NetConn().(*loopConn)}
	}
	w.layer.toLoop(tcp, conn.RemoteAddr().String(), wc)
}
