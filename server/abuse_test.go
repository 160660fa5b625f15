package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
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
