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

	mu    sync.Mutex
	loops map[gnet.EventLoop]int // loop -> shard
	conns []gnet.Conn
}

// rconn is a receiving connection's state, owned by its loop.
type rconn struct {
	nick     string
	shard    int
	loggedIn bool
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

// open dials every receiver, with a few dialers in parallel.
func (g *framedGroup) open() error {
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	next := atomic.Int64{}
	for d := 0; d < 8; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(g.cfg.Conns); i = next.Add(1) - 1 {
				c, err := g.cli.DialContext("tcp", g.cfg.Addr, &rconn{nick: fmt.Sprintf("r%d-%d", g.cfg.Worker, i)})
				if err != nil {
					select {
					case errc <- fmt.Errorf("dial receiver %d: %w", i, err):
					default:
					}
					return
				}
				g.mu.Lock()
				g.conns = append(g.conns, c)
				g.mu.Unlock()
				if g.cfg.Target != TargetParley && g.ready.Add(1) == int64(g.cfg.Conns) {
					close(g.readyc)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	select {
	case <-g.readyc:
		return nil
	case err := <-g.failed:
		return err
	case <-time.After(time.Minute):
		return fmt.Errorf("only %d of %d receivers logged in within a minute", g.ready.Load(), g.cfg.Conns)
	}
}

// loginFrames logs a receiver in and, for a room other than the lobby,
// joins it.
func loginFrames(nick, room string) []byte {
	b, _ := codec.Append(nil, &codec.Login{Nick: nick})
	if room != codec.Lobby {
		b, _ = codec.Append(b, &codec.Join{Room: room, Ref: "j"})
	}
	return b
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
	rc.shard = sh
	if g.cfg.Target == TargetParley {
		return loginFrames(rc.nick, g.cfg.Room), gnet.None
	}
	return nil, gnet.None
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
	if due, seq, ok := ParseFrame(body); ok {
		g.sink.deliver(rc.shard, due, seq, now)
		return
	}
	var ev codec.Event
	if codec.DecodeEvent(body, &ev) != nil {
		return
	}
	switch ev.Type {
	case codec.TypePing:
		_, _ = c.Write(pongFrame)
	case codec.TypeWelcome, codec.TypeAck:
		if ev.Type == codec.TypeAck || g.cfg.Room == codec.Lobby {
			if !rc.loggedIn && g.ready.Add(1) == int64(g.cfg.Conns) {
				close(g.readyc)
			}
			rc.loggedIn = true
		}
	case codec.TypeError:
		select {
		case g.failed <- fmt.Errorf("receiver refused: %s: %s", ev.Code, ev.Message):
		default:
		}
	case codec.TypeBye:
		g.sink.closedBy(string(ev.Reason))
	}
}

var pongFrame = codec.MustEncode(&codec.Pong{})

func (g *framedGroup) setWindow(from, to time.Time) { g.sink.setWindow(from, to) }
func (g *framedGroup) completed() <-chan uint64     { return g.sink.completed }
func (g *framedGroup) collect() GroupReport         { return g.sink.collect() }

func (g *framedGroup) close() {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	_ = g.cli.Stop()
}
