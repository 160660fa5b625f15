package transport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// The door is the first reader of every web port connection, on a
// goroutine that ends once the connection is sent on. After TLS, if the
// port has it, a request line that starts "GET /ws" is a WebSocket
// handshake, which gobwas/ws answers from the bytes (with a 4 KiB buffer
// from a pool), and the connection goes to a loop; anything else goes to
// net/http with what was read. A WebSocket then costs no net/http state
// (its connection, its two 4 KiB buffers, the request) and no goroutine
// past its handshake. A /ws request on a connection net/http already
// serves (a kept-alive one) is upgraded by net/http's handler
// (upgradeHTTP), and goes to a loop the same way after that.

// door reads the start of a new connection's first request, within the
// header timeout, and sends the connection on its way.
func (w *webServer) door(c net.Conn) {
	defer w.layer.arriving.remove(c)
	_ = c.SetDeadline(time.Now().Add(min(w.layer.cfg.Handshake, httpHeaderTimeout)))
	conn := c
	if w.tls != nil {
		hs, err := serverHandshake(c, w.tls)
		if err != nil {
			_ = c.Close()
			return
		}
		conn = hs.conn(c)
	}
	br := doorReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	start, err := br.Peek(len(wsRequest))
	switch {
	case err != nil:
		putDoorReader(br)
		_ = conn.Close()
	case !bytes.Equal(start, wsRequest):
		_ = c.SetDeadline(time.Time{})             // net/http's timeouts from here
		w.pages.push(&readConn{Conn: conn, r: br}) // the reader goes with it
	default:
		w.upgradeDoor(conn, br)
	}
}

// wsRequest is how a WebSocket handshake's request line starts; the
// upgrade checks that the path is /ws, with a query or none.
var wsRequest = []byte("GET /ws")

// doorReaders are the door's buffers for a request's head.
var doorReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func putDoorReader(br *bufio.Reader) {
	br.Reset(nil)
	doorReaders.Put(br)
}

// upgradeDoor answers a WebSocket handshake the door read (gobwas/ws,
// from the bytes: a refused one gets its HTTP status) and hands the
// connection to a loop.
func (w *webServer) upgradeDoor(conn net.Conn, br *bufio.Reader) {
	var origin, host, proto string
	u := ws.Upgrader{
		ReadBufferSize: 1 << 10, // the head is in br already
		OnRequest: func(uri []byte) error {
			if path, _, _ := bytes.Cut(uri, []byte("?")); string(path) != "/ws" {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound))
			}
			return nil
		},
		OnHost: func(h []byte) error { host = string(h); return nil },
		OnHeader: func(k, v []byte) error {
			switch {
			case strings.EqualFold(string(k), "Origin"):
				origin = string(v)
			case strings.EqualFold(string(k), "X-Forwarded-Proto"):
				proto = string(v)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !w.originAllowed(origin, host, w.tls != nil, proto) {
				w.refused(conn.RemoteAddr().String(), origin)
				return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("origin not allowed"))
			}
			return nil, nil
		},
	}
	_, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{br, conn})
	var rest []byte
	if n := br.Buffered(); n > 0 && err == nil {
		b, _ := br.Peek(n)
		rest = append([]byte(nil), b...)
	}
	putDoorReader(br)
	if err != nil {
		_ = conn.Close() // gobwas/ws wrote the refusal
		return
	}
	w.handOver(conn, rest)
}

// isTLS reports whether a connection net/http serves came over TLS.
func isTLS(c net.Conn) bool {
	if rc, ok := c.(*readConn); ok {
		c = rc.Conn
	}
	switch c.(type) {
	case *tls.Conn, *recordConn:
		return true
	}
	return false
}

// readConn is a connection whose first bytes were read into r.
type readConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn is the connection under it (admittedOf).
func (c *readConn) NetConn() net.Conn { return c.Conn }

// connQueue is a net.Listener whose connections the door pushes: what
// net/http serves.
type connQueue struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to net/http, or closes it once the queue is closed.
func (q *connQueue) push(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.closed:
		_ = c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
