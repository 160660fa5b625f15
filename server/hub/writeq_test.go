package hub

import (
	"bytes"
	"fmt"
	"testing"

	"parley/codec"
	"parley/server/broker"
)

// recordingConn keeps copies of the msg frames it is given.
type recordingConn struct {
	fakeConn
	got [][]byte
}

var msgPrefix = []byte(`{"type":"msg"`)

func (c *recordingConn) Writev(frames [][]byte) {
	c.fakeConn.Writev(frames)
	for _, f := range frames {
		if bytes.HasPrefix(f[codec.HeaderSize:], msgPrefix) {
			c.got = append(c.got, bytes.Clone(f))
		}
	}
}

// bodies is the body of every msg c received, in order.
func (c *recordingConn) bodies(t *testing.T) []string {
	var out []string
	for _, f := range c.got {
		var ev codec.Event
		if err := codec.DecodeEvent(f[codec.HeaderSize:], &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == codec.TypeMsg {
			out = append(out, ev.Room+":"+ev.Body)
		}
	}
	return out
}

// openMember logs nick in on loop and joins it to rooms.
func openMember(tb testing.TB, h *Hub, loop *fakeLoop, nick string, rooms ...string) (*Session, *recordingConn) {
	conn := &recordingConn{}
	h.Reserve("fake")
	s, refusal := h.Open(loop, conn, "fake")
	if refusal != nil {
		tb.Fatal("refused")
	}
	frames := [][]byte{codec.MustEncode(&codec.Login{Nick: nick})}
	for _, r := range rooms {
		frames = append(frames, codec.MustEncode(&codec.Join{Room: r}))
	}
	for _, f := range frames {
		s.loop.enter()
		h.handleFrame(s, f[codec.HeaderSize:])
		s.loop.leave()
		for loop.run() {
		}
	}
	return s, conn
}

func say(tb testing.TB, h *Hub, s *Session, room, body string) {
	if err := h.handleSay(s, &codec.Request{Type: codec.TypeSay, Room: room, Body: body}); err != nil {
		tb.Fatal(err)
	}
}

// TestPassesLetSmallRoomsOvertake: a message to a room of a thousand is
// written in passes, and a message to a small room that arrives after
// the first pass is written in the next one, ahead of the rest of the
// large room; a member of both gets both, in the order they were sent.
func TestPassesLetSmallRoomsOvertake(t *testing.T) {
	cfg := testConfig()
	cfg.Loops = 1
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	loop := &fakeLoop{}
	const large = 4 * passBudget
	bigSender, _ := openMember(t, h, loop, "big0", "big")
	var big []*recordingConn
	for i := 1; i < large; i++ {
		_, c := openMember(t, h, loop, fmt.Sprint("big", i), "big")
		big = append(big, c)
	}
	smallSender, _ := openMember(t, h, loop, "small0", "small")
	_, both := openMember(t, h, loop, "both", "big", "small")
	_, onlySmall := openMember(t, h, loop, "small1", "small")

	say(t, h, bigSender, "big", "b1")
	loop.run() // the first pass
	say(t, h, smallSender, "small", "s1")
	loop.run() // the next pass: the small room's message goes first
	if got := onlySmall.bodies(t); len(got) != 1 || got[0] != "small:s1" {
		t.Fatalf("small room member after two passes: %q, want [small:s1]", got)
	}
	if got := both.bodies(t); len(got) != 2 || got[0] != "big:b1" || got[1] != "small:s1" {
		t.Fatalf("member of both after two passes: %q, want [big:b1 small:s1]", got)
	}
	waiting := 0
	for _, c := range big {
		if len(c.bodies(t)) == 0 {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatalf("every member of the large room was written in two passes of %d", passBudget)
	}
	for loop.run() {
	}
	for i, c := range big {
		if got := c.bodies(t); len(got) != 1 || got[0] != "big:b1" {
			t.Fatalf("large room member %d: %q, want [big:b1]", i, got)
		}
	}
	if got := both.bodies(t); len(got) != 2 {
		t.Fatalf("member of both was written twice: %q", got)
	}
}

// TestPassesKeepRoomOrder: many messages to a large room, queued while
// earlier ones are still being written, reach every member once each and
// in seq order.
func TestPassesKeepRoomOrder(t *testing.T) {
	cfg := testConfig()
	cfg.Loops = 1
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	loop := &fakeLoop{}
	sender, _ := openMember(t, h, loop, "m0", "big")
	var members []*recordingConn
	for i := 1; i < 3*passBudget; i++ {
		_, c := openMember(t, h, loop, fmt.Sprint("m", i), "big")
		members = append(members, c)
	}
	const messages = 20
	for i := range messages {
		say(t, h, sender, "big", fmt.Sprint(i))
		loop.run() // one pass between messages: the backlog grows and drains
	}
	for loop.run() {
	}
	for i, c := range members {
		got := c.bodies(t)
		if len(got) != messages {
			t.Fatalf("member %d got %d messages, want %d", i, len(got), messages)
		}
		for k, b := range got {
			if b != fmt.Sprint("big:", k) {
				t.Fatalf("member %d: message %d is %q: out of order", i, k, b)
			}
		}
	}
}

// TestPingsRideAlong: a due ping costs no write of its own when the
// session is sent something before the next sweep; a quiet session gets
// it alone at the next sweep.
func TestPingsRideAlong(t *testing.T) {
	cfg := testConfig()
	cfg.Loops = 1
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	loop := &fakeLoop{}
	sender, _ := openMember(t, h, loop, "m0", "room")
	_, busy := openMember(t, h, loop, "m1", "room")
	quietSession, quiet := openMember(t, h, loop, "m2")
	l := quietSession.loop
	due := h.mono() + int64(cfg.Heartbeat)
	busyWrites, quietWrites, busyFrames := busy.writes, quiet.writes, busy.frames
	l.sweep(due)
	for loop.run() {
	}
	if busy.writes != busyWrites || quiet.writes != quietWrites {
		t.Fatalf("the sweep wrote its pings at once: %d and %d writes", busy.writes-busyWrites, quiet.writes-quietWrites)
	}
	say(t, h, sender, "room", "hello")
	for loop.run() {
	}
	if busy.writes != busyWrites+1 || busy.frames != busyFrames+2 {
		t.Fatalf("message and ping took %d writes of %d frames, want 1 of 2", busy.writes-busyWrites, busy.frames-busyFrames)
	}
	l.sweep(due + int64(cfg.TickInterval()))
	for loop.run() {
	}
	if quiet.writes != quietWrites+1 {
		t.Fatalf("the quiet session's ping took %d writes at the next sweep, want 1", quiet.writes-quietWrites)
	}
	l.sweep(due + 2*int64(cfg.TickInterval()))
	for loop.run() {
	}
	if busy.writes != busyWrites+1 || quiet.writes != quietWrites+1 {
		t.Fatal("a ping was written twice")
	}
}
