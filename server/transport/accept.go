package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"parley/server/hub"
)

// acceptor accepts the server's TCP connections on its own goroutine and
// hands each admitted one to a gnet event loop. gnet's own acceptor stops
// the whole engine on the first accept error it does not expect, such as
// EMFILE when descriptors run out; this one backs off and retries, and
// refuses connections over the limits before they reach a loop, so a
// refused connection holds a descriptor only while its bye is written.
type acceptor struct {
	h          *hub.Hub
	ln         net.Listener
	adm        *admission // shared by every listener
	sendBuffer int        // SO_SNDBUF for each connection; 0 or less: the kernel's
	// hand gives an admitted connection, with the address its limits
	// counted, to its transport, and reports whether it got there.
	hand func(c *net.TCPConn, remote string) error
	// plain: a refused connection is told why with a bye; a TLS one,
	// which has not shaken hands yet, is only closed.
	plain bool
	// proxy, when set, reads a PROXY protocol header from the networks
	// it trusts (proxy.go) before the connection is admitted.
	proxy *ProxyPolicy

	mu sync.Mutex // admissions from proxied connections' goroutines
}

// Accept back-off after a temporary error, as nats-server does.
const (
	acceptMinSleep = 10 * time.Millisecond
	acceptMaxSleep = time.Second
)

// run accepts until the listener is closed; it returns nil then, or the
// error that made accepting impossible.
func (a *acceptor) run() error {
	sleep := acceptMinSleep
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !temporary(err) {
				return err
			}
			a.h.WarnLimited("accept", "accept failed; retrying", "err", err.Error(), "retry_in", sleep.String())
			time.Sleep(sleep)
			sleep = min(2*sleep, acceptMaxSleep)
			continue
		}
		sleep = acceptMinSleep
		tc := c.(*net.TCPConn)
		remote := tc.RemoteAddr().String()
		if a.proxy.trusts(remote) {
			a.proxy.admit(tc, remote, a.admit)
			continue
		}
		a.admit(tc, remote)
	}
}

// temporary reports whether an accept error will pass: descriptors or
// buffers running out, or a connection reset while it waited.
func temporary(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO:
		return true
	}
	return false
}

// admit refuses c, from remote, with a bye if a limit says so, or hands
// it to its transport. The hand-over is waited for, so at most one
// accepted connection is in flight (two descriptors while gnet
// duplicates it). Safe from any goroutine.
func (a *acceptor) admit(c *net.TCPConn, remote string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch limit := a.adm.admit(remote); limit {
	case "":
	case limitShutdown:
		a.bye(c, hub.ByeShutdown)
		return
	default:
		a.refuse(c, remote, limit)
		return
	}
	if a.sendBuffer > 0 {
		_ = c.SetWriteBuffer(a.sendBuffer)
	}
	if err := a.hand(c, remote); err != nil {
		a.h.Unreserve(hub.IPKey(remote))
		a.h.WarnLimited("register", "connection dropped: it could not be handed to an event loop", "remote", remote, "err", err.Error())
	}
}

// refuse writes bye to a connection over a limit and closes it.
func (a *acceptor) refuse(c *net.TCPConn, remote, limit string) {
	a.bye(c, a.h.Refuse(remote, limit))
}

// bye writes a bye frame to a new connection and closes it. The socket is
// new, so the small frame fits its buffer at once; the deadline only
// guards against the impossible.
func (a *acceptor) bye(c *net.TCPConn, frame []byte) {
	if a.plain {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(frame)
	}
	_ = c.Close()
}

// registration is what an admitted connection carries through gnet's
// registration to OnOpen (as the connection's context): the address its
// limits counted (the client's, from a PROXY header), and a TLS or
// WebSocket connection's state (wire.go).
type registration struct {
	remote string
	wire   *wireConn
}

// register hands c to one of the loops (gnet keeps a duplicate of its
// descriptor and closes c), with w when it is TLS or WebSocket, and waits
// until the loop has opened it. gnet's round-robin pick of the loop is
// not safe for concurrent use, and the acceptors, the handshakes and the
// upgrades all register: regMu takes them one at a time.
func (l *Layer) register(c *net.TCPConn, remote string, w *wireConn) error {
	ctx := gnet.NewContext(gnet.NewNetConnContext(context.Background(), c), &registration{remote: remote, wire: w})
	l.regMu.Lock()
	ch, err := l.engine().Register(ctx)
	l.regMu.Unlock()
	if err != nil {
		c.Close()
		return err
	}
	return (<-ch).Err
}

// registerPlain is the plain acceptor's hand.
func (l *Layer) registerPlain(c *net.TCPConn, remote string) error { return l.register(c, remote, nil) }
