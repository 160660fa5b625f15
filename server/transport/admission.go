package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"parley/server/hub"
)

// admission is the one way in: every connection on every listener (the
// plain and TLS acceptors, and the HTTP listener of --ws-addr at its
// accept, before a header is read) is counted here against --max-conns,
// --max-conns-per-ip and one per-address rate table, or refused. Safe
// from any goroutine.
type admission struct {
	h *hub.Hub

	mu   sync.Mutex // guards rate: the acceptors and the HTTP listener share it
	rate *ipRates

	// HTTP connections that have not become WebSockets are also held to
	// maxHTTP, a share of --max-conns, so that a flood of page requests on
	// the web port leaves descriptors for logins on every listener.
	http    atomic.Int64
	maxHTTP int64 // 0: no limit of its own
}

// Limits a refused connection was over: the label of
// parley_connections_refused_total, and the bye reason a client reads.
const (
	limitShutdown     = "shutdown"
	LimitConnRate     = hub.LimitConnRate
	LimitMaxHTTPConns = "max-http-conns"
)

func newAdmission(h *hub.Hub, ratePerIP float64, maxHTTP int) *admission {
	return &admission{h: h, rate: newIPRates(ratePerIP), maxHTTP: int64(max(maxHTTP, 0))}
}

// admit counts a new connection from remote, or says which limit it is
// over: limitShutdown while the server drains, LimitConnRate, or one of
// the hub's (hub.Reserve). An admitted connection is the hub's to count
// down: hub.Closed does when its session ends, hub.Unreserve if it never
// opens one.
func (a *admission) admit(remote string) string {
	if a.h.Draining() {
		return limitShutdown
	}
	if a.h.AddressBanned(remote) {
		return hub.LimitBanned
	}
	ip := hub.IPKey(remote)
	a.mu.Lock()
	ok := a.rate.allow(ip)
	a.mu.Unlock()
	if !ok {
		return LimitConnRate
	}
	return a.h.Reserve(ip)
}

// admitHTTP admits an HTTP connection: as any other, and within maxHTTP.
func (a *admission) admitHTTP(remote string) string {
	if n := a.http.Add(1); a.maxHTTP > 0 && n > a.maxHTTP {
		a.http.Add(-1)
		return LimitMaxHTTPConns
	}
	limit := a.admit(remote)
	if limit != "" {
		a.http.Add(-1)
	}
	return limit
}

// refuseWrite bounds writing a refusal to a new socket, whose buffer
// takes it at once.
const refuseWrite = 100 * time.Millisecond

// admitListener admits each connection of an HTTP listener as it is
// accepted, before net/http reads a byte of it, and refuses the others at
// once: a plain refusal gets a bare 503 (429 for the rate, 403 for an
// address an admin banned), written
// without waiting.
type admitListener struct {
	net.Listener
	adm *admission
	tls bool // the connections speak TLS next: a refusal is only closed
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote := c.RemoteAddr().String()
		limit := l.adm.admitHTTP(remote)
		if limit == "" {
			return &admittedConn{Conn: c, adm: l.adm, ip: hub.IPKey(remote)}, nil
		}
		if limit != limitShutdown {
			l.adm.h.Refuse(remote, limit)
		}
		if !l.tls {
			status := "503 Service Unavailable"
			switch limit {
			case LimitConnRate:
				status = "429 Too Many Requests"
			case hub.LimitBanned:
				status = "403 Forbidden"
			}
			_ = c.SetWriteDeadline(time.Now().Add(refuseWrite))
			_, _ = c.Write([]byte("HTTP/1.1 " + status + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		}
		_ = c.Close()
	}
}

// admittedConn is an HTTP connection admission counted: its close gives
// the count back, unless it became a WebSocket session, whose count the
// hub took over.
type admittedConn struct {
	net.Conn
	adm  *admission
	ip   string
	once sync.Once
}

// release gives back what admitting c counted; handedOver: the hub keeps
// the connection's count for its session.
func (c *admittedConn) release(handedOver bool) {
	c.once.Do(func() {
		c.adm.http.Add(-1)
		if !handedOver {
			c.adm.h.Unreserve(c.ip)
		}
	})
}

func (c *admittedConn) Close() error {
	c.release(false)
	return c.Conn.Close()
}

// tcp is the socket under c; c is nil when admittedOf found none.
func (c *admittedConn) tcp() (*net.TCPConn, bool) {
	if c == nil {
		return nil, false
	}
	tc, ok := c.Conn.(*net.TCPConn)
	return tc, ok
}

// admittedOf finds the admittedConn under an HTTP connection (under TLS
// too), or nil.
func admittedOf(c net.Conn) *admittedConn {
	for {
		switch v := c.(type) {
		case *admittedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
