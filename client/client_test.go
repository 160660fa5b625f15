package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/codec"
	"parley/server"
	"parley/server/servertest"
)

const waitFor = 5 * time.Second

// runServer starts a server on addr ("127.0.0.1:0" for any port) and
// returns it with a function that shuts it down gracefully.
func runServer(t *testing.T, addr string, cfg server.Config) (*server.Server, func()) {
	t.Helper()
	cfg.Addr = addr
	srv := servertest.Start(t, cfg)
	return srv, func() { servertest.Stop(t, srv) }
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr, nick string, opts Options) *Client {
	t.Helper()
	opts.Nick = nick
	c, err := Dial(ctxT(t), addr, opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", nick, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next event of type typ ("" for any), skipping others.
func next(t *testing.T, c *Client, typ string) Event {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", typ)
			}
			if typ == "" || ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func TestCallsAndEvents(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	addr := srv.Addr().String()
	amy := dial(t, addr, "amy", Options{})
	if w := next(t, amy, codec.TypeWelcome); w.Nick != "amy" || w.ID == "" || amy.ID() != w.ID {
		t.Fatalf("welcome = %+v", w)
	}
	bob := dial(t, addr, "bob", Options{})
	if j := next(t, amy, codec.TypeJoined); j.Nick != "bob" {
		t.Fatalf("joined = %+v", j)
	}
	ctx := ctxT(t)
	if err := amy.Join(ctx, "go"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "go"); err != nil {
		t.Fatal(err)
	}
	seq, err := bob.Say(ctx, "go", "hello")
	if err != nil || seq != 1 {
		t.Fatalf("Say = %d, %v", seq, err)
	}
	if m := next(t, amy, codec.TypeMsg); m.From != "bob" || m.Room != "go" || m.Seq != 1 || m.Body != "hello" {
		t.Fatalf("msg = %+v", m)
	}
	if err := amy.DM(ctx, "BOB", "psst"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob, codec.TypeMsg); m.From != "amy" || m.To != "bob" {
		t.Fatalf("dm = %+v", m)
	}
	nicks, count, err := amy.Who(ctx, "go")
	if err != nil || count != 2 || strings.Join(nicks, ",") != "amy,bob" {
		t.Fatalf("Who = %v %d %v", nicks, count, err)
	}
	if err := bob.Leave(ctx, "go"); err != nil {
		t.Fatal(err)
	}
	if l := next(t, amy, codec.TypeLeft); l.Nick != "bob" || l.Reason != codec.ReasonLeave {
		t.Fatalf("left = %+v", l)
	}
	rooms := amy.Rooms()
	sort.Strings(rooms)
	if strings.Join(rooms, ",") != "go,lobby" {
		t.Fatalf("Rooms = %v", rooms)
	}
	if err := bob.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if l := next(t, amy, codec.TypeLeft); l.Nick != "bob" || l.Reason != codec.ReasonQuit {
		t.Fatalf("left = %+v", l)
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	addr := srv.Addr().String()
	amy := dial(t, addr, "amy", Options{})
	ctx := ctxT(t)
	cases := []struct {
		err  error
		want *codec.Error
	}{
		{amy.DM(ctx, "ghost", "x"), codec.ErrNoSuchUser},
		{amy.Leave(ctx, "nowhere"), codec.ErrNotInRoom},
		{amy.Join(ctx, "bad room"), codec.ErrBadRoom},
		{func() error { _, err := amy.Say(ctx, "nowhere", "x"); return err }(), codec.ErrNotInRoom},
		{func() error { _, err := amy.Say(ctx, "", strings.Repeat("x", 5000)); return err }(), codec.ErrBodyTooLarge},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("got %v, want %v", c.err, c.want.Code)
		}
	}
	_, err := Dial(ctx, addr, Options{Nick: "AMY"})
	if !errors.Is(err, codec.ErrNickTaken) {
		t.Fatalf("Dial with a taken nick: %v", err)
	}
	_, err = Dial(ctx, addr, Options{Nick: "no spaces"})
	if !errors.Is(err, codec.ErrBadNick) {
		t.Fatalf("Dial with a bad nick: %v", err)
	}
}

// TestAutomaticPong: the server's idle timeout never fires on a client
// that sends nothing but answers pings.
func TestAutomaticPong(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{Heartbeat: 50 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	quiet := dial(t, srv.Addr().String(), "quiet", Options{})
	watcher := dial(t, srv.Addr().String(), "watcher", Options{})
	// Four idle timeouts pass; the watcher would see quiet leave.
	deadline := time.After(800 * time.Millisecond)
	for {
		select {
		case ev := <-watcher.Events():
			if ev.Type == codec.TypeLeft {
				t.Fatalf("a quiet but healthy client was dropped: %+v", ev)
			}
		case ev := <-quiet.Events():
			if ev.Type == EventDisconnected || ev.Type == codec.TypeBye {
				t.Fatalf("quiet client: %+v", ev)
			}
		case <-deadline:
			if _, _, err := quiet.Who(ctxT(t), ""); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestReconnectAfterRestart stops the server and starts a new one on the
// same port: the client reconnects, logs in and rejoins its rooms.
func TestReconnectAfterRestart(t *testing.T) {
	srv, stop := runServer(t, servertest.FixedAddr(t), server.Config{})
	addr := srv.Addr().String()
	opts := Options{Reconnect: true, ReconnectOnShutdown: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	amy := dial(t, addr, "amy", opts)
	if err := amy.Join(ctxT(t), "go"); err != nil {
		t.Fatal(err)
	}
	stop()
	next(t, amy, EventReconnecting)
	srv2, _ := runServer(t, addr, server.Config{})
	next(t, amy, EventReconnected)
	// amy is in "go" again on the new server.
	// The rejoin is sent before EventReconnected but not awaited: poll.
	bob := dial(t, srv2.Addr().String(), "bob", Options{})
	servertest.Eventually(t, waitFor, "amy in go after the reconnect", func() error {
		nicks, _, err := bob.Who(ctxT(t), "go")
		if err != nil || strings.Join(nicks, ",") != "amy" {
			return fmt.Errorf("go has %v (%v)", nicks, err)
		}
		return nil
	})
	if _, err := amy.Say(ctxT(t), "go", "back"); err != nil {
		t.Fatal(err)
	}
}

// TestReconnectAfterDrop cuts the connection under the client without a
// bye, through a proxy.
func TestReconnectAfterDrop(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	proxy := newProxy(t, srv.Addr().String())
	amy := dial(t, proxy.addr, "amy", Options{Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	watcher := dial(t, srv.Addr().String(), "watcher", Options{})
	proxy.cut()
	ev := next(t, amy, EventReconnecting)
	if ev.Err == nil || ev.Attempt != 1 || ev.Delay <= 0 {
		t.Fatalf("reconnecting = %+v", ev)
	}
	next(t, amy, EventReconnected)
	if l := next(t, watcher, codec.TypeLeft); l.Nick != "amy" || l.Reason != codec.ReasonDisconnect {
		t.Fatalf("left = %+v", l)
	}
	if j := next(t, watcher, codec.TypeJoined); j.Nick != "amy" {
		t.Fatalf("joined = %+v", j)
	}
}

// TestNoReconnectAfterShutdownByDefault: bye shutdown ends the client
// unless ReconnectOnShutdown is set.
func TestNoReconnectAfterShutdownByDefault(t *testing.T) {
	srv, stop := runServer(t, "127.0.0.1:0", server.Config{})
	amy := dial(t, srv.Addr().String(), "amy", Options{Reconnect: true})
	stop()
	ev := next(t, amy, EventDisconnected)
	if ev.Err == nil {
		t.Fatal("disconnected without a cause")
	}
	if _, ok := <-amy.Events(); ok {
		t.Fatal("events must close after disconnected")
	}
}

// TestNeverSpinsWhenServerIsGone: with the server gone each reconnect
// attempt announces a delay drawn from its doubling window, and the
// attempts take at least about that long: the time from the first to the
// last is at least half the delays announced between them (half, since
// this side sees each event a little after it was sent).
func TestNeverSpinsWhenServerIsGone(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	proxy := newProxy(t, srv.Addr().String())
	amy := dial(t, proxy.addr, "amy", Options{Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	proxy.close()
	var first time.Time
	var announced time.Duration
	for attempt := 1; attempt <= 7; attempt++ {
		ev := next(t, amy, EventReconnecting)
		if attempt == 1 {
			first = time.Now()
		}
		ceil := min(10*time.Millisecond<<(attempt-1), 200*time.Millisecond)
		if ev.Attempt != attempt || ev.Delay < ceil/2 || ev.Delay > ceil {
			t.Fatalf("attempt %d (event says %d): delay %v outside [%v, %v]", attempt, ev.Attempt, ev.Delay, ceil/2, ceil)
		}
		if attempt < 7 {
			announced += ev.Delay
		}
	}
	if took := time.Since(first); took < announced/2 {
		t.Fatalf("7 attempts took %v after announcing %v of delays: the client spins", took, announced)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	ignore := goleak.IgnoreCurrent()
	c, err := Dial(ctxT(t), srv.Addr().String(), Options{Nick: "amy", Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctxT(t), "go"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("Close must be idempotent")
	}
	if _, err := c.Say(ctxT(t), "", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Say after Close: %v", err)
	}
	// The in-process server's gnet goroutines may still be starting when
	// the snapshot is taken; they run under errgroup, which the client
	// does not use.
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("golang.org/x/sync/errgroup.(*Group).Go.func1"))
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 20; n++ {
		d := backoff(n, 100*time.Millisecond, 30*time.Second)
		ceil := min(100*time.Millisecond<<(n-1), 30*time.Second)
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, ceil/2, ceil)
		}
	}
}

// proxy forwards TCP connections to a target and can cut them.
type proxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// cut closes every proxied connection, without a goodbye from either side.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// close cuts and stops accepting.
func (p *proxy) close() {
	p.ln.Close()
	p.cut()
}

// TestReconnectResumes: a client cut off while another talks in the lobby
// and in a room reconnects and resumes both: it receives every message of
// each exactly once, in order, and a recovered event for each.
func TestReconnectResumes(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{RateLimit: -1})
	proxy := newProxy(t, srv.Addr().String())
	amy := dial(t, proxy.addr, "amy", Options{Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	talker := dial(t, srv.Addr().String(), "talker", Options{})
	ctx := context.Background()
	for _, c := range []*Client{amy, talker} {
		if err := c.Join(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	}
	say := func(n int) {
		for i := 0; i < n; i++ {
			for _, room := range []string{codec.Lobby, "r"} {
				if _, err := talker.Say(ctx, room, fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	say(5)
	seen := map[string][]uint64{}
	for len(seen["r"]) < 5 || len(seen[codec.Lobby]) < 5 {
		ev := next(t, amy, codec.TypeMsg)
		seen[ev.Room] = append(seen[ev.Room], ev.Seq)
	}
	proxy.cut()
	say(10) // while amy is away
	recovered := map[string]bool{}
	for len(recovered) < 2 || len(seen["r"]) < 15 || len(seen[codec.Lobby]) < 15 {
		select {
		case ev := <-amy.Events():
			switch ev.Type {
			case codec.TypeMsg:
				seen[ev.Room] = append(seen[ev.Room], ev.Seq)
			case codec.TypeRecover:
				if !ev.Recovered {
					t.Fatalf("%s not recovered", ev.Room)
				}
				recovered[ev.Room] = true
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("seen %v, recovered %v", seen, recovered)
		}
	}
	for room, seqs := range seen {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("%s: %v", room, seqs)
			}
		}
	}
}

// TestFillsGaps: a client whose application stops reading falls behind in
// a room; the server drops room messages for it and sends a gap, and the
// client fills it from history: the application ends with every message
// once, those of the gap marked Filled.
func TestFillsGaps(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{RateLimit: -1, MaxOutbound: 256 << 10})
	smallBuffer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = nc.(*net.TCPConn).SetReadBuffer(256 << 10)
		}
		return nc, err
	}
	amy := dial(t, srv.Addr().String(), "amy", Options{EventBuffer: 1, Dial: smallBuffer})
	talker := dial(t, srv.Addr().String(), "talker", Options{})
	ctx := context.Background()
	body := strings.Repeat("x", 2000)
	const msgs = 600
	for i := 0; i < msgs; i++ { // amy's application reads nothing meanwhile
		if _, err := talker.Say(ctx, codec.Lobby, body); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]int{}
	filled, gaps := 0, 0
	for len(seen) < msgs {
		select {
		case ev := <-amy.Events():
			switch {
			case ev.Type == codec.TypeMsg && ev.Room == codec.Lobby:
				seen[ev.Seq]++
				if ev.Filled {
					filled++
				}
			case ev.Type == codec.TypeGap:
				gaps++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("seen %d of %d (gaps %d, filled %d)", len(seen), msgs, gaps, filled)
		}
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("seq %d seen %d times", seq, n)
		}
	}
	if gaps == 0 || filled == 0 {
		t.Fatalf("gaps %d, filled %d: the client never fell behind", gaps, filled)
	}
	t.Logf("%d gap(s), %d messages filled from history", gaps, filled)
}

// TestOwnMessagesCountTowardResume: the server does not send a client its
// own messages, so their acked seqs move its place in the room: a resume
// after a drop replays only what others said meanwhile, not the client's
// own messages again.
func TestOwnMessagesCountTowardResume(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{RateLimit: -1})
	proxy := newProxy(t, srv.Addr().String())
	amy := dial(t, proxy.addr, "amy", Options{Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	talker := dial(t, srv.Addr().String(), "talker", Options{})
	ctx := ctxT(t)
	for _, c := range []*Client{amy, talker} {
		if err := c.Join(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := talker.Say(ctx, "r", "before"); err != nil {
		t.Fatal(err)
	}
	next(t, amy, codec.TypeMsg)
	for i := range 3 {
		if _, err := amy.SayID(ctx, "r", fmt.Sprint("own", i), "mine"); err != nil {
			t.Fatal(err)
		}
	}
	proxy.cut()
	next(t, amy, EventReconnecting)
	if _, err := talker.Say(ctx, "r", "while away"); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next(t, amy, "")
		if ev.Type == codec.TypeMsg && ev.Room == "r" {
			if ev.From == "amy" {
				t.Fatalf("the resume replayed amy's own message %+v", ev)
			}
			if ev.Body != "while away" || ev.Seq != 5 {
				t.Fatalf("replayed %+v, want talker's seq 5", ev)
			}
		}
		if ev.Type == codec.TypeRecover && ev.Room == "r" {
			if !ev.Recovered {
				t.Fatal("not recovered")
			}
			return
		}
	}
}

// TestPermanentRefusalStopsReconnecting: a reconnect the server refuses
// with bad_token ends the client with one disconnected event saying so,
// after one reconnecting event, instead of retrying forever.
func TestPermanentRefusalStopsReconnecting(t *testing.T) {
	tk := newTokens(t, "amy", time.Hour)
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}})
	proxy := newProxy(t, srv.Addr().String())
	var calls atomic.Int32
	source := func(ctx context.Context) (string, error) {
		if calls.Add(1) > 1 {
			return "not-a-token", nil
		}
		return tk.source(ctx)
	}
	c, err := Dial(ctxT(t), proxy.addr, Options{Token: source, Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	proxy.cut()
	reconnecting := 0
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("events closed without a disconnected event")
			}
			switch ev.Type {
			case EventReconnecting:
				reconnecting++
			case EventDisconnected:
				if !errors.Is(ev.Err, codec.ErrBadToken) || reconnecting != 1 {
					t.Fatalf("disconnected with %v after %d attempts, want bad_token after 1", ev.Err, reconnecting)
				}
				if err := c.Ready(ctxT(t)); !errors.Is(err, ErrClosed) {
					t.Fatalf("Ready after the end = %v", err)
				}
				return
			}
		case <-timeout:
			t.Fatalf("still reconnecting after %d attempts", reconnecting)
		}
	}
}

// TestReadyWaitsForTheReconnect: while the client reconnects, Ready waits,
// and returns once it is back; a say then goes through.
func TestReadyWaitsForTheReconnect(t *testing.T) {
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{})
	proxy := newProxy(t, srv.Addr().String())
	amy := dial(t, proxy.addr, "amy", Options{Reconnect: true, MinBackoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	proxy.cut()
	next(t, amy, EventReconnecting)
	if _, err := amy.Say(ctxT(t), "", "now"); !errors.Is(err, ErrDisconnected) || errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("say while reconnecting = %v, want not sent", err)
	}
	if err := amy.Ready(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := amy.Say(ctxT(t), "", "after"); err != nil {
		t.Fatal(err)
	}
}
