package server

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"parley/codec"
)

// TestBehindMemberGetsGapsNotDisconnect: in a room of 1,000 members, one
// stops reading while 600 messages of 2 KB go by. It is not disconnected:
// past its budget its room messages are dropped, it then gets a gap notice
// for them, and fills the gap with history, so it has every message once;
// an observer receives every one in order, and the outbound memory stays
// within the members' room budgets throughout.
func TestBehindMemberGetsGapsNotDisconnect(t *testing.T) {
	const (
		maxOutbound = 256 << 10
		members     = 1000
		msgs        = 600
	)
	srv := startServer(t, Config{MaxOutbound: maxOutbound, RateLimit: -1, JoinRate: -1, PresenceLimit: 10})
	join := codec.MustEncode(&codec.Join{Room: "big"})
	for i := range members - 3 {
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_, _ = nc.Write(append(codec.MustEncode(&codec.Login{Nick: fmt.Sprintf("m%d", i)}), join...))
		go func() { _, _ = io.Copy(io.Discard, nc) }()
	}
	sender, observer := loggedIn(t, srv, "sender"), loggedIn(t, srv, "observer")
	sender.joinRoom("big")
	observer.joinRoom("big")
	slow, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// Small, but several loopback MSS (64 KiB): near one, TCP's window
	// updates stall once reading resumes.
	_ = slow.(*net.TCPConn).SetReadBuffer(256 << 10)
	_, _ = slow.Write(append(codec.MustEncode(&codec.Login{Nick: "slow"}), codec.MustEncode(&codec.Join{Room: "big", Ref: "j"})...))
	eventually(t, "everyone in the room", func() bool {
		observer.send(&codec.Who{Room: "big", Ref: "w"})
		return observer.until("who", func(ev codec.Event) bool { return ev.Ref == "w" }).Count == members
	})

	body := strings.Repeat("x", 2000)
	var peak int64
	// At most 32 messages (67 KB) the observer has not read: under half
	// its room budget however late it reads, so that it keeps up by the
	// budget's own measure and must get every message. With 64 (134 KB)
	// a drain of them all was already past the budget, and a loaded
	// machine made a healthy observer a member behind.
	inflight := make(chan struct{}, 32)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 1; i <= msgs; i++ {
			inflight <- struct{}{}
			sender.send(&codec.Say{Room: "big", Body: body})
			if i%20 == 0 {
				peak = max(peak, srv.Stats().OutboundBytes)
			}
		}
	}()
	for seq := uint64(1); seq <= msgs; {
		ev := observer.next()
		if ev.Type == codec.TypeMsg && ev.Room == "big" {
			if ev.Seq != seq {
				t.Fatalf("observer got seq %d, want %d", ev.Seq, seq)
			}
			seq++
			<-inflight
		}
	}
	<-sent

	// The slow member reads again: messages, a gap, then it pages history.
	r := codec.NewReader(slow, 0)
	seen := map[uint64]int{}
	var gaps []codec.Event
	read := func() codec.Event {
		_ = slow.SetReadDeadline(time.Now().Add(waitFor))
		body, err := r.Next()
		if err != nil {
			st := srv.Stats()
			t.Fatalf("slow member: %v (seen %d, gaps %v; server: outbound %d bytes, %d gaps sent)", err, len(seen), gaps, st.OutboundBytes, st.Gaps)
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	var lastLive uint64 // messages and gaps come in seq order
	for len(seen)+gapLen(gaps) < msgs {
		switch ev := read(); ev.Type {
		case codec.TypeMsg:
			if ev.Room == "big" {
				if ev.Seq <= lastLive {
					t.Fatalf("seq %d after %d", ev.Seq, lastLive)
				}
				seen[ev.Seq]++
				lastLive = ev.Seq
			}
		case codec.TypeGap:
			if ev.First <= lastLive {
				t.Fatalf("gap %d-%d after seq %d", ev.First, ev.Last, lastLive)
			}
			gaps = append(gaps, ev)
			lastLive = ev.Last
		case codec.TypeBye:
			t.Fatalf("the slow member was closed: %s", ev.Reason)
		case codec.TypePing:
			_, _ = slow.Write(codec.MustEncode(&codec.Pong{}))
		}
	}
	if len(gaps) == 0 {
		t.Fatal("the slow member missed nothing: it never fell behind")
	}
	for _, g := range gaps {
		for since := g.First - 1; since < g.Last; {
			_, _ = slow.Write(codec.MustEncode(&codec.History{Room: "big", Since: u64(since), Limit: intp(100), Ref: "h"}))
			var page codec.Event
			for page = read(); page.Ref != "h"; page = read() {
			}
			if len(page.Msgs) == 0 {
				t.Fatalf("history after %d is empty", since)
			}
			for _, m := range page.Msgs {
				if m.Seq <= g.Last {
					seen[m.Seq]++
				}
				since = m.Seq
			}
		}
	}
	for seq := uint64(1); seq <= msgs; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d seen %d times (gaps %v)", seq, seen[seq], gaps)
		}
	}
	t.Logf("the slow member got %d gap notice(s) for %d messages, filled from history; peak outbound memory %d KiB (max-outbound %d KiB)",
		len(gaps), gapLen(gaps), peak>>10, maxOutbound>>10)
	// Each member holds at most the room budget (half of max-outbound)
	// and the frame that crossed it; without the budget the slow member
	// alone would have held what its socket refused of 1.2 MB.
	if bound := int64(members * (maxOutbound/2 + 2*len(body))); peak > bound {
		t.Fatalf("outbound memory reached %d bytes, over %d", peak, bound)
	}
}

func gapLen(gaps []codec.Event) int {
	n := 0
	for _, g := range gaps {
		n += int(g.Last - g.First + 1)
	}
	return n
}
