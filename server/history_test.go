package server

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"parley/codec"
)

func u64(v uint64) *uint64 { return &v }

// history asks for a page and returns it.
func (c *tclient) history(req *codec.History) codec.Event {
	c.t.Helper()
	req.Ref = "h"
	c.send(req)
	return c.until("history answer", func(ev codec.Event) bool { return ev.Ref == "h" })
}

func seqsOf(evs []codec.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func span(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

// TestHistoryPages: a member pages a room's history by before and since;
// limits are checked, and only members may read.
func TestHistoryPages(t *testing.T) {
	srv := startServer(t, Config{HistoryLen: 100, RateLimit: -1})
	amy := loggedIn(t, srv, "amy")
	bob := loggedIn(t, srv, "bob")
	for i := range 120 {
		amy.send(&codec.Say{Body: fmt.Sprint(i + 1), Ref: "s"})
		amy.untilAck("s")
	}
	cases := []struct {
		name string
		req  codec.History
		want []uint64
		more bool
	}{
		{"latest", codec.History{}, span(71, 120), true},
		{"before", codec.History{Before: u64(71), Limit: intp(20)}, span(51, 70), true},
		{"before, up to the oldest kept", codec.History{Before: u64(30), Limit: intp(20)}, span(21, 29), false},
		{"before the oldest kept", codec.History{Before: u64(21)}, nil, false},
		{"since", codec.History{Since: u64(100)}, span(101, 120), false},
		{"since, limited", codec.History{Since: u64(0), Limit: intp(100)}, span(21, 120), false},
		{"since and before", codec.History{Since: u64(40), Before: u64(50), Limit: intp(5)}, span(41, 45), true},
		{"since ahead of the room", codec.History{Since: u64(500)}, nil, false},
	}
	for _, tc := range cases {
		ev := bob.history(&tc.req)
		if ev.Type != codec.TypeHistory || fmt.Sprint(seqsOf(ev.Msgs)) != fmt.Sprint(tc.want) || ev.More != tc.more || ev.Epoch == "" {
			t.Errorf("%s: got %s %v more=%v epoch %q; want %v more=%v", tc.name, ev.Type, seqsOf(ev.Msgs), ev.More, ev.Epoch, tc.want, tc.more)
		}
	}
	if ev := bob.history(&codec.History{Limit: intp(1)}); len(ev.Msgs) != 1 || ev.Msgs[0].Body != "120" || ev.Msgs[0].From != "amy" {
		t.Fatalf("latest message %+v", ev.Msgs)
	}
	for _, bad := range []struct {
		name string
		req  codec.History
		code codec.Code
	}{
		{"limit 0", codec.History{Limit: intp(0)}, codec.CodeBadRequest},
		{"negative limit", codec.History{Limit: intp(-1)}, codec.CodeBadRequest},
		{"huge limit", codec.History{Limit: intp(1 << 30)}, codec.CodeBadRequest},
		{"not a member", codec.History{Room: "elsewhere"}, codec.CodeNotInRoom},
		{"bad room", codec.History{Room: "a b"}, codec.CodeBadRoom},
	} {
		if ev := bob.history(&bad.req); ev.Type != codec.TypeError || ev.Code != bad.code {
			t.Errorf("%s: got %+v, want %s", bad.name, ev, bad.code)
		}
	}
	bob.sendRaw(rawFrame(`{"type":"history","before":-3,"ref":"h"}`))
	if ev := bob.until("answer", func(ev codec.Event) bool { return ev.Ref == "h" }); ev.Code != codec.CodeBadRequest {
		t.Fatalf("a negative before: %+v", ev)
	}
}

func intp(v int) *int { return &v }

// TestRoomKeepsItsSequenceWhenEmpty: on one node, a room whose members all
// left keeps its history and its seq; a resume with its epoch replays.
func TestRoomKeepsItsSequenceWhenEmpty(t *testing.T) {
	srv := startServer(t, Config{})
	amy := loggedIn(t, srv, "amy")
	amy.send(&codec.Join{Room: "r", Ref: "j"})
	epoch := amy.untilAck("j").Epoch
	for i := range 3 {
		amy.send(&codec.Say{Room: "r", Body: fmt.Sprint(i), Ref: "s"})
		amy.untilAck("s")
	}
	amy.send(&codec.Leave{Room: "r", Ref: "l"})
	amy.untilAck("l")
	amy.send(&codec.Join{Room: "r", Since: u64(1), Epoch: epoch, Ref: "j2"})
	if ack := amy.untilAck("j2"); ack.Seq != 3 || ack.Epoch != epoch {
		t.Fatalf("rejoin ack %+v, want seq 3 and epoch %q", ack, epoch)
	}
	for _, want := range []uint64{2, 3} {
		if ev := amy.next(); ev.Type != codec.TypeMsg || ev.Seq != want {
			t.Fatalf("replay: %+v, want seq %d", ev, want)
		}
	}
	if ev := amy.next(); ev.Type != codec.TypeRecover || !ev.Recovered || ev.Room != "r" {
		t.Fatalf("after the replay: %+v", ev)
	}
	amy.send(&codec.Say{Room: "r", Body: "next", Ref: "s4"})
	if ack := amy.untilAck("s4"); ack.Seq != 4 {
		t.Fatalf("seq after the room emptied: %d, want 4", ack.Seq)
	}
}

// TestResumeRefusals: a resume the server cannot fill replays nothing and
// says recovered false: a wrong epoch, a seq ahead of the room, a gap
// older than the history or larger than the replay limit.
func TestResumeRefusals(t *testing.T) {
	srv := startServer(t, Config{HistoryLen: 10, ReplayLimit: 5, RateLimit: -1})
	amy := loggedIn(t, srv, "amy")
	amy.send(&codec.Join{Room: "r", Ref: "j"})
	epoch := amy.untilAck("j").Epoch
	for i := range 20 {
		amy.send(&codec.Say{Room: "r", Body: fmt.Sprint(i), Ref: "s"})
		amy.untilAck("s")
	}
	for i, rs := range []struct {
		since uint64
		epoch string
		ok    bool
	}{
		{18, "other", false}, {25, epoch, false}, {5, epoch, false}, {12, epoch, false}, {16, epoch, true}, {20, epoch, true},
	} {
		bob := loggedIn(t, srv, fmt.Sprintf("bob%d", i))
		bob.send(&codec.Join{Room: "r", Since: u64(rs.since), Epoch: rs.epoch, Ref: "j"})
		bob.untilAck("j")
		var got []uint64
		for {
			ev := bob.next()
			if ev.Type == codec.TypeRecover {
				if ev.Recovered != rs.ok {
					t.Errorf("since %d epoch %q: recovered %v, want %v", rs.since, rs.epoch, ev.Recovered, rs.ok)
				}
				break
			}
			got = append(got, ev.Seq)
		}
		want := []uint64(nil)
		if rs.ok {
			want = span(rs.since+1, 20)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("since %d epoch %q: replayed %v, want %v", rs.since, rs.epoch, got, want)
		}
	}
}

// TestResumeUnderLoad drops a member's connection (no quit) at random
// moments while two others chat at a steady rate, 20 times; each time it
// logs in again with its resume token and where it was: what it saw before
// and after, together, is exactly the room's messages, none twice.
func TestResumeUnderLoad(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1})
	stop := make(chan struct{})
	defer close(stop)
	for i := range 2 {
		c := loggedIn(t, srv, fmt.Sprintf("talker%d", i))
		go func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.conn.Write(codec.MustEncode(&codec.Say{Body: fmt.Sprint(j)})); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	seen := map[uint64]int{}
	var last uint64
	var epoch, token string
	c := dial(t, srv)
	c.send(&codec.Login{Nick: "roamer"})
	w := c.expect(codec.TypeWelcome)
	epoch, token, last = w.Epoch, w.Resume, w.Seq
	first := last + 1
	for round := range 20 {
		deadline := time.Now().Add(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		for time.Now().Before(deadline) {
			ev := c.next()
			if ev.Type == codec.TypeMsg && ev.Seq > 0 {
				seen[ev.Seq]++
				last = ev.Seq
			}
		}
		c.conn.Close() // dropped, without quit
		var w codec.Event
		// Until the server has seen the drop, the nick is still online.
		for try := 0; w.Type != codec.TypeWelcome; try++ {
			c = dial(t, srv)
			c.send(&codec.Login{Nick: "roamer", Resume: token, Since: u64(last), Epoch: epoch})
			w = c.until(fmt.Sprintf("welcome %d", round), func(ev codec.Event) bool { return ev.Type == codec.TypeWelcome || ev.Type == codec.TypeError })
			if w.Type == codec.TypeError && (w.Code != codec.CodeNickTaken || try == 500) {
				t.Fatalf("round %d: %+v", round, w)
			}
			if w.Type == codec.TypeError {
				c.conn.Close()
				time.Sleep(5 * time.Millisecond)
			}
		}
		if w.Epoch != epoch {
			t.Fatalf("round %d: epoch %q, was %q", round, w.Epoch, epoch)
		}
		token = w.Resume
		for {
			ev := c.next()
			if ev.Type == codec.TypeRecover {
				if !ev.Recovered {
					t.Fatalf("round %d: not recovered from seq %d", round, last)
				}
				break
			}
			if ev.Type == codec.TypeMsg && ev.Seq > 0 {
				seen[ev.Seq]++
				last = ev.Seq
			}
		}
	}
	for seq := first; seq <= last; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d seen %d times (from %d to %d)", seq, seen[seq], first, last)
		}
	}
	if len(seen) != int(last-first+1) {
		t.Fatalf("saw %d seqs between %d and %d", len(seen), first, last)
	}
	t.Logf("%d messages across 20 reconnections, each once", len(seen))
}
