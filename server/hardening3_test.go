package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"parley/codec"
	"parley/server/natstest"
)

// rawWS upgrades a connection to srv's /ws and returns it without a
// reader: the test decides whether anything is read.
func rawWS(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	conn, br, _, err := ws.Dialer{Timeout: waitFor}.Dial(context.Background(), "ws://"+srv.WSAddr().String()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		ws.PutReader(br)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pingUntilClosed writes 125-byte ping frames flat out, never reading,
// until a write fails (the server closed the connection) or the deadline
// passes; it reports whether the server closed it. watch runs between
// writes.
func pingUntilClosed(conn net.Conn, watch func()) bool {
	ping := maskedFrame(ws.OpPing, true, []byte(strings.Repeat("p", 125)))
	batch := []byte{}
	for range 64 {
		batch = append(batch, ping...)
	}
	timedOut := make(chan struct{})
	timer := time.AfterFunc(waitFor, func() {
		close(timedOut)
		_ = conn.Close() // ends a write the server's back-pressure holds
	})
	defer timer.Stop()
	for {
		_, err := conn.Write(batch)
		select {
		case <-timedOut:
			return false
		default:
		}
		if err != nil {
			return true
		}
		if watch != nil {
			watch()
		}
	}
}

// TestWSPingFlood: WebSocket pings cost what frames cost. A connection
// that pings flat out before logging in is closed after a few; one that
// logged in and pings without reading is closed as a flood or a slow
// consumer, and the pongs queued for it meanwhile stay within
// --max-outbound, counted in the server's outbound memory.
func TestWSPingFlood(t *testing.T) {
	const maxOutbound = 256 << 10
	srv := startWSServer(t, func(c *Config) { c.MaxOutbound, c.FloodGrace = maxOutbound, time.Second })
	bystander := dialWS(t, srv, nil)
	bystander.login("bystander")

	t.Run("before login", func(t *testing.T) {
		if !pingUntilClosed(rawWS(t, srv), nil) {
			t.Fatal("a connection pinging flat out before login was not closed")
		}
		eventually(t, "the close counted as flood", func() bool { return srv.Stats().Closes[codec.ReasonFlood] >= 1 })
	})
	t.Run("logged in, never reading", func(t *testing.T) {
		conn := rawWS(t, srv)
		if _, err := conn.Write(maskedFrame(ws.OpText, true, []byte(`{"type":"login","nick":"pinger"}`))); err != nil {
			t.Fatal(err)
		}
		var peak int64
		closed := pingUntilClosed(conn, func() { peak = max(peak, srv.Stats().OutboundBytes) })
		if !closed {
			t.Fatalf("a logged-in connection pinging without reading was not closed (outbound %d bytes)", srv.Stats().OutboundBytes)
		}
		if peak > 2*maxOutbound {
			t.Fatalf("the pongs queued for a non-reader took %d bytes, over twice --max-outbound %d", peak, maxOutbound)
		}
		eventually(t, "the pinger's close counted as flood or slow_consumer", func() bool {
			closes := srv.Stats().Closes
			return closes[codec.ReasonFlood]+closes[codec.ReasonSlowConsumer] >= 2
		})
	})
	bystander.send(&codec.Ping{})
	bystander.until("pong", func(ev codec.Event) bool { return ev.Type == codec.TypePong })
}

// TestWSMessageFrameTimeout: a WebSocket message begun and not finished
// is closed after --frame-timeout (bye timeout after login), not left to
// the idle timeout.
func TestWSMessageFrameTimeout(t *testing.T) {
	srv := startWSServer(t, func(c *Config) {
		c.FrameTimeout = 300 * time.Millisecond
		c.IdleTimeout = time.Minute
		c.Heartbeat = time.Minute
	})
	c := dialWS(t, srv, nil)
	c.login("slow")
	whole := maskedFrame(ws.OpText, true, []byte(`{"type":"say","body":"never finished"}`))
	c.sendRaw(whole[:len(whole)-5])
	c.untilBye(codec.ReasonTimeout)

	// A message in two frames, the second never sent, is begun too.
	d := dialWS(t, srv, nil)
	d.login("slower")
	d.sendRaw(maskedFrame(ws.OpText, false, []byte(`{"type":"say",`)))
	d.untilBye(codec.ReasonTimeout) // after the lobby's left for "slow", if it comes late
}

// TestRoomsAndHistoryBounded: many connections each create rooms, say one
// message in each and drop. The history stays within --history-bytes
// (the oldest messages of all go first, a room's last one too), rooms
// without members and history die, --max-rooms caps the rooms kept, and a
// session creating rooms faster than its budget is refused.
func TestRoomsAndHistoryBounded(t *testing.T) {
	const historyBytes = 64 << 10
	srv := startServer(t, Config{HistoryBytes: historyBytes, MaxRooms: 100, RateLimit: -1, JoinRate: -1})
	body := strings.Repeat("x", 1000)
	for i := range 40 {
		c := loggedIn(t, srv, fmt.Sprint("creator", i))
		for j := range 8 {
			room := fmt.Sprintf("r%d-%d", i, j)
			c.send(&codec.Join{Room: room, Ref: "j"})
			if ev := c.until("join answer", func(ev codec.Event) bool { return ev.Ref == "j" }); ev.Type != codec.TypeAck {
				if ev.Code != codec.CodeTooManyRooms {
					t.Fatalf("join %s: %+v", room, ev)
				}
				continue
			}
			c.send(&codec.Say{Room: room, Body: body, Ref: "s"})
			c.untilAck("s")
			if st := srv.Stats(); st.HistoryBytes > historyBytes+2*(2<<10) || st.Rooms > 100 {
				t.Fatalf("history %d bytes (cap %d), %d rooms (cap 100)", st.HistoryBytes, historyBytes, st.Rooms)
			}
		}
		c.conn.Close()
	}
	eventually(t, "the creators gone", func() bool { return srv.Stats().Online == 0 })
	st := srv.Stats()
	// 64 KiB holds about 56 messages of 1 KB: the rooms that lost theirs died.
	if st.Rooms > 70 || st.HistoryBytes > historyBytes {
		t.Fatalf("after the creators left: %d rooms, %d history bytes (cap %d)", st.Rooms, st.HistoryBytes, historyBytes)
	}

	// One session may create 16 rooms at once, then 0.2 a second.
	c := loggedIn(t, startServer(t, Config{RateLimit: -1, JoinRate: -1}), "eager")
	limited := 0
	for j := range 20 {
		c.send(&codec.Join{Room: fmt.Sprint("new", j), Ref: "j"})
		if ev := c.until("join answer", func(ev codec.Event) bool { return ev.Ref == "j" }); ev.Code == codec.CodeRateLimited {
			limited++
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 20 rooms created at once refused, want at least 3 (burst 16)", limited)
	}
}

// readFor counts the bytes c receives until it stops for quiet.
func readFor(c net.Conn, quiet time.Duration) int {
	buf := make([]byte, 64<<10)
	n := 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		m, err := c.Read(buf)
		n += m
		if err != nil {
			return n
		}
	}
}

// TestResumeStormCharged: fresh logins that resume the lobby from seq 1,
// over 400 KB of history, are told recovered false instead of each being
// sent the whole history: a replay costs the session's flood budget by
// its bytes.
func TestResumeStormCharged(t *testing.T) {
	srv := startServer(t, Config{RateLimit: 50})
	talker := loggedIn(t, srv, "talker")
	body := strings.Repeat("y", 4000)
	for range 100 {
		talker.send(&codec.Say{Body: body, Ref: "s"})
		talker.untilAck("s")
		time.Sleep(20 * time.Millisecond) // within the talker's own rate
	}
	epoch := dial(t, srv).login("probe").Epoch
	for i := range 20 {
		conn, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		one := uint64(1)
		_, _ = conn.Write(codec.MustEncode(&codec.Login{Nick: fmt.Sprint("storm", i), Since: &one, Epoch: epoch}))
		if n := readFor(conn, 200*time.Millisecond); n > 250<<10 {
			t.Fatalf("a one-frame login was sent %d bytes of replay", n)
		}
		conn.Close()
	}
	if m := srv.hub.Metrics(); m.ReplaysShed == 0 {
		t.Fatal("no replay was refused for its cost")
	}
}

// TestHistoryAndRefreshCharged: paging history flat out, or refreshing,
// runs out of the flood budget (rate_limited) instead of costing the
// server a page of CPU and bytes for one frame each.
func TestHistoryAndRefreshCharged(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", nil)
	c := loggedIn(t, srv, "pager")
	body := strings.Repeat("z", 600)
	for range 100 {
		c.send(&codec.Say{Body: body, Ref: "s"})
		c.untilAck("s")
		time.Sleep(25 * time.Millisecond) // within the default rate
	}
	time.Sleep(2 * time.Second) // the budget refills
	for range 30 {
		c.send(&codec.History{Limit: intp(100), Ref: "h"})
	}
	pages, limited := answers(c, "h", codec.TypeHistory)
	// A page of 100 × 600 B costs about 32 frames of a 100-frame burst.
	if limited == 0 || pages > 10 {
		t.Fatalf("30 pages of 60 KB asked at once: %d sent, %d refused", pages, limited)
	}

	// A refresh checks a signature: 10 frames each.
	acct, _ := tokenLogin(t, srv, s.token("u1", "amy", time.Hour))
	token := s.token("u1", "amy", time.Hour)
	for range 30 {
		acct.send(&codec.Refresh{Token: token, Ref: "r"})
	}
	refreshed, limited := answers(acct, "r", codec.TypeAck)
	if limited == 0 || refreshed > 12 {
		t.Fatalf("30 refreshes at once: %d done, %d refused", refreshed, limited)
	}
}

// answers counts, for a second after the last frame, the frames of type
// typ answering ref and the rate_limited errors (with ref, or without one
// for frames flood control dropped unread).
func answers(c *tclient, ref, typ string) (ok, limited int) {
	for {
		select {
		case ev := <-c.events:
			switch {
			case ev.Type == typ && ev.Ref == ref:
				ok++
			case ev.Code == codec.CodeRateLimited:
				limited++
			}
		case <-time.After(time.Second):
			return ok, limited
		}
	}
}

// pingFrames is n protocol pings in one buffer, to write at once.
func pingFrames(n int) []byte {
	var b []byte
	for range n {
		b = append(b, codec.MustEncode(&codec.Ping{})...)
	}
	return b
}

// TestFloodInBursts: a client that floods in bursts with pauses just over
// a second is closed as flood, as a continuous flood is. Each burst is
// only 2 frames over the budget (0.2 s at the rate), so what closes it is
// the time between bursts adding up, not the frames of one burst.
func TestFloodInBursts(t *testing.T) {
	srv := startServer(t, Config{RateLimit: 10, RateBurst: 10, FloodGrace: 3 * time.Second})
	c := loggedIn(t, srv, "burster")
	burst := pingFrames(12)
	for i := range 8 {
		_, _ = c.conn.Write(burst)
		select {
		case <-c.done:
		case <-time.After(1100 * time.Millisecond):
			continue
		}
		c.untilBye(codec.ReasonFlood)
		if i > 5 {
			t.Fatalf("closed only after %d bursts", i+1)
		}
		return
	}
	t.Fatal("8 bursts over the limit, 1.1 s apart, and not closed as flood")
}

// TestClusterWhoAfterDrop: a user who dropped without quit is held for
// its resume token, and listed by who on no node meanwhile.
func TestClusterWhoAfterDrop(t *testing.T) {
	// Polling who costs 10 frames a time: no flood control here.
	nodes := startClusterWith(t, natstest.Start(t), 2, func(c *Config) { c.RateLimit = -1 })
	gone := loggedIn(t, nodes[0], "gone")
	asker := loggedIn(t, nodes[1], "asker")
	listed := func() bool {
		asker.send(&codec.Who{Ref: "w"})
		ev := asker.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers })
		for _, n := range ev.Nicks {
			if n == "gone" {
				return true
			}
		}
		return false
	}
	eventually(t, "gone listed on the other node", listed)
	gone.conn.Close()
	eventually(t, "gone held on its node", func() bool { return nodes[0].Stats().HeldNicks == 1 })
	eventually(t, "gone no longer listed on the other node", func() bool { return !listed() })
	// Still held: nobody else takes the nick meanwhile.
	thief := dial(t, nodes[1])
	thief.send(&codec.Login{Nick: "gone"})
	thief.expectError(codec.CodeNickTaken)
}

// TestClusterDropNoticesArrive: a user in the lobby and a room drops
// without quit, nine times over; a member of both on a third node gets
// left disconnect from each room every time.
func TestClusterDropNoticesArrive(t *testing.T) {
	nodes := startClusterWith(t, natstest.Start(t), 3, func(c *Config) { c.RateLimit, c.JoinRate = -1, -1 })
	watcher := loggedIn(t, nodes[2], "watcher")
	watcher.joinRoom("r")
	for i := range 9 {
		nick := fmt.Sprint("dropper", i)
		d := loggedIn(t, nodes[i%2], nick)
		d.joinRoom("r")
		joined := map[string]bool{}
		for len(joined) < 2 {
			if ev := watcher.next(); ev.Type == codec.TypeJoined && ev.Nick == nick {
				joined[ev.Room] = true
			}
		}
		d.conn.Close()
		left := map[string]bool{}
		for len(left) < 2 {
			ev, err := watcher.wait(func(ev codec.Event) bool { return ev.Type == codec.TypeLeft && ev.Nick == nick })
			if err != nil {
				t.Fatalf("drop %d: the watcher got left for %v only: %v", i, left, err)
			}
			if ev.Reason != codec.ReasonDisconnect {
				t.Fatalf("drop %d: left %s with reason %s", i, ev.Room, ev.Reason)
			}
			left[ev.Room] = true
		}
	}
}

// TestFloodFarOverTheLimit: frames dropped together count as the time
// they would take at the rate limit, so one write of 1,000 frames at 50 a
// second (bursts of 100) is 18 s over the limit and closed as flood at
// once, without waiting for five seconds of it.
func TestFloodFarOverTheLimit(t *testing.T) {
	srv := startServer(t, Config{RateLimit: 50, RateBurst: 100, FloodGrace: 5 * time.Second})
	c := loggedIn(t, srv, "writer")
	c.sendRaw(pingFrames(1000))
	c.untilBye(codec.ReasonFlood)
}

// TestShutdownClosesIdleHTTP: the web port's kept-alive HTTP connections
// count against the connection limits, so a shutdown closes those that
// are idle rather than wait out their idle timeout past its grace.
func TestShutdownClosesIdleHTTP(t *testing.T) {
	srv, err := New(Config{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background()) }()
	<-srv.Ready()
	c, err := net.Dial("tcp", srv.WSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", srv.WSAddr())
	if n := readFor(c, 300*time.Millisecond); n == 0 {
		t.Fatal("no answer to GET /")
	}
	// Kept alive and idle now, for up to the 5 s idle timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an idle HTTP connection: %v", err)
	}
}
