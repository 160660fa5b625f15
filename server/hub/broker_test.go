package hub

import (
	"strings"
	"sync"
	"testing"

	"parley/codec"
	"parley/server/broker"
)

// fakeBroker is a broker whose other nodes the test plays: every call is
// recorded, and the calls that wait for other nodes keep their callbacks
// for the test to complete. Room messages are sequenced here only for the
// rooms the test owns through the hub's Handler.
type fakeBroker struct {
	h broker.Handler

	mu         sync.Mutex
	owned      map[string]bool
	follows    map[string]func([]broker.User, uint64, error)
	unfollowed []string
	claims     map[string]func(error)
	released   []string
	dms        []func(error)
	forwarded  []forwardedSay
	published  []uint64
	storeLater bool // Append answers not stored: the test delivers
	joined     []string
}

type forwardedSay struct {
	m   broker.Message
	r   broker.Replier
	ref string
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{owned: map[string]bool{}, follows: map[string]func([]broker.User, uint64, error){}, claims: map[string]func(error){}}
}

func (f *fakeBroker) Start(h broker.Handler) error { f.h = h; return nil }
func (f *fakeBroker) Stop()                        {}
func (f *fakeBroker) Stats() *broker.Stats         { return &broker.Stats{Node: "fake"} }

// ClaimNick succeeds at once, except for nicks the test claims slowly.
func (f *fakeBroker) ClaimNick(c broker.NickClaim, done func(error)) {
	if key := c.Key; key == "slow" {
		f.mu.Lock()
		f.claims[key] = done
		f.mu.Unlock()
		return
	}
	done(nil)
}
func (f *fakeBroker) NickSessions(string, int) {}
func (f *fakeBroker) Elsewhere(string) int     { return 0 }
func (f *fakeBroker) ReleaseNick(key string, _ string) {
	f.mu.Lock()
	f.released = append(f.released, key)
	f.mu.Unlock()
}
func (f *fakeBroker) Users(string, int) ([]broker.User, bool, int) { return nil, false, 0 }

// Follow completes at once for the lobby and waits for the test otherwise.
func (f *fakeBroker) Follow(room string, done func([]broker.User, uint64, error)) {
	if room == codec.Lobby {
		done(nil, 0, nil)
		return
	}
	f.mu.Lock()
	f.follows[room] = done
	f.mu.Unlock()
}
func (f *fakeBroker) Unfollow(room string) {
	f.mu.Lock()
	f.unfollowed = append(f.unfollowed, room)
	f.mu.Unlock()
}
func (f *fakeBroker) Say(m broker.Message, r broker.Replier, ref string) (uint64, bool, error) {
	f.mu.Lock()
	owned := f.owned[m.Room]
	if !owned {
		f.forwarded = append(f.forwarded, forwardedSay{m, r, ref})
	}
	f.mu.Unlock()
	if owned {
		seq, err := f.h.Sequence(m)
		return seq, false, err
	}
	return 0, true, nil
}
func (f *fakeBroker) Append(_ broker.Message, seq uint64, _ []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, seq)
	return !f.storeLater
}
func (f *fakeBroker) Joined(room string, u broker.User) {
	f.mu.Lock()
	f.joined = append(f.joined, u.Nick+"@"+room)
	f.mu.Unlock()
}
func (f *fakeBroker) Left(string, string, string, codec.Reason) {}
func (f *fakeBroker) SendDM(_ broker.DirectMessage, done func(error)) {
	f.mu.Lock()
	f.dms = append(f.dms, done)
	f.mu.Unlock()
}
func (f *fakeBroker) Epoch(string) string               { return "fake" }
func (f *fakeBroker) NoticeUser(string, []byte)         {}
func (f *fakeBroker) Notice(broker.RoomNotice)          {}
func (f *fakeBroker) RoomCounts() []broker.RoomCount    { return nil }
func (f *fakeBroker) Lookup(string) (broker.User, bool) { return broker.User{}, false }
func (f *fakeBroker) ReadLog(_ string, _ uint64, _ int, done func([]broker.Logged, error)) {
	done(nil, nil)
}
func (f *fakeBroker) Members(_ string, done func([]broker.User)) {
	done([]broker.User{{Key: "zed", Nick: "zed", Node: "b"}})
}

// own makes the fake sequence room here, as a claim would.
func (f *fakeBroker) own(room string, last uint64) {
	f.mu.Lock()
	f.owned[room] = true
	f.mu.Unlock()
	f.h.Own(room, last)
}

// recConn keeps every frame written to it, decoded.
type recConn struct {
	mu     sync.Mutex
	events []codec.Event
}

func (c *recConn) Writev(frames [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		for len(f) > 0 {
			body, n, err := codec.Split(f, 0)
			if err != nil || n == 0 {
				panic("recConn: a partial frame")
			}
			var ev codec.Event
			if err := codec.DecodeEvent(body, &ev); err != nil {
				panic(err)
			}
			c.events = append(c.events, ev)
			f = f[n:]
		}
	}
}
func (c *recConn) Buffered() int { return 0 }
func (c *recConn) Flush()        {}
func (c *recConn) Close()        {}

// take returns the frames received since the last take, pings left out.
func (c *recConn) take() []codec.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []codec.Event
	for _, ev := range c.events {
		if ev.Type != codec.TypePing {
			out = append(out, ev)
		}
	}
	c.events = nil
	return out
}

// brokerRig is a hub on a fake broker with fake loops.
type brokerRig struct {
	t     *testing.T
	h     *Hub
	b     *fakeBroker
	loops []*fakeLoop
}

func newBrokerRig(t *testing.T) *brokerRig {
	b := newFakeBroker()
	h := New(testConfig(), b)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	return &brokerRig{t: t, h: h, b: b, loops: []*fakeLoop{{}, {}}}
}

func (r *brokerRig) settle() {
	for busy := true; busy; {
		busy = false
		for _, l := range r.loops {
			busy = l.run() || busy
		}
	}
}

// client opens a session on loop i and logs it in as nick.
func (r *brokerRig) client(i int, nick string) (*Session, *recConn) {
	conn := &recConn{}
	r.h.Reserve("fake")
	s, _ := r.h.Open(r.loops[i%2], conn, "fake")
	r.send(s, &codec.Login{Nick: nick})
	if evs := conn.take(); len(evs) == 0 || evs[0].Type != codec.TypeWelcome {
		r.t.Fatalf("%s: login answered %+v", nick, evs)
	}
	return s, conn
}

// send hands s a request as a frame, on its loop, and runs the loops.
func (r *brokerRig) send(s *Session, m codec.Message) {
	frame := codec.MustEncode(m)
	s.loop.enter()
	r.h.handleFrame(s, frame[codec.HeaderSize:])
	s.loop.leave()
	r.settle()
}

func types(evs []codec.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+":"+ev.Ref+string(ev.Code))
	}
	return out
}

// TestHubFollowsBeforeFirstJoin: a room's first joins wait for the
// broker's Follow, then enter with the members elsewhere known; the last
// local member leaving drops the room and unfollows it.
func TestHubFollowsBeforeFirstJoin(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	b, cb := r.client(1, "ben")
	ca.take()
	r.send(a, &codec.Join{Room: "r", Ref: "ja"})
	r.send(b, &codec.Join{Room: "r", Ref: "jb"})
	r.send(a, &codec.Ping{}) // held behind the join
	if evs := ca.take(); len(evs) != 0 {
		t.Fatalf("amy got %v before the follow finished", types(evs))
	}
	r.b.mu.Lock()
	done := r.b.follows["r"]
	r.b.mu.Unlock()
	if done == nil {
		t.Fatal("no Follow for room r")
	}
	done([]broker.User{{Key: "zed", Nick: "zed", Node: "b"}}, 0, nil)
	r.settle()
	if got := types(ca.take()); len(got) < 2 || got[0] != "ack:ja" || got[1] != "pong:" {
		t.Fatalf("amy got %v, want the join's ack and then the held ping's pong", got)
	}
	if got := types(cb.take()); len(got) == 0 || got[0] != "ack:jb" {
		t.Fatalf("ben got %v", got)
	}
	r.send(a, &codec.Who{Room: "r", Ref: "w"})
	if evs := ca.take(); len(evs) != 1 || evs[0].Count != 3 {
		t.Fatalf("who r = %+v, want amy, ben and zed", evs)
	}
	r.send(a, &codec.Leave{Room: "r", Ref: "la"})
	r.send(b, &codec.Leave{Room: "r", Ref: "lb"})
	if r.h.HasRoom("r") || len(r.b.unfollowed) != 1 || r.b.unfollowed[0] != "r" {
		t.Fatalf("room kept %v, unfollowed %v", r.h.HasRoom("r"), r.b.unfollowed)
	}
}

// TestHubForwardedSays: a say the broker forwards is answered when the
// broker says so, in order with what the session receives meanwhile.
func TestHubForwardedSays(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	_, cb := r.client(1, "ben")
	ca.take()
	cb.take()
	r.send(a, &codec.Say{Body: "one", Ref: "1"})
	r.send(a, &codec.Say{Body: "two", Ref: "2"})
	if len(r.b.forwarded) != 2 || ca.take() != nil {
		t.Fatalf("forwarded %d says, amy got frames before their answers", len(r.b.forwarded))
	}
	// The owner's messages come back to the members here, then the acks.
	for i, f := range r.b.forwarded {
		frame := codec.MustEncode(&codec.Msg{From: "amy", Room: codec.Lobby, Body: f.m.Body, Seq: uint64(10 + i)})
		if !r.b.h.Deliver(codec.Lobby, uint64(10+i), f.r, frame) {
			t.Fatal("a new seq was not delivered")
		}
		f.r.SayDone(f.ref, uint64(10+i), nil)
	}
	if r.b.h.Deliver(codec.Lobby, 10, nil, codec.MustEncode(&codec.Msg{Seq: 10})) {
		t.Fatal("a replayed seq was delivered")
	}
	r.settle()
	acks := ca.take()
	if len(acks) != 2 || acks[0].Seq != 10 || acks[1].Seq != 11 {
		t.Fatalf("amy got %+v, want acks 10 and 11 (and not her own messages)", acks)
	}
	msgs := cb.take()
	if len(msgs) != 2 || msgs[0].Seq != 10 || msgs[1].Body != "two" {
		t.Fatalf("ben got %+v", msgs)
	}
}

// TestHubStoredLaterAndGaps: a message the broker stores later reaches
// the local members only when Deliver hands it back, so an unstored one is
// never seen; a seq given out and never stored is given out again after
// Own; and a seq past the next one is preceded by a gap notice.
func TestHubStoredLaterAndGaps(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	_, cb := r.client(1, "ben")
	ca.take()
	cb.take()
	r.b.storeLater = true
	r.b.own(codec.Lobby, 4)
	if seq, err := r.b.h.Sequence(broker.Message{Room: codec.Lobby, Key: a.key, Nick: "amy", Body: "lost"}); err != nil || seq != 5 {
		t.Fatalf("Sequence = %d, %v; want 5", seq, err)
	}
	r.settle()
	if got := cb.take(); len(got) != 0 {
		t.Fatalf("ben got %v before the message was stored", types(got))
	}
	r.b.own(codec.Lobby, 4) // the store failed: the log still ends at 4
	seq, _ := r.b.h.Sequence(broker.Message{Room: codec.Lobby, Key: a.key, Nick: "amy", Body: "kept", ID: "c-1"})
	if seq != 5 {
		t.Fatalf("seq %d after a failed store, want 5 again", seq)
	}
	frame := codec.MustEncode(&codec.Msg{From: "amy", Room: codec.Lobby, Body: "kept", Seq: 5, ID: "c-1"})
	r.b.h.Deliver(codec.Lobby, 5, a, frame)
	r.b.h.Deliver(codec.Lobby, 8, nil, codec.MustEncode(&codec.Msg{From: "zed", Room: codec.Lobby, Body: "late", Seq: 8}))
	r.settle()
	got := cb.take()
	if len(got) != 3 || got[0].Seq != 5 || got[0].ID != "c-1" || got[1].Type != codec.TypeGap || got[1].First != 6 || got[1].Last != 7 || got[2].Seq != 8 {
		t.Fatalf("ben got %+v; want seq 5 (id c-1), a gap of 6-7, seq 8", got)
	}
	if got := ca.take(); len(got) != 2 || got[0].Type != codec.TypeGap || got[1].Seq != 8 {
		t.Fatalf("amy got %+v; want the gap and seq 8, not her own message", got)
	}
	if r.h.Stats().Gaps != 1 {
		t.Fatalf("Stats.Gaps = %d, want 1", r.h.Stats().Gaps)
	}
}

// TestHubOwnership: a room owned here is sequenced here from the broker's
// last seq on, outlives its local members, and goes when disowned.
func TestHubOwnership(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	r.b.own("r", 41)
	r.send(a, &codec.Join{Room: "r", Ref: "j"})
	r.b.follows["r"](nil, 0, nil)
	r.settle()
	r.send(a, &codec.Say{Room: "r", Body: "hi", Ref: "s"})
	var ack codec.Event
	for _, ev := range ca.take() {
		if ev.Ref == "s" {
			ack = ev
		}
	}
	if ack.Type != codec.TypeAck || ack.Seq != 42 || len(r.b.published) != 1 || r.b.published[0] != 42 {
		t.Fatalf("ack %+v, published %v: want seq 42 from last 41", ack, r.b.published)
	}
	r.send(a, &codec.Leave{Room: "r", Ref: "l"})
	if !r.h.HasRoom("r") {
		t.Fatal("an owned room died with its last local member")
	}
	r.b.h.Disown("r")
	if r.h.HasRoom("r") || len(r.b.unfollowed) != 1 {
		t.Fatalf("a disowned empty room stayed (unfollowed %v)", r.b.unfollowed)
	}
}

// TestHubRoutesDMsAndNicks: a DM to a user not here goes to the broker,
// whose answer is the reply; a login waits for the broker's claim; a
// dropped session's held nick is released at the end of the hold only.
func TestHubRoutesDMsAndNicks(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	ca.take()
	r.send(a, &codec.DM{To: "far", Body: "hi", Ref: "d1"})
	r.send(a, &codec.DM{To: "gone", Body: "hi", Ref: "d2"})
	r.b.dms[0](nil)
	r.settle()
	r.b.dms[1](codec.NotOnline(codec.ErrNoSuchUser, "gone"))
	r.settle()
	if got := types(ca.take()); len(got) != 2 || got[0] != "ack:d1" || got[1] != "error:d2no_such_user" {
		t.Fatalf("amy got %v", got)
	}
	conn := &recConn{}
	r.h.Reserve("fake")
	s, _ := r.h.Open(r.loops[1], conn, "fake")
	r.send(s, &codec.Login{Nick: "slow"})
	if evs := conn.take(); len(evs) != 0 {
		t.Fatalf("welcome before the claim: %v", types(evs))
	}
	r.b.claims["slow"](nil)
	r.settle()
	if evs := conn.take(); len(evs) == 0 || evs[0].Type != codec.TypeWelcome {
		t.Fatalf("after the claim: %v", types(evs))
	}
	r.h.Closed(s, nil) // dropped: its nick is held, not released
	if len(r.b.released) != 1 || r.b.released[0] != "slow" {
		t.Fatalf("released %v", r.b.released)
	}
	r.h.expireHolds(r.h.mono() + int64(r.h.cfg.NickHold) + 1)
	if len(r.b.released) != 2 {
		t.Fatalf("hold end released %v", r.b.released)
	}
}

// TestHubRemotePresence: joins, leaves and a node's death elsewhere reach
// the local members.
func TestHubRemotePresence(t *testing.T) {
	r := newBrokerRig(t)
	_, ca := r.client(0, "amy")
	ca.take()
	r.b.h.RemoteJoined(codec.Lobby, broker.User{Key: "zed", Nick: "zed", Node: "b"})
	r.b.h.RemoteJoined(codec.Lobby, broker.User{Key: "zed", Nick: "zed", Node: "b"}) // once
	r.settle()
	if n := r.b.h.NodeDown("b"); n != 1 {
		t.Fatalf("NodeDown ended %d memberships", n)
	}
	r.settle()
	evs := ca.take()
	if len(evs) != 2 || evs[0].Type != codec.TypeJoined || evs[1].Type != codec.TypeLeft || evs[1].Reason != codec.ReasonDisconnect {
		t.Fatalf("amy got %+v", evs)
	}
}

// TestHubLeaveDuringFollow: a member elsewhere who leaves while the
// room's Follow runs is not brought back by Follow's older list of
// members, where no left would ever come for it.
func TestHubLeaveDuringFollow(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	r.send(a, &codec.Join{Room: "r", Ref: "ja"})
	handler{r.h}.RemoteLeft("r", broker.User{Key: "zed", Node: "b"}, codec.ReasonDisconnect) // overtakes Follow's answer
	r.b.mu.Lock()
	done := r.b.follows["r"]
	r.b.mu.Unlock()
	done([]broker.User{{Key: "zed", Nick: "zed", Node: "b"}, {Key: "yan", Nick: "yan", Node: "b"}}, 0, nil)
	r.settle()
	ca.take()
	r.send(a, &codec.Who{Room: "r", Ref: "w"})
	if evs := ca.take(); len(evs) != 1 || evs[0].Count != 2 || strings.Join(evs[0].Nicks, ",") != "amy,yan" {
		t.Fatalf("who r = %+v, want amy and yan: zed left during the follow", evs)
	}
}

// TestHubRoomLivesForItsJoin: a room whose Follow has finished is not
// dropped as unused before the joins that waited for it enter, though it
// has no member and no history yet: a history sweep then (which weighs
// every room's life) used to drop it, and the join failed as unavailable.
func TestHubRoomLivesForItsJoin(t *testing.T) {
	r := newBrokerRig(t)
	a, ca := r.client(0, "amy")
	ca.take()
	r.send(a, &codec.Join{Room: "r", Ref: "ja"})
	r.b.mu.Lock()
	done := r.b.follows["r"]
	r.b.mu.Unlock()
	if done == nil {
		t.Fatal("no Follow for room r")
	}
	done(nil, 0, nil)
	r.h.dropIfUnused(r.h.rooms.get("r")) // as the sweep does, before the join's retry runs
	r.settle()
	if got := types(ca.take()); len(got) == 0 || got[0] != "ack:ja" {
		t.Fatalf("amy got %v, want the join's ack", got)
	}
	if !r.h.HasRoom("r") {
		t.Fatal("room r dropped with amy in it")
	}
}
