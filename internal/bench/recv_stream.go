package bench

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
)

// streamGroup holds receivers of Parley's TLS listener or WebSocket
// endpoint, one goroutine each reading through a small buffer: gnet's
// client speaks neither.
type streamGroup struct {
	cfg    GroupConfig
	sink   *sink
	ready  atomic.Int64
	readyc chan struct{}
	failed chan error

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newStreamGroup(cfg GroupConfig) (*streamGroup, error) {
	return &streamGroup{cfg: cfg, sink: newSink(cfg.Conns, 8), readyc: make(chan struct{}), failed: make(chan error, 1)}, nil
}

// open dials every receiver, 8 at a time, and waits for their logins.
func (g *streamGroup) open() error {
	if err := dialAll(g.cfg.Conns, g.dial); err != nil {
		return err
	}
	return waitLogins(g.readyc, g.failed, &g.ready, g.cfg.Conns)
}

func (g *streamGroup) dial(i int) error {
	w, err := g.dialWire()
	if err != nil {
		return err
	}
	if g.cfg.Target != TargetCentrifugo && g.cfg.Target != TargetRedis {
		if err := w.send(loginFrames(g.cfg.receiverNick(i), g.cfg.Room)); err != nil {
			w.conn.Close()
			return err
		}
	}
	g.mu.Lock()
	g.conns = append(g.conns, w.conn)
	g.mu.Unlock()
	g.wg.Add(1)
	switch g.cfg.Target {
	case TargetCentrifugo:
		go g.readCentrifugo(w, i)
		return nil
	case TargetRedis:
		go g.readRedis(w, i)
		return nil
	}
	go g.read(w, i)
	return nil
}

func (g *streamGroup) dialWire() (*wire, error) {
	switch g.cfg.Target {
	case TargetCentrifugo:
		return dialCentrifugo(g.cfg.Addr, g.cfg.Room)
	case TargetRedis:
		return dialRedis(g.cfg.Addr, g.cfg.Room)
	}
	return dialParley(g.cfg.Target, g.cfg.Addr, g.cfg.CertPEM)
}

// read records every delivery until the connection ends.
func (g *streamGroup) read(c *wire, shard int) {
	defer g.wg.Done()
	sc := &streamConn{parleyRecv: parleyRecv{room: g.cfg.Room}, g: g, w: c, shard: shard}
	for {
		body, err := c.next()
		if err != nil {
			return
		}
		sc.now = time.Now().UnixNano()
		sc.frame(body, sc)
	}
}

// streamConn is a stream receiver's state and its parleyRecv's hooks.
// Its reader goroutine only.
type streamConn struct {
	parleyRecv
	g     *streamGroup
	w     *wire
	shard int
	now   int64
}

func (sc *streamConn) write(frames []byte) { _ = sc.w.send(frames) }

func (sc *streamConn) msg(frame []byte) {
	if due, seq, ok := ParseFrame(frame); ok {
		sc.g.sink.deliver(sc.shard, due, seq, sc.now)
	}
}

func (sc *streamConn) filled([]byte) {} // no fill: gaps are lost here

func (sc *streamConn) answered(ev *codec.Event) {
	g := sc.g
	if !sc.loggedIn && (ev.Type == codec.TypeAck || g.cfg.Room == codec.Lobby) {
		sc.loggedIn = true
		if g.ready.Add(1) == int64(g.cfg.Conns) {
			close(g.readyc)
		}
	}
}

func (sc *streamConn) other(ev *codec.Event) {
	switch ev.Type {
	case codec.TypeError:
		select {
		case sc.g.failed <- fmt.Errorf("receiver refused: %s: %s", ev.Code, ev.Message):
		default:
		}
	case codec.TypeBye:
		sc.g.sink.closedBy(string(ev.Reason))
	}
}

func (g *streamGroup) setWindow(from, to time.Time) { g.sink.setWindow(from, to) }
func (g *streamGroup) completed() <-chan uint64     { return g.sink.completed }
func (g *streamGroup) collect() GroupReport         { return g.sink.collect() }

func (g *streamGroup) close() {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
}
