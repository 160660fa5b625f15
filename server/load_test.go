package server

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/internal/poll"
)

// TestSlowConsumer: one member stops reading while another sends thousands
// of room messages. Past half of max-outbound the slow one's room messages
// are dropped, and as it never reads again the write deadline closes it
// as slow_consumer; every other member receives every message in order,
// and the outbound memory stays bounded.
func TestSlowConsumer(t *testing.T) {
	const maxOutbound = 1 << 20
	srv := startServer(t, Config{MaxOutbound: maxOutbound, RateLimit: -1, WriteDeadline: time.Second})
	sender, fast := loggedIn(t, srv, "sender"), loggedIn(t, srv, "fast")
	sender.expect(codec.TypeJoined)

	raw, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := raw.Write(codec.MustEncode(&codec.Login{Nick: "slow"})); err != nil {
		t.Fatal(err)
	}
	sender.expect(codec.TypeJoined)
	fast.expect(codec.TypeJoined)

	body := strings.Repeat("x", 4000)
	// More than the kernel buffers of the slow socket hold (tcp_wmem max
	// is 4 MiB here) plus max-outbound.
	const n = 6000
	var peak int64
	done := make(chan struct{})
	// At most 32 messages in flight to the fast member, so it keeps up
	// whatever the speed of this process; the slow one never reads. The
	// hub counts a queued message of 4 KB as the 8 KiB buffer gnet keeps
	// it in (sliceMem): 32 of them stay well under the room budget (half
	// of max-outbound, 512 KiB), where 64 came to its edge and the fast
	// member, behind, got a gap.
	inflight := make(chan struct{}, 32)
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			inflight <- struct{}{}
			sender.send(&codec.Say{Body: body})
			if i%50 == 0 {
				peak = max(peak, srv.Stats().OutboundBytes)
			}
		}
	}()
	sawSlowLeave := false
	for seq := uint64(1); seq <= n; {
		ev := fast.next()
		switch ev.Type {
		case codec.TypeMsg:
			if ev.Seq != seq {
				t.Fatalf("fast member got seq %d, want %d", ev.Seq, seq)
			}
			seq++
			<-inflight
		case codec.TypeLeft:
			if ev.Nick != "slow" || ev.Reason != codec.ReasonSlowConsumer {
				t.Fatalf("left = %+v", ev)
			}
			sawSlowLeave = true
		default:
			t.Fatalf("unexpected %+v", ev)
		}
	}
	<-done
	if !sawSlowLeave {
		ev := fast.expect(codec.TypeLeft)
		if ev.Nick != "slow" || ev.Reason != codec.ReasonSlowConsumer {
			t.Fatalf("left = %+v", ev)
		}
	}
	// The slow member may hold max-outbound and the fast one what is in
	// flight to it; without the limit the slow member alone would hold
	// ~20 MiB.
	t.Logf("peak outbound memory during the flood: %d KiB (max-outbound %d KiB)", peak>>10, maxOutbound>>10)
	if peak > 2*maxOutbound {
		t.Fatalf("outbound memory reached %d bytes, over twice max-outbound", peak)
	}
	eventually(t, "the slow session to be gone", func() bool { return srv.Stats().Online == 2 })
	eventually(t, "the queues to drain", func() bool { return srv.Stats().OutboundBytes == 0 })
}

// TestChurnSoak runs clients that connect, log in, join and leave rooms,
// chat and disconnect, cleanly or abruptly, at random, while observers stay
// in their rooms: 200 clients for 2s in make test, 2000 for 60s in make
// soak. Afterwards the tables are empty, the open files and goroutines are
// back to their baseline, the live heap is near it, and each observer saw
// every message of its room in seq order with no gap.
func TestChurnSoak(t *testing.T) {
	clients, length := pick(200, 2000), pick(2*time.Second, 60*time.Second)
	// Half the clients drop without quit, and each leaves its nick held;
	// each room keeps its history after its members left: a short hold and
	// a short history let the end state settle without them.
	srv := startServer(t, Config{NickHold: time.Second, HistoryAge: time.Second})
	warmUp(t, srv)
	baseFDs, baseGoroutines, baseHeap := countFDs(t), ownGoroutines(), liveHeap()
	rooms := []string{"r0", "r1", "r2", "r3"}
	observers := make([]*tclient, len(rooms))
	for i, room := range rooms {
		observers[i] = loggedIn(t, srv, "obs"+room)
		observers[i].send(&codec.Join{Room: room, Ref: "j"})
		observers[i].untilAck("j")
	}
	results := make([]chan []uint64, len(rooms))
	stopObs := make(chan struct{})
	for i := range observers {
		results[i] = make(chan []uint64, 1)
		go observe(observers[i], rooms[i], stopObs, results[i])
	}

	var wg sync.WaitGroup
	deadline := time.Now().Add(length)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			churn(t, srv, w, rooms, deadline)
		}(w)
	}
	wg.Wait()

	// A final message in each room marks the end for its observer. The
	// churners' last connections may still wait in the listen backlog
	// (under the race detector the server accepts more slowly than 200
	// dialers connect): the closer's login waits behind them, for as long
	// as the server keeps working through them.
	closer := dial(t, srv)
	closer.send(&codec.Login{Nick: "closer"})
	awaitWhileBusy(t, closer, srv, codec.TypeWelcome)
	finals := make([]uint64, len(rooms))
	for i, room := range rooms {
		closer.send(&codec.Join{Room: room, Ref: "j"})
		closer.send(&codec.Say{Room: room, Body: "end", Ref: "end"})
		for {
			ev := closer.next()
			if ev.Type == codec.TypeAck && ev.Ref == "end" {
				finals[i] = ev.Seq
				break
			}
		}
	}
	for i := range rooms {
		seen := <-results[i]
		if uint64(len(seen)) != finals[i] {
			t.Fatalf("observer of %s saw %d messages, the room accepted %d", rooms[i], len(seen), finals[i])
		}
		for k, seq := range seen {
			if seq != uint64(k+1) {
				t.Fatalf("observer of %s: message %d has seq %d", rooms[i], k, seq)
			}
		}
		if finals[i] < 10 {
			t.Fatalf("room %s got only %d messages: the churn did not chat", rooms[i], finals[i])
		}
	}
	close(stopObs)
	for _, c := range append(observers, closer) {
		c.send(&codec.Quit{})
		c.untilBye(codec.ReasonQuit)
		c.conn.Close()
	}
	// End states settle, they are not timed: allow twice the usual wait, and
	// say what was left if they do not.
	settled := func() bool {
		st := srv.Stats()
		return st.Conns == 0 && st.Nicks == 0 && st.Rooms == 1 && st.Online == 0 && st.HeldNicks == 0 &&
			countFDs(t) <= baseFDs && ownGoroutines() <= baseGoroutines
	}
	stacks := func() {
		if t.Failed() {
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	}
	t.Cleanup(stacks)
	poll.Until(t, 2*waitFor, "the server to settle after the churn", func() error {
		if settled() {
			return nil
		}
		return fmt.Errorf("stats %+v, open files %d (baseline %d), goroutines %d (baseline %d)",
			srv.Stats(), countFDs(t), baseFDs, ownGoroutines(), baseGoroutines)
	})
	heap := liveHeap()
	t.Logf("churn: %d clients for %v; messages per room %v; closes %v; live heap %d KiB before, %d KiB after",
		clients, length, finals, srv.Stats().Closes, baseHeap>>10, heap>>10)
	if heap > baseHeap+8<<20 {
		t.Fatalf("live heap %d bytes after the churn, %d before", heap, baseHeap)
	}
}

// awaitWhileBusy waits for c's next frame of type typ (skipping others,
// failing on an error or bye), for as long as srv keeps working: it fails
// only once the server has neither received nor sent a frame for waitFor.
// On a loaded machine a busy server may answer late; a stuck one never
// does.
func awaitWhileBusy(t testing.TB, c *tclient, srv *Server, typ string) codec.Event {
	t.Helper()
	work := func() uint64 { m := srv.hub.Metrics(); return m.FramesIn + m.FramesOut }
	last, since := work(), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev := <-c.events:
			if ev.Type == typ {
				return ev
			}
			if ev.Type == codec.TypeError || ev.Type == codec.TypeBye {
				t.Fatalf("waiting for %s: got %+v", typ, ev)
			}
		case <-c.done:
			t.Fatalf("waiting for %s: connection closed: %v", typ, c.err)
		case <-tick.C:
			if n := work(); n != last {
				last, since = n, time.Now()
			} else if time.Since(since) > waitFor {
				t.Fatalf("no %s, and the server did no work for %v", typ, waitFor)
			}
		}
	}
}

// warmUp runs one session through the server and waits until it is gone,
// so that what starts lazily on the first connection (gnet's worker pool
// for registering connections, the loops' buffers) is in a baseline.
func warmUp(t *testing.T, srv *Server) {
	c := loggedIn(t, srv, "warmup")
	c.joinRoom("warmup")
	c.send(&codec.Quit{})
	c.untilBye(codec.ReasonQuit)
	c.conn.Close()
	eventually(t, "the warm-up session to be gone", func() bool { return srv.Stats().Conns == 0 && srv.Stats().Rooms == 1 })
}

// ownGoroutines counts this process's goroutines but the idle workers of
// the pool gnet registers connections with: their number follows the
// recent rate of connections (they expire after a while), not a leak.
func ownGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "panjf2000/ants") {
			n++
		}
	}
	return n
}

// countFDs counts this process's open files.
func countFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// observe collects the seqs of room's messages until the message "end",
// answering pings so a long run does not time it out.
func observe(c *tclient, room string, stop <-chan struct{}, out chan<- []uint64) {
	var seen []uint64
	for {
		select {
		case ev := <-c.events:
			if ev.Type == codec.TypePing {
				_, _ = c.conn.Write(codec.MustEncode(&codec.Pong{}))
			}
			if ev.Type == codec.TypeMsg && ev.Room == room {
				seen = append(seen, ev.Seq)
				if ev.Body == "end" {
					out <- seen
					return
				}
			}
		case <-c.done:
			out <- seen // closed: the caller finds messages missing
			return
		case <-stop:
			out <- seen
			return
		}
	}
}

// churn is one random client: it connects, logs in, joins and leaves rooms,
// chats, and disconnects cleanly or abruptly, until the deadline.
func churn(t *testing.T, srv *Server, w int, rooms []string, deadline time.Time) {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	for gen := 0; time.Now().Before(deadline); gen++ {
		conn, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		go discard(conn)
		write := func(m codec.Message) bool {
			_, err := conn.Write(codec.MustEncode(m))
			return err == nil
		}
		write(&codec.Login{Nick: fmt.Sprintf("w%d-%d", w, gen)})
		for step := 0; step < 20 && time.Now().Before(deadline); step++ {
			room := rooms[rng.IntN(len(rooms))]
			switch rng.IntN(4) {
			case 0:
				write(&codec.Join{Room: room})
			case 1:
				write(&codec.Leave{Room: room})
			default:
				write(&codec.Say{Room: room, Body: "chatter"})
			}
			// Pace the client; the long form stays under the flood limit.
			time.Sleep(time.Duration(rng.IntN(pick(3, 50))) * time.Millisecond)
		}
		if rng.IntN(2) == 0 {
			write(&codec.Quit{})
		}
		conn.Close()
	}
}

func discard(conn net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
