package bench

import (
	"context"
	"fmt"
	"net"
	"sync"

	"parley/codec"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// floorSystem is the floor: a server that only relays frames.
type floorSystem struct{}

func (floorSystem) start(cfg Config, _ Target) (*running, error) {
	if cfg.FloorAddr != "" {
		return &running{addrs: []string{cfg.FloorAddr}, stop: func() {}, note: "using the running floor at " + cfg.FloorAddr}, nil
	}
	return startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
		return []string{"bench-floor", "--addr", fmt.Sprintf("127.0.0.1:%d", port)}
	}, "", "started: floor server in a child process")
}

func (floorSystem) receivers(cfg GroupConfig) (receivers, error) { return newFramedGroup(cfg) }

func (floorSystem) sender(sp senderSpec) (sender, error) {
	conn, err := net.Dial("tcp", sp.addr)
	if err != nil {
		return nil, err
	}
	s := &floorSender{conn: conn, room: sp.room, from: sp.name, size: sp.size}
	go discardFrames(conn)
	return s, nil
}

// Floor is the cost floor of a fan-out on this machine: a loopback server
// with no protocol logic. Every frame any connection sends is written, as
// the same bytes, to every other connection. Like Parley it gives each
// connection every frame queued since the last wake in one writev, so the
// difference between the two is the protocol's cost.
type Floor struct {
	gnet.BuiltinEventEngine
	ready chan struct{}
	addr  net.Addr
	eng   gnet.Engine

	mu    sync.Mutex
	loops map[gnet.EventLoop]*floorLoop
}

// floorLoop is one event loop's connections and outbox.
type floorLoop struct {
	el      gnet.EventLoop
	conns   map[gnet.Conn]struct{} // loop goroutine only
	mu      sync.Mutex
	queue   []floorFrame
	pending bool
	iov     [][]byte
}

type floorFrame struct {
	data []byte
	from gnet.Conn
}

// RunFloor serves on addr (host:port) with loops event loops until ctx
// ends. ready, if not nil, receives the bound address.
func RunFloor(ctx context.Context, addr string, loops int, ready chan<- net.Addr) error {
	f := &Floor{ready: make(chan struct{}), loops: map[gnet.EventLoop]*floorLoop{}}
	go func() {
		select {
		case <-ctx.Done():
		case <-f.ready:
			if ready != nil {
				ready <- f.addr
			}
			<-ctx.Done()
		}
		<-f.ready
		_ = f.eng.Stop(context.Background())
	}()
	return gnet.Run(f, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithNumEventLoop(loops), gnet.WithReuseAddr(true), gnet.WithLogLevel(logging.ErrorLevel))
}

func (f *Floor) OnBoot(eng gnet.Engine) gnet.Action {
	f.eng = eng
	f.addr = boundAddr(eng)
	close(f.ready)
	return gnet.None
}

func (f *Floor) loop(el gnet.EventLoop) *floorLoop {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.loops[el]
	if l == nil {
		l = &floorLoop{el: el, conns: map[gnet.Conn]struct{}{}}
		f.loops[el] = l
	}
	return l
}

func (f *Floor) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	f.loop(c.EventLoop()).conns[c] = struct{}{}
	return nil, gnet.None
}

func (f *Floor) OnClose(c gnet.Conn, _ error) gnet.Action {
	delete(f.loop(c.EventLoop()).conns, c)
	return gnet.None
}

// OnTraffic relays every complete frame to every loop.
func (f *Floor) OnTraffic(c gnet.Conn) gnet.Action {
	for {
		buf, err := peekFrame(c)
		if err != nil {
			return gnet.Close
		}
		if buf == nil {
			return gnet.None
		}
		frame := append([]byte(nil), buf...)
		_, _ = c.Discard(len(frame))
		f.publish(floorFrame{frame, c})
	}
}

func (f *Floor) publish(fr floorFrame) {
	f.mu.Lock()
	loops := make([]*floorLoop, 0, len(f.loops))
	for _, l := range f.loops {
		loops = append(loops, l)
	}
	f.mu.Unlock()
	for _, l := range loops {
		l.push(fr)
	}
}

func (l *floorLoop) push(fr floorFrame) {
	l.mu.Lock()
	l.queue = append(l.queue, fr)
	wake := !l.pending
	l.pending = true
	l.mu.Unlock()
	if wake {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(l.drain))
	}
}

// drain writes every queued frame to each of the loop's connections, all of
// them in one writev per connection.
func (l *floorLoop) drain(context.Context) error {
	l.mu.Lock()
	queue := l.queue
	l.queue, l.pending = nil, false
	l.mu.Unlock()
	for c := range l.conns {
		l.iov = l.iov[:0]
		for _, fr := range queue {
			if fr.from != c {
				l.iov = append(l.iov, fr.data)
			}
		}
		for len(l.iov) > 0 {
			n := min(len(l.iov), 1024)
			batch := append([][]byte(nil), l.iov[:n]...)
			_, _ = c.Writev(batch)
			l.iov = l.iov[n:]
		}
	}
	return nil
}

// floorSender writes pre-framed msg frames, byte for byte what Parley would
// send its members, for the floor server to relay.
type floorSender struct {
	conn net.Conn
	room string
	from string
	size int
	body []byte
	buf  []byte
}

func (s *floorSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	var err error
	s.buf, err = codec.Append(s.buf[:0], &codec.Msg{From: s.from, Room: s.room, Body: string(s.body), TS: due / 1e6, Seq: seq})
	if err != nil {
		return err
	}
	_, err = s.conn.Write(s.buf)
	return err
}

func (s *floorSender) close() { s.conn.Close() }

func discardFrames(conn net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
