package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
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
// as deliveries, late, and the run counts the resume.
type rconn struct {
	nick     string
	shard    int
	loggedIn bool
	resume   string // the session's resume token, from its welcome
	epoch    string // the room's epoch
	last     uint64 // the room's last seq received
	resuming bool   // this connection resumes an earlier one
	welcomed bool   // this connection's login was answered
	tries    int    // dials of this resume so far
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
				c, err := g.cli.DialContext("tcp", g.cfg.Addr, &rconn{nick: g.cfg.receiverNick(int(i))})
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
	switch {
	case g.cfg.Target != TargetParley:
		return nil, gnet.None
	case rc.resuming:
		return resumeFrames(rc, g.cfg.Room), gnet.None
	}
	return loginFrames(rc.nick, g.cfg.Room), gnet.None
}

// resumeFrames logs a receiver in again with its resume token, resuming
// its room after the last seq it received.
func resumeFrames(rc *rconn, room string) []byte {
	login := &codec.Login{Nick: rc.nick, Resume: rc.resume}
	if room == codec.Lobby {
		login.Since, login.Epoch = &rc.last, rc.epoch
	}
	b, _ := codec.Append(nil, login)
	if room != codec.Lobby {
		b, _ = codec.Append(b, &codec.Join{Room: room, Since: &rc.last, Epoch: rc.epoch, Ref: "j"})
	}
	return b
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
	if bytes.HasPrefix(body, historyPrefix) {
		g.filled(c, rc, body, now)
		return
	}
	if due, seq, ok := ParseFrame(body); ok {
		if s := roomSeq(body); s > rc.last {
			rc.last = s
		}
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
		if ev.Type == codec.TypeWelcome {
			rc.resume, rc.welcomed, rc.tries = ev.Resume, true, 0
		}
		if ev.Type == codec.TypeAck || g.cfg.Room == codec.Lobby {
			if !rc.resuming {
				rc.epoch, rc.last = ev.Epoch, max(rc.last, ev.Seq)
			}
			if !rc.loggedIn && g.ready.Add(1) == int64(g.cfg.Conns) {
				close(g.readyc)
			}
			rc.loggedIn = true
		}
	case codec.TypeRecover:
		g.sink.resumed(ev.Recovered)
	case codec.TypeGap:
		// The server dropped room messages while this receiver was
		// behind: they come from history, late.
		_, _ = c.Write(fillRequest(ev.Room, ev.First-1, ev.Last))
	case codec.TypeError:
		if rc.resuming && !rc.welcomed && ev.Code == codec.CodeNickTaken {
			// The server has not seen the drop yet: OnClose dials again,
			// a little later.
			rc.tries++
			_ = c.Close()
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

var pongFrame = codec.MustEncode(&codec.Pong{})

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

// roomSeq reads a msg frame's room seq (the "seq" field, near its end).
func roomSeq(body []byte) uint64 {
	i := bytes.LastIndex(body, seqKey)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range body[i+len(seqKey):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

var seqKey = []byte(`"seq":`)

// A gap is filled by paging history; the page's ref carries the gap's last
// seq, so the answer says how far to go.
var historyPrefix = []byte(`{"type":"history"`)

const fillRef = "fill:"

func fillRequest(room string, since, last uint64) []byte {
	limit := codec.HistoryPage
	return codec.MustEncode(&codec.History{Room: room, Since: &since, Limit: &limit, Ref: fillRef + strconv.FormatUint(last, 10)})
}

// filled records the messages of a history page that fills a gap, and asks
// for the next page until the gap is filled.
func (g *framedGroup) filled(c gnet.Conn, rc *rconn, body []byte, now int64) {
	var ev codec.Event
	if codec.DecodeEvent(body, &ev) != nil || !strings.HasPrefix(ev.Ref, fillRef) {
		return
	}
	last, _ := strconv.ParseUint(ev.Ref[len(fillRef):], 10, 64)
	seq := uint64(0)
	for _, m := range ev.Msgs {
		if m.Seq > last {
			return
		}
		if due, bseq, ok := ParseBody([]byte(m.Body)); ok {
			g.sink.deliver(rc.shard, due, bseq, now)
		}
		seq = m.Seq
		rc.last = max(rc.last, m.Seq)
	}
	if seq > 0 && seq < last {
		_, _ = c.Write(fillRequest(ev.Room, seq, last))
	}
}
