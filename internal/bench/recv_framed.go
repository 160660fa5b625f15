package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"parley/codec"
)

// framedGroup holds receivers of a length-prefixed target (Parley or the
// floor) on gnet's client: a few event loops, no goroutine per connection.
type framedGroup struct {
	gnet.BuiltinEventEngine
	cfg    GroupConfig
	sink   *sink
	cli    *gnet.Client
	ready  atomic.Int64
	readyc chan struct{}
	failed chan error

	stopping atomic.Bool // close has begun: a connection that ends is not dialled again

	mu    sync.Mutex
	loops map[gnet.EventLoop]int // loop -> shard
	conns []gnet.Conn
}

// rconn is a receiving connection's state, owned by its loop. A Parley
// receiver whose connection drops dials again and resumes its room where
// it was (resume.go's way for the Go client): the messages it missed come
// as deliveries, late, and the run counts the resume. It is its
// parleyRecv's hooks.
type rconn struct {
	parleyRecv
	g     *framedGroup
	c     gnet.Conn // the connection now; loop goroutine
	nick  string
	shard int
	now   int64 // when the frames being handled were read
	tries int   // dials of this resume so far
}

func newFramedGroup(cfg GroupConfig) (*framedGroup, error) {
	g := &framedGroup{cfg: cfg, sink: newSink(cfg.Conns, 8), readyc: make(chan struct{}), failed: make(chan error, 1), loops: map[gnet.EventLoop]int{}}
	cli, err := gnet.NewClient(g, gnet.WithMulticore(true), gnet.WithNumEventLoop(cfg.Loops), gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		return nil, err
	}
	if err := cli.Start(); err != nil {
		return nil, err
	}
	g.cli = cli
	return g, nil
}

// open dials every receiver, 8 at a time, and waits for their logins.
func (g *framedGroup) open() error {
	err := dialAll(g.cfg.Conns, func(i int) error {
		rc := &rconn{parleyRecv: parleyRecv{room: g.cfg.Room, fill: true}, g: g, nick: g.cfg.receiverNick(i)}
		c, err := g.cli.DialContext("tcp", g.cfg.Addr, rc)
		if err != nil {
			return err
		}
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		if g.cfg.Target != TargetParley && g.ready.Add(1) == int64(g.cfg.Conns) {
			close(g.readyc) // the floor: connected is ready
		}
		return nil
	})
	if err != nil {
		return err
	}
	return waitLogins(g.readyc, g.failed, &g.ready, g.cfg.Conns)
}

func (g *framedGroup) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	rc := c.Context().(*rconn)
	g.mu.Lock()
	sh, ok := g.loops[c.EventLoop()]
	if !ok {
		sh = len(g.loops)
		g.loops[c.EventLoop()] = sh
	}
	g.mu.Unlock()
	rc.shard, rc.c = sh, c
	if g.cfg.Target != TargetParley {
		return nil, gnet.None
	}
	return rc.loginFrames(rc.nick), gnet.None
}

// OnClose dials a logged-in Parley receiver again, unless the run is over.
func (g *framedGroup) OnClose(c gnet.Conn, _ error) gnet.Action {
	rc, _ := c.Context().(*rconn)
	if rc == nil || g.stopping.Load() || g.cfg.Target != TargetParley || !rc.loggedIn {
		return gnet.None
	}
	next := *rc
	next.resuming, next.welcomed = true, false
	go g.redial(&next)
	return gnet.None
}

// maxResumeDials bounds how often a receiver tries to come back; the
// server may still hold its session for a moment after the drop.
const maxResumeDials = 50

func (g *framedGroup) redial(rc *rconn) {
	for ; rc.tries < maxResumeDials && !g.stopping.Load(); rc.tries++ {
		time.Sleep(time.Duration(20*(rc.tries+1)) * time.Millisecond)
		c, err := g.cli.DialContext("tcp", g.cfg.Addr, rc)
		if err == nil {
			g.mu.Lock()
			g.conns = append(g.conns, c)
			g.mu.Unlock()
			return
		}
	}
}

// OnTraffic parses every complete frame; for a message it reads the due
// time and records the delivery.
func (g *framedGroup) OnTraffic(c gnet.Conn) gnet.Action {
	rc := c.Context().(*rconn)
	now := time.Now().UnixNano()
	for {
		frame, err := peekFrame(c)
		if err != nil {
			g.sink.closedBy("bad frame from server")
			return gnet.Close
		}
		if frame == nil {
			return gnet.None
		}
		g.frame(c, rc, frame[codec.HeaderSize:], now)
		_, _ = c.Discard(len(frame))
	}
}

func (g *framedGroup) frame(c gnet.Conn, rc *rconn, body []byte, now int64) {
	if g.cfg.Target != TargetParley { // the floor: messages only
		if due, seq, ok := ParseFrame(body); ok {
			g.sink.deliver(rc.shard, due, seq, now)
		}
		return
	}
	rc.c, rc.now = c, now
	rc.frame(body, rc)
}

// write, msg, filled, answered and other are rconn's recvHooks. Loop
// goroutine.
func (rc *rconn) write(frames []byte) { _, _ = rc.c.Write(frames) }

func (rc *rconn) msg(frame []byte) {
	if due, seq, ok := ParseFrame(frame); ok {
		rc.g.sink.deliver(rc.shard, due, seq, rc.now)
	}
}

func (rc *rconn) filled(body []byte) {
	if due, seq, ok := ParseBody(body); ok {
		rc.g.sink.deliver(rc.shard, due, seq, rc.now)
	}
}

func (rc *rconn) answered(ev *codec.Event) {
	g := rc.g
	if ev.Type == codec.TypeWelcome {
		rc.tries = 0
	}
	if ev.Type == codec.TypeAck || g.cfg.Room == codec.Lobby {
		if !rc.loggedIn && g.ready.Add(1) == int64(g.cfg.Conns) {
			close(g.readyc)
		}
		rc.loggedIn = true
	}
}

func (rc *rconn) other(ev *codec.Event) {
	g := rc.g
	switch ev.Type {
	case codec.TypeRecover:
		g.sink.resumed(ev.Recovered)
	case codec.TypeError:
		if rc.resuming && !rc.welcomed && ev.Code == codec.CodeNickTaken {
			// The server has not seen the drop yet: OnClose dials again,
			// a little later.
			rc.tries++
			_ = rc.c.Close()
			return
		}
		select {
		case g.failed <- fmt.Errorf("receiver refused: %s: %s", ev.Code, ev.Message):
		default:
		}
	case codec.TypeBye:
		g.sink.closedBy(string(ev.Reason))
	}
}

func (g *framedGroup) setWindow(from, to time.Time) { g.sink.setWindow(from, to) }
func (g *framedGroup) completed() <-chan uint64     { return g.sink.completed }
func (g *framedGroup) collect() GroupReport         { return g.sink.collect() }

func (g *framedGroup) close() {
	g.stopping.Store(true)
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	_ = g.cli.Stop()
}
