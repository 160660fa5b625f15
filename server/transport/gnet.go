package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"parley/server/hub"
)

// gnetHandler adapts gnet's event callbacks to the hub. Every callback but
// OnBoot and OnTick runs on the event loop that owns the connection.
type gnetHandler struct {
	gnet.BuiltinEventEngine
	layer    *Layer
	tickOnce sync.Once
}

// gnetLoop is a gnet event loop as a Loop.
type gnetLoop struct{ el gnet.EventLoop }

func (g gnetLoop) Execute(fn func()) error {
	return g.el.Execute(context.Background(), gnet.RunnableFunc(func(_ context.Context) error { fn(); return nil }))
}

// gnetConn is a plain TCP gnet connection as a Conn.
type gnetConn struct {
	c      gnet.Conn
	counts *Counts
}

func (g gnetConn) Writev(frames [][]byte) {
	g.counts.wrote(TCP)
	_, _ = g.c.Writev(frames)
}
func (g gnetConn) Buffered() int { return g.c.OutboundBuffered() }
func (g gnetConn) Flush()        { _ = g.c.Flush() }
func (g gnetConn) Close()        { _ = g.c.Close() }

func (e *gnetHandler) OnBoot(eng gnet.Engine) gnet.Action {
	e.layer.setEngine(eng)
	return gnet.None
}

func (e *gnetHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	// RemoteAddr is only valid inside the callback: keep a copy (gnet #714).
	// A PROXY header's address, or a TLS or WebSocket connection's state,
	// came through the registration's context.
	reg, _ := c.Context().(*registration)
	// gnet keeps the registration's context as the safe context too, and
	// with it the closed net.Conn it came from: a few hundred bytes a
	// connection for its whole life, which nothing here reads.
	c.SetSafeContext(nil)
	if reg == nil {
		reg = &registration{remote: c.RemoteAddr().String()}
	}
	remote := reg.remote
	if reg.wire != nil {
		return e.openWire(c, reg.wire, remote)
	}
	s, refusal := e.layer.cfg.Hub.Open(gnetLoop{c.EventLoop()}, gnetConn{c, &e.layer.counts}, remote)
	if s == nil {
		return refusal, gnet.Close
	}
	e.layer.counts.opened(TCP)
	c.SetContext(s)
	return nil, gnet.None
}

// openWire opens the session of a TLS or WebSocket connection that
// reached its loop, and reads what came with it: records TLS holds
// already, bytes read with the HTTP upgrade.
func (e *gnetHandler) openWire(c gnet.Conn, w *wireConn, remote string) ([]byte, gnet.Action) {
	w.gc, w.h, w.counts = c, e.layer.cfg.Hub, &e.layer.counts
	s, refusal := w.h.Open(gnetLoop{c.EventLoop()}, w, remote)
	if s == nil {
		w.Writev([][]byte{refusal})
		return nil, gnet.Close
	}
	w.s = s
	e.layer.counts.opened(w.transport)
	c.SetContext(w)
	w.traffic()
	return nil, gnet.None
}

func (e *gnetHandler) OnTraffic(c gnet.Conn) gnet.Action {
	switch v := c.Context().(type) {
	case *hub.Session:
		e.layer.cfg.Hub.Traffic(v, c)
	case *wireConn:
		v.traffic()
	default:
		_, _ = c.Discard(-1)
	}
	return gnet.None
}

// OnClose runs before gnet closes the socket (gnet #621): the hub forgets
// the session here, and nothing writes to it afterwards.
func (e *gnetHandler) OnClose(c gnet.Conn, err error) gnet.Action {
	switch v := c.Context().(type) {
	case *hub.Session:
		e.layer.cfg.Hub.Closed(v, err)
		e.layer.counts.closed(TCP)
	case *wireConn:
		v.closedByPeer(err)
		e.layer.counts.closed(v.transport)
	}
	return gnet.None
}

// OnTick first runs on a goroutine gnet starts once every loop is
// registered and running (OnBoot runs before): from then on the engine
// takes connections.
func (e *gnetHandler) OnTick() (time.Duration, gnet.Action) {
	e.tickOnce.Do(func() { close(e.layer.booted) })
	// Later ticks run on the same goroutine, not on a loop: the hub only
	// schedules work on the loops from here.
	h := e.layer.cfg.Hub
	h.Tick()
	if h.Draining() {
		return drainTick, gnet.None // close drained connections promptly
	}
	return e.layer.cfg.TickInterval, gnet.None
}

// drainTick is the sweep interval while shutting down.
const drainTick = 20 * time.Millisecond

// gnetLogger sends gnet's own log lines to slog. gnet's info and warnings
// go to debug: its warnings are routine (an epoll event for a connection
// closed a moment before, once per connection when thousands close at
// once) and not something an operator acts on. Its errors stay errors.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
