package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"parley/codec"
)

// The tests in this file are the attacks of docs/RELIABILITY.md's
// "Abuse with the default flags" section, one or more per row.

// TestEngineStoppingIsAnError: the event loops stopping without Shutdown
// makes Serve return an error (parley serve then exits 1), not nil.
func TestEngineStoppingIsAnError(t *testing.T) {
	srv, err := New(Config{Addr: "127.0.0.1:0", Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	<-srv.Ready()
	srv.layer.FailLoops()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "stopped on their own") {
			t.Fatalf("Serve = %v, want the engine's stop reported", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve did not return")
	}
}

// neverReader logs in and does not read (the test may read later), with
// a receive buffer of rcvbuf bytes (0 for the kernel's), but keeps
// answering the heartbeat blindly so that it is never idle. A receive
// buffer far below the loopback MSS stalls TCP's window updates once the
// reader does read, so a reader that will read keeps the kernel's.
func neverReader(t *testing.T, srv *Server, nick, room string, rcvbuf int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	frames := codec.MustEncode(&codec.Login{Nick: nick})
	if room != "" {
		frames = append(frames, codec.MustEncode(&codec.Join{Room: room})...)
	}
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		pong := codec.MustEncode(&codec.Pong{})
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := c.Write(pong); err != nil {
					return
				}
			}
		}
	}()
	return c
}

// TestWriteDeadlineClosesReaderThatAnswersPings: a client that answers
// pings but never reads is closed as a slow consumer once bytes have
// waited for it longer than the write deadline, though its queue is far
// below max-outbound.
func TestWriteDeadlineClosesReaderThatAnswersPings(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1, WriteDeadline: 400 * time.Millisecond})
	sender := loggedIn(t, srv, "sender")
	sender.joinRoom("r")
	neverReader(t, srv, "stuck", "r", 4096)
	sender.until("stuck joining", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Nick == "stuck" })
	body := strings.Repeat("x", 4000)
	// About 600 KB: more than the kernel buffers take, far less than the
	// default max-outbound of 4 MiB.
	for i := 0; i < 150; i++ {
		sender.send(&codec.Say{Room: "r", Body: body})
	}
	ev := sender.until("stuck leaving", func(ev codec.Event) bool { return ev.Type == codec.TypeLeft && ev.Nick == "stuck" })
	if ev.Reason != codec.ReasonSlowConsumer {
		t.Fatalf("stuck left with %q, want slow_consumer", ev.Reason)
	}
	eventually(t, "the queue to be forgotten", func() bool { return srv.Stats().OutboundBytes == 0 })
}

// TestOutboundBudgetShedsLargestQueues: readers that never read hold at
// most the server-wide budget together (plus one flush), the largest are
// closed first, and a reader that keeps up gets every message.
func TestOutboundBudgetShedsLargestQueues(t *testing.T) {
	const budget = 2 << 20
	srv := startServer(t, Config{RateLimit: -1, MaxOutbound: 64 << 20, MaxOutboundTotal: budget})
	sender, fast := loggedIn(t, srv, "sender"), loggedIn(t, srv, "fast")
	sender.joinRoom("r")
	fast.joinRoom("r")
	for i := 0; i < 6; i++ {
		neverReader(t, srv, fmt.Sprint("stuck", i), "r", 4096)
		sender.until("a stuck reader joining", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined })
	}
	body := strings.Repeat("x", 4000)
	var peak int64
	const n = 2000
	done := make(chan struct{})
	inflight := make(chan struct{}, 32)
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			inflight <- struct{}{}
			sender.send(&codec.Say{Room: "r", Body: body})
			peak = max(peak, srv.Stats().OutboundBytes)
		}
	}()
	shed := 0
	for seq := uint64(1); seq <= n; {
		switch ev := fast.next(); ev.Type {
		case codec.TypeMsg:
			if ev.Seq != seq {
				t.Fatalf("fast reader got seq %d, want %d", ev.Seq, seq)
			}
			seq++
			<-inflight
		case codec.TypeLeft:
			if ev.Reason != codec.ReasonSlowConsumer || !strings.HasPrefix(ev.Nick, "stuck") {
				t.Fatalf("%s left with %q", ev.Nick, ev.Reason)
			}
			if ev.Room == "r" {
				shed++
			}
		}
	}
	<-done
	// One flush of 32 messages to each reader may land before a shed.
	slack := int64(7 * 32 * 8 << 10)
	t.Logf("peak outbound memory %d KiB against a budget of %d KiB; %d readers shed", peak>>10, budget>>10, shed)
	if peak > budget+slack {
		t.Fatalf("outbound memory reached %d bytes, budget %d", peak, budget)
	}
	if shed == 0 {
		t.Fatal("no reader was shed")
	}
}

// TestPreLoginFrameLimits: before login a frame may be MaxLoginFrame
// bytes at most, and an incomplete one must be completed within the frame
// timeout; after login the timeout holds too.
func TestPreLoginFrameLimits(t *testing.T) {
	srv := startServer(t, Config{FrameTimeout: 300 * time.Millisecond, LoginTimeout: time.Minute, IdleTimeout: time.Minute})
	big := dial(t, srv)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 65536)
	big.sendRaw(hdr[:])
	big.expectError(codec.CodeFrameTooLarge)
	big.expectBye(codec.ReasonProtocolError)

	slow := dial(t, srv)
	binary.BigEndian.PutUint32(hdr[:], 4000)
	slow.sendRaw(append(hdr[:], bytes.Repeat([]byte{'x'}, 3999)...))
	slow.expectBye(codec.ReasonLoginTimeout)

	in := loggedIn(t, srv, "amy")
	in.sendRaw(hdr[:2])
	in.until("bye timeout", func(ev codec.Event) bool { return ev.Type == codec.TypeBye && ev.Reason == codec.ReasonTimeout })
	if got := srv.Stats().Closes[codec.ReasonLoginTimeout]; got != 1 {
		t.Fatalf("login_timeout closes = %d", got)
	}
}

// TestDMBackpressure: twenty senders flood a recipient that does not read
// for a while. Once it falls behind, senders get rate_limited instead of
// the recipient being closed, and it then receives every acked message.
func TestDMBackpressure(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1, DMRate: -1, MaxOutbound: 512 << 10})
	victim := neverReader(t, srv, "victim", "", 0)
	eventually(t, "the victim's login", func() bool { return srv.Stats().Online == 1 })
	var senders []*tclient
	for i := 0; i < 20; i++ {
		senders = append(senders, loggedIn(t, srv, fmt.Sprint("att", i)))
	}
	body := strings.Repeat("y", 4000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	limited, acked := 0, 0
	for i, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 40; j++ {
				c.send(&codec.DM{To: "victim", Body: body, Ref: fmt.Sprint(i, "-", j)})
			}
			for j := 0; j < 40; j++ {
				ev := c.until("an answer", func(ev codec.Event) bool { return ev.Type == codec.TypeAck || ev.Type == codec.TypeError })
				mu.Lock()
				switch {
				case ev.Type == codec.TypeAck:
					acked++
				case ev.Code == codec.CodeRateLimited:
					limited++
				default:
					t.Errorf("sender got %s: %s", ev.Code, ev.Message)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d direct messages acked, %d rate_limited", acked, limited)
	if limited == 0 {
		t.Fatal("no sender was rate limited")
	}
	r := codec.NewReader(victim, 0)
	_ = victim.SetReadDeadline(time.Now().Add(waitFor))
	for got := 0; got < acked; {
		body, err := r.Next()
		if err != nil {
			t.Fatalf("victim read %d of %d messages: %v (stats %+v)", got, acked, err, srv.Stats())
		}
		var ev codec.Event
		_ = codec.DecodeEvent(body, &ev)
		switch ev.Type {
		case codec.TypeMsg:
			got++
		case codec.TypeBye:
			t.Fatalf("victim closed with %s after %d of %d messages", ev.Reason, got, acked)
		}
	}
}

// TestDMRatePerRecipient: one sender gets DMBurst direct messages to one
// user through at once, and rate_limited for the rest, while messages to
// another user still pass.
func TestDMRatePerRecipient(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1, DMRate: 0.001, DMBurst: 5})
	a := loggedIn(t, srv, "amy")
	loggedIn(t, srv, "ben")
	loggedIn(t, srv, "cat")
	for i := 0; i < 8; i++ {
		a.send(&codec.DM{To: "ben", Body: "hi", Ref: fmt.Sprint(i)})
	}
	a.send(&codec.DM{To: "cat", Body: "hi", Ref: "cat"})
	acks, limited := 0, 0
	for i := 0; i < 9; i++ {
		ev := a.until("an answer", func(ev codec.Event) bool { return ev.Type == codec.TypeAck || ev.Type == codec.TypeError })
		switch {
		case ev.Type == codec.TypeAck:
			acks++
		case ev.Code == codec.CodeRateLimited && ev.Ref != "cat":
			limited++
		default:
			t.Fatalf("answer %+v", ev)
		}
	}
	if acks != 6 || limited != 3 {
		t.Fatalf("%d acks and %d rate_limited, want 6 (5 to ben, 1 to cat) and 3", acks, limited)
	}
}

// TestNickHeldForResume: a session dropped without quit keeps its nick
// for its resume token: another login gets nick_taken, the token takes it
// back, and after the hold anyone may have it.
func TestNickHeldForResume(t *testing.T) {
	// Long enough that the logins below all come within it, even on a
	// loaded machine.
	srv := startServer(t, Config{NickHold: 2 * time.Second})
	victim := dial(t, srv)
	welcome := victim.login("victim")
	if welcome.Resume == "" {
		t.Fatal("welcome has no resume token")
	}
	victim.conn.Close()
	eventually(t, "the drop", func() bool { return srv.Stats().Online == 0 })
	thief := dial(t, srv)
	thief.send(&codec.Login{Nick: "Victim"})
	thief.expectError(codec.CodeNickTaken)
	thief.send(&codec.Login{Nick: "victim", Resume: "not-the-token"})
	thief.expectError(codec.CodeNickTaken)
	back := dial(t, srv)
	back.send(&codec.Login{Nick: "victim", Resume: welcome.Resume})
	again := back.expect(codec.TypeWelcome)
	back.send(&codec.Quit{})
	back.expectBye(codec.ReasonQuit)
	// quit releases at once; a drop holds until the hold ends.
	loggedIn(t, srv, "victim").conn.Close()
	eventually(t, "the hold", func() bool { return srv.Stats().HeldNicks == 1 })
	eventually(t, "the hold to end", func() bool { return srv.Stats().HeldNicks == 0 })
	thief.send(&codec.Login{Nick: "victim"})
	thief.expect(codec.TypeWelcome)
	if again.Resume == welcome.Resume {
		t.Fatal("a new session got the old resume token")
	}
}

// TestWhoCostAndAfter: who costs ten frames of the flood budget, pages
// through the sorted index, and refuses an oversized after before folding
// it.
func TestWhoCostAndAfter(t *testing.T) {
	srv := startServer(t, Config{RateLimit: 0.001, RateBurst: 40})
	c := loggedIn(t, srv, "amy")
	answers := map[string]int{}
	for i := 0; i < 5; i++ {
		c.send(&codec.Who{Ref: fmt.Sprint(i)})
	}
	for i := 0; i < 5; i++ {
		ev := c.until("an answer", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers || ev.Type == codec.TypeError })
		answers[ev.Type+string(ev.Code)]++
	}
	// Login takes 1 of the 40 frames, each who 10: three fit.
	if answers["users"] != 3 || answers["errorrate_limited"] != 2 {
		t.Fatalf("answers to 5 who within a burst of 40 frames: %v, want 3 users and 2 rate_limited", answers)
	}
	srv2 := startServer(t, Config{})
	c2 := loggedIn(t, srv2, "bob")
	c2.send(&codec.Who{After: strings.Repeat("ａ", 20000), Ref: "w"})
	if ev := c2.expectError(codec.CodeBadRequest); ev.Ref != "w" {
		t.Fatalf("error %+v", ev)
	}
}

// TestWhoOnlinePagesInOrder: the sorted index pages every user once, in
// order, across pages, while users come and go.
func TestWhoOnlinePagesInOrder(t *testing.T) {
	// 1,200 logins take minutes on a loaded machine with the race
	// detector: nobody may time out meanwhile.
	srv := startServer(t, Config{RateLimit: -1, IdleTimeout: time.Hour, Heartbeat: time.Hour})
	var want []string
	for i := 0; i < 1200; i++ {
		nick := fmt.Sprintf("u%04d", i)
		want = append(want, nick)
		c := dial(t, srv)
		c.send(&codec.Login{Nick: nick})
	}
	reaches(t, "every login", 1200, func() int { return srv.Stats().Online })
	asker := loggedIn(t, srv, "zz")
	want = append(want, "zz")
	sort.Strings(want)
	var got []string
	after := ""
	for {
		asker.send(&codec.Who{After: after, Ref: "w"})
		ev := asker.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers })
		if ev.Count != 1201 {
			t.Fatalf("count %d", ev.Count)
		}
		got = append(got, ev.Nicks...)
		if !ev.More {
			break
		}
		after = ev.Nicks[len(ev.Nicks)-1]
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged %d nicks, want %d in order", len(got), len(want))
	}
}

// TestConfusableNicks: nicks that look like one online are refused, as
// are invisible ones and ones that mix scripts.
func TestConfusableNicks(t *testing.T) {
	srv := startServer(t, Config{})
	loggedIn(t, srv, "admin")
	loggedIn(t, srv, "bob")
	cases := map[string]codec.Code{
		"аdmin":       codec.CodeBadNick,   // Cyrillic а
		"bοb":         codec.CodeBadNick,   // Greek ο
		"ａｄｍｉｎ":       codec.CodeNickTaken, // full width
		"𝐚𝐝𝐦𝐢𝐧":       codec.CodeBadNick,   // mathematical bold
		"admın":       codec.CodeNickTaken, // dotless i
		"adminʼ":      codec.CodeBadNick,   // modifier apostrophe
		"admin\u3164": codec.CodeBadNick,   // Hangul filler
		"\u3164":      codec.CodeBadNick,
		"ADMIN":       codec.CodeNickTaken,
		"a\x01b":      codec.CodeBadNick,
		"a\u200bdmin": codec.CodeBadNick, // zero-width space
		"\u202eadmin": codec.CodeBadNick,
	}
	c := dial(t, srv)
	for nick, code := range cases {
		c.send(&codec.Login{Nick: nick, Ref: nick})
		if ev := c.expectError(code); ev.Ref != nick {
			t.Fatalf("%q: %+v", nick, ev)
		}
	}
	c.send(&codec.Login{Nick: "小明"})
	if ev := c.expect(codec.TypeWelcome); ev.Nick != "小明" {
		t.Fatalf("welcome %+v", ev)
	}
}

// TestControlCharactersAndDuplicateKeys: bodies with terminal escapes
// and other controls are refused (newline and tab pass), duplicate keys
// make a frame bad_json, and room names fold like nicks.
func TestControlCharactersAndDuplicateKeys(t *testing.T) {
	srv := startServer(t, Config{})
	a, b := loggedIn(t, srv, "amy"), loggedIn(t, srv, "ben")
	a.expect(codec.TypeJoined)
	for _, body := range []string{"\x1b[31mred", "bell\x07", "cr\r", "del\x7f", "c1\u0085"} {
		a.send(&codec.Say{Body: body, Ref: "s"})
		a.expectError(codec.CodeBadRequest)
	}
	a.send(&codec.Say{Body: "two\nlines\tand a tab", Ref: "ok"})
	a.untilAck("ok")
	if ev := b.expect(codec.TypeMsg); ev.Body != "two\nlines\tand a tab" {
		t.Fatalf("body %q", ev.Body)
	}
	a.sendRaw(rawFrame(`{"type":"say","type":"dm","to":"ben","body":"x"}`))
	a.expectError(codec.CodeBadJSON)
	a.send(&codec.Join{Room: "LOBBY", Ref: "j"})
	a.untilAck("j")
	a.send(&codec.Say{Room: "Lobby", Body: "same room", Ref: "s2"})
	a.untilAck("s2")
	if ev := b.expect(codec.TypeMsg); ev.Room != codec.Lobby {
		t.Fatalf("room %q", ev.Room)
	}
	a.send(&codec.Join{Room: "Golang"})
	b.send(&codec.Join{Room: "GOLANG", Ref: "g"})
	b.untilAck("g")
	a.send(&codec.Who{Room: "golang", Ref: "w"})
	if ev := a.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers }); ev.Count != 2 || ev.Room != "golang" {
		t.Fatalf("who golang = %+v", ev)
	}
}

// syncBuf is a log sink for tests.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLifecycleLogsAtDebug: at info, connections cost no log line each;
// one line per interval counts them, and repeated warnings are rate
// limited.
func TestLifecycleLogsAtDebug(t *testing.T) {
	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := startServer(t, Config{Logger: logger, StatsInterval: 50 * time.Millisecond, MaxConns: 50})
	for i := 0; i < 50; i++ {
		c := loggedIn(t, srv, fmt.Sprint("u", i))
		defer func() { c.send(&codec.Quit{}) }()
	}
	for i := 0; i < 30; i++ {
		c := dial(t, srv)
		c.expectBye(codec.ReasonServerFull)
	}
	// The counters lines count what changed since the one before: 50
	// logins in all, over one line or more.
	eventually(t, "counters lines with the logins", func() bool { return sumField(logs.String(), "logins=") == 50 })
	out := logs.String()
	for _, per := range []string{"connection opened", "msg=login", "connection closed"} {
		if strings.Contains(out, per) {
			t.Fatalf("a line per connection at info: %q\n%s", per, out)
		}
	}
	if n := strings.Count(out, "connection refused"); n != 1 {
		t.Fatalf("%d refusal warnings for 30 refusals, want 1 (rate limited)\n%s", n, out)
	}
}

// TestJoinBudget: join/leave toggling runs out of its budget.
func TestJoinBudget(t *testing.T) {
	srv := startServer(t, Config{JoinRate: 0.001, JoinBurst: 6})
	toggler := loggedIn(t, srv, "toggler")
	limited := 0
	for i := 0; i < 10; i++ {
		var m codec.Message = &codec.Join{Room: fmt.Sprint("r", i/2), Ref: "t"}
		if i%2 == 1 {
			m = &codec.Leave{Room: fmt.Sprint("r", i/2), Ref: "t"}
		}
		if i >= 6 {
			m = &codec.Join{Room: fmt.Sprint("x", i), Ref: "t"}
		}
		toggler.send(m)
		ev := toggler.until("an answer", func(ev codec.Event) bool { return ev.Ref == "t" })
		if ev.Type == codec.TypeError {
			if ev.Code != codec.CodeRateLimited {
				t.Fatalf("toggle %d: %s", i, ev.Code)
			}
			limited++
		}
	}
	if limited != 4 {
		t.Fatalf("%d of 10 toggles rate limited, want 4 (burst 6)", limited)
	}
}

// TestPresenceHysteresis: a room that went over the presence limit keeps
// counting changes until it is a tenth below the limit, so members going
// back and forth at the limit do not cost a frame to everyone each time.
func TestPresenceHysteresis(t *testing.T) {
	srv := startServer(t, Config{JoinRate: -1, PresenceLimit: 20, PresenceInterval: time.Hour})
	watcher := loggedIn(t, srv, "watcher")
	watcher.joinRoom("r")
	var members []*tclient
	for i := 0; i < 20; i++ {
		c := loggedIn(t, srv, fmt.Sprint("m", i))
		c.joinRoom("r")
		members = append(members, c)
	}
	// 21 members: over the limit. One leaves (20, at the limit), then
	// another toggles between 19 and 20, never a tenth under the limit.
	members[0].send(&codec.Leave{Room: "r", Ref: "l"})
	members[0].untilAck("l")
	watcher.send(&codec.Ping{})
	for ev := watcher.next(); ev.Type != codec.TypePong; ev = watcher.next() {
	}
	toggler := members[2]
	for i := 0; i < 6; i++ {
		var m codec.Message = &codec.Leave{Room: "r", Ref: "t"}
		if i%2 == 1 {
			m = &codec.Join{Room: "r", Ref: "t"}
		}
		toggler.send(m)
		toggler.untilAck("t")
	}
	watcher.send(&codec.Ping{})
	individual := 0
	for ev := watcher.next(); ev.Type != codec.TypePong; ev = watcher.next() {
		if (ev.Type == codec.TypeJoined || ev.Type == codec.TypeLeft) && ev.Nick == "m2" {
			individual++
		}
	}
	if individual != 0 {
		t.Fatalf("watcher got %d individual notices of the toggler near the limit", individual)
	}
}

// TestConnRatePerIP: one address opening connections faster than the
// rate gets bye conn_rate beyond the burst and what the rate refilled.
func TestConnRatePerIP(t *testing.T) {
	srv := startServer(t, Config{ConnRatePerIP: 5})
	full := 0
	start := time.Now()
	for i := 0; i < 20; i++ {
		c := dial(t, srv)
		c.send(&codec.Login{Nick: fmt.Sprint("u", i)})
		if ev := c.next(); ev.Type == codec.TypeBye {
			if ev.Reason != codec.ReasonConnRate {
				t.Fatalf("bye %s", ev.Reason)
			}
			full++
		}
	}
	// The burst is 10; the rate refills 5 a second meanwhile.
	allowed := 10 + int(5*time.Since(start).Seconds()+1)
	if full < 1 || full < 20-allowed {
		t.Fatalf("%d of 20 fast connections refused, want at least %d (burst 10, 5/s for %v)", full, 20-allowed, time.Since(start))
	}
}

// pingMedian is the median round trip of n pings from c, a client of srv.
func pingMedian(c *tclient, srv *Server, n int) time.Duration {
	c.t.Helper()
	rtts := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		c.send(&codec.Ping{})
		awaitWhileBusy(c.t, c, srv, codec.TypePong)
		rtts = append(rtts, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts[n/2]
}

// abuser sends the frames make returns at four times the default frame
// rate until stop closes, except while paused is set.
func abuser(t *testing.T, srv *Server, nick string, stop <-chan struct{}, paused *atomic.Bool, wg *sync.WaitGroup, make func(i int) codec.Message) {
	c := loggedIn(t, srv, nick)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				if paused.Load() {
					continue
				}
				if _, err := c.conn.Write(codec.MustEncode(make(i))); err != nil {
					return
				}
			}
		}
	}()
}

// TestBystanderLatencyUnderAbuse: with the default limits, 1,000 users
// online and twelve clients abusing who, joins and direct messages at
// four times the frame rate, the abusers are held back by flood control
// and a bystander's every ping is answered. Under make soak (PARLEY_SOAK)
// its ping round trip must also stay within a ratio of its idle round
// trip: a latency ratio depends on what else loads the machine, so it is
// measured there, not in make test.
func TestBystanderLatencyUnderAbuse(t *testing.T) {
	// The default flood limits; 1,000 logins take minutes on a loaded
	// machine with the race detector, so nobody may time out meanwhile.
	srv := startServer(t, Config{IdleTimeout: time.Hour, Heartbeat: time.Hour})
	bystander := loggedIn(t, srv, "bystander")
	for i := 0; i < 1000; i++ {
		dial(t, srv).send(&codec.Login{Nick: fmt.Sprint("user", i)})
	}
	reaches(t, "every login", 1001, func() int { return srv.Stats().Online })
	loggedIn(t, srv, "victim")
	stop := make(chan struct{})
	var paused atomic.Bool
	paused.Store(true)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		abuser(t, srv, fmt.Sprint("who", i), stop, &paused, &wg, func(int) codec.Message { return &codec.Who{} })
		abuser(t, srv, fmt.Sprint("toggle", i), stop, &paused, &wg, func(j int) codec.Message {
			if j%2 == 0 {
				return &codec.Join{Room: codec.Lobby + "2"}
			}
			return &codec.Leave{Room: codec.Lobby + "2"}
		})
		abuser(t, srv, fmt.Sprint("dm", i), stop, &paused, &wg, func(int) codec.Message { return &codec.DM{To: "victim", Body: strings.Repeat("z", 2000)} })
	}
	// Quiet and abused phases alternate, so that whatever else loads the
	// machine meanwhile weighs on both medians alike.
	var idles, busies []time.Duration
	for range 3 {
		paused.Store(true)
		time.Sleep(50 * time.Millisecond) // what the abusers queued drains
		idles = append(idles, pingMedian(bystander, srv, 11))
		paused.Store(false)
		time.Sleep(50 * time.Millisecond)
		busies = append(busies, pingMedian(bystander, srv, 11))
	}
	close(stop)
	wg.Wait()
	// Four abusers each of who, joins and DMs at 200 frames/s: flood
	// control (or the who, join and DM budgets) must have refused some.
	if m := srv.hub.Metrics(); m.FloodDrops == 0 && m.Errors[codec.CodeRateLimited] == 0 {
		t.Fatal("the abusers sent at four times the frame rate and no frame was dropped")
	}
	idle, busy := medianOf(idles), medianOf(busies)
	base := max(idle, 500*time.Microsecond) // a floor, so that scheduling noise on an idle loop is no ratio
	t.Logf("bystander ping median: idle %v, under abuse %v (%.1fx the floored idle)", idle, busy, float64(busy)/float64(base))
	if soak && busy > 20*base {
		t.Fatalf("bystander ping median %v under abuse, over 20x its idle %v", busy, base)
	}
}

func medianOf(d []time.Duration) time.Duration {
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// sumField adds up the numbers after every field= in a text log.
func sumField(log, field string) int {
	total := 0
	for _, part := range strings.Split(log, field)[1:] {
		n := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		total += n
	}
	return total
}
