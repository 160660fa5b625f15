package hub

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// recordingConn keeps copies of the msg and presence frames it is given.
type recordingConn struct {
	fakeConn
	got, presence [][]byte
}

var msgPrefix = []byte(`{"type":"msg"`)

func (c *recordingConn) Writev(frames [][]byte) {
	c.fakeConn.Writev(frames)
	for _, f := range frames {
		if bytes.HasPrefix(f[codec.HeaderSize:], msgPrefix) {
			c.got = append(c.got, bytes.Clone(f))
		}
		if bytes.HasPrefix(f[codec.HeaderSize:], []byte(`{"type":"presence"`)) {
			c.presence = append(c.presence, bytes.Clone(f))
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
	return openOn(tb, h, loop, conn, nick, rooms...), conn
}

// openOn is openMember on a connection of the caller's.
func openOn(tb testing.TB, h *Hub, loop *fakeLoop, conn Conn, nick string, rooms ...string) *Session {
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
	return s
}

// oneLoopHub is a started hub with cfg on one fake loop.
func oneLoopHub(tb testing.TB, cfg Config) (*Hub, *fakeLoop) {
	cfg.Loops = 1
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		tb.Fatal(err)
	}
	return h, &fakeLoop{}
}

func say(tb testing.TB, h *Hub, s *Session, room, body string) {
	if err := h.handleSay(s, &codec.Request{Type: codec.TypeSay, Room: room, Body: body}); err != nil {
		tb.Fatal(err)
	}
}

// TestFanoutKeepsRoomOrder: many messages to a room of hundreds, four
// queued for each run of the loop, reach every member once each and in seq
// order, the four of a run in one write.
func TestFanoutKeepsRoomOrder(t *testing.T) {
	cfg := testConfig()
	h, loop := oneLoopHub(t, cfg)
	sender, _ := openMember(t, h, loop, "m0", "big")
	var members []*recordingConn
	for i := 1; i < 768; i++ {
		_, c := openMember(t, h, loop, fmt.Sprint("m", i), "big")
		members = append(members, c)
	}
	writes := make([]int, len(members))
	for i, c := range members {
		writes[i] = c.writes
	}
	const messages = 64
	pad := strings.Repeat("x", 2000)
	for i := range messages {
		say(t, h, sender, "big", fmt.Sprint(i, pad))
		if i%4 == 3 {
			loop.runOne()
		}
	}
	for loop.run() {
	}
	for i, c := range members {
		got := c.bodies(t)
		if n := c.writes - writes[i]; n != messages/4 {
			t.Fatalf("member %d took %d writes for %d runs of 4 messages", i, n, messages/4)
		}
		if len(got) != messages {
			t.Fatalf("member %d got %d messages, want %d", i, len(got), messages)
		}
		for k, b := range got {
			if b != fmt.Sprint("big:", k, pad) {
				t.Fatalf("member %d: message %d is %.12q: out of order", i, k, b)
			}
		}
	}
}

// TestPingsRideAlong: a due ping costs no write of its own when the
// session is sent something before the next sweep; a quiet session gets
// it alone at the next sweep.
func TestPingsRideAlong(t *testing.T) {
	cfg := testConfig()
	h, loop := oneLoopHub(t, cfg)
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

// sweepAll runs l's sweep at now and its timed chunks until every
// session it found waiting is written.
func sweepAll(t *testing.T, l *loop, f *fakeLoop, now int64) {
	t.Helper()
	l.sweep(now)
	deadline := time.Now().Add(5 * time.Second)
	for {
		for f.run() {
		}
		f.mu.Lock()
		done := len(f.fns) == 0 && !l.lazy.scheduled
		f.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep's chunks were not all written")
		}
		time.Sleep(lazyPause)
	}
}

// TestPresenceRidesAlong: in a room over the presence limit, a presence
// frame costs no write of its own when the member is sent something
// before the next sweep, and goes out alone at the sweep otherwise.
func TestPresenceRidesAlong(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceLimit = 2
	h, loop := oneLoopHub(t, cfg)
	sender, _ := openMember(t, h, loop, "m0")
	_, busy := openMember(t, h, loop, "m1")
	quietSession, quiet := openMember(t, h, loop, "m2") // the lobby is counted from here
	l := quietSession.loop
	now := h.mono()
	run := func() {
		for loop.run() {
		}
	}
	busyWrites, quietWrites, busyFrames := busy.writes, quiet.writes, busy.frames
	now += int64(10 * time.Second)
	h.flushPresence(now)
	run()
	if busy.writes != busyWrites || quiet.writes != quietWrites {
		t.Fatalf("presence was written at once: %d and %d writes", busy.writes-busyWrites, quiet.writes-quietWrites)
	}
	say(t, h, sender, codec.Lobby, "hello")
	run()
	if busy.writes != busyWrites+1 || busy.frames != busyFrames+2 || len(busy.presence) != 1 {
		t.Fatalf("message and presence took %d writes of %d frames (%d presence), want 1 of 2 (1)",
			busy.writes-busyWrites, busy.frames-busyFrames, len(busy.presence))
	}
	openMember(t, h, loop, "m3") // counted: a presence frame is due
	quietWrites, presences := quiet.writes, len(quiet.presence)
	now += int64(10 * time.Second)
	h.flushPresence(now)
	run()
	l.sweep(now)
	run()
	if quiet.writes != quietWrites+1 || len(quiet.presence) != presences+1 {
		t.Fatalf("the quiet member's presence took %d writes at the sweep (%d presence), want 1 (1)",
			quiet.writes-quietWrites, len(quiet.presence)-presences)
	}
	l.sweep(now)
	run()
	if quiet.writes != quietWrites+1 {
		t.Fatal("a presence frame was written twice")
	}
}

// TestPresenceGapGrowsWithTheRoom: presence in a room of n members goes
// out at most every ⌈n/presenceMembers⌉ intervals.
func TestPresenceGapGrowsWithTheRoom(t *testing.T) {
	for _, c := range []struct {
		members int
		want    time.Duration
	}{{1, time.Second}, {1000, time.Second}, {1001, 2 * time.Second}, {4331, 5 * time.Second}} {
		if got := time.Duration(presenceGap(time.Second, c.members)); got != c.want {
			t.Errorf("%d members: gap %v, want %v", c.members, got, c.want)
		}
	}
}

// TestPresenceInLargeRooms: in a room of 1,200 over the presence limit, a
// change is announced once, and the next change waits two intervals.
func TestPresenceInLargeRooms(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceLimit, cfg.PresenceInterval = 10, time.Second
	h, loop := oneLoopHub(t, cfg)
	watcherSession, watcher := openMember(t, h, loop, "w")
	for i := range 1200 {
		openMember(t, h, loop, fmt.Sprint("m", i))
	}
	presences := func() int { return len(watcher.presence) }
	now := h.mono() + int64(10*time.Second)
	step := func(d time.Duration) int {
		now += int64(d)
		h.flushPresence(now)
		for loop.run() {
		}
		sweepAll(t, watcherSession.loop, loop, now) // presence rides along: the sweep writes it
		return presences()
	}
	if got := step(0); got != 1 {
		t.Fatalf("%d presence frames after the logins, want 1", got)
	}
	openMember(t, h, loop, "late")
	if got := step(time.Second); got != 1 {
		t.Fatalf("a room of 1,202 got presence again after one interval (%d frames)", got)
	}
	if got := step(time.Second); got != 2 {
		t.Fatalf("%d presence frames after two intervals, want 2", got)
	}
}

// bytesInbound is a connection's received bytes for Hub.Traffic.
type bytesInbound struct{ buf []byte }

func (b *bytesInbound) InboundBuffered() int { return len(b.buf) }
func (b *bytesInbound) Peek(n int) ([]byte, error) {
	return b.buf[:min(n, len(b.buf))], nil
}

func (b *bytesInbound) Discard(n int) (int, error) {
	b.buf = b.buf[n:]
	return n, nil
}

// read hands s one frame as the engine would, in a read callback.
func read(h *Hub, s *Session, req codec.Message) {
	h.Traffic(s, &bytesInbound{buf: codec.MustEncode(req)})
}

// TestReadsCoalesceLargeFanouts: a read whose messages make deferFanout
// deliveries or more leaves the drain to the loop's next run, so that
// the messages read meanwhile go to each member in the same write; below
// that, a read drains at once.
func TestReadsCoalesceLargeFanouts(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceLimit = 10
	h, loop := oneLoopHub(t, cfg)
	a, _ := openMember(t, h, loop, "a", "small")
	b, _ := openMember(t, h, loop, "b")
	_, small := openMember(t, h, loop, "c", "small")
	_, watcher := openMember(t, h, loop, "w")
	for i := range deferFanout {
		openMember(t, h, loop, fmt.Sprint("m", i))
	}
	writes := small.writes
	read(h, a, &codec.Say{Room: "small", Body: "now"})
	if small.writes != writes+1 {
		t.Fatalf("a message to a room of 2 took %d writes before the loop ran again, want 1", small.writes-writes)
	}
	writes = watcher.writes
	read(h, a, &codec.Say{Room: codec.Lobby, Body: "one"})
	read(h, b, &codec.Say{Room: codec.Lobby, Body: "two"})
	if watcher.writes != writes {
		t.Fatalf("messages to %d members were written in their read callbacks", deferFanout+4)
	}
	for loop.run() {
	}
	if got := watcher.bodies(t); watcher.writes != writes+1 || len(got) != 2 || got[0] != "lobby:one" || got[1] != "lobby:two" {
		t.Fatalf("the two messages took %d writes, bodies %q; want 1 write of one, two", watcher.writes-writes, got)
	}
}

// TestSweepWritesInChunks: the sweep writes the sessions whose pings
// wait lazyChunk at a time, the rest from a timer, each once.
func TestSweepWritesInChunks(t *testing.T) {
	cfg := testConfig()
	cfg.PresenceLimit = 10
	h, fake := oneLoopHub(t, cfg)
	conns := make([]*recordingConn, 2*lazyChunk+10)
	for i := range conns {
		_, conns[i] = openMember(t, h, fake, fmt.Sprint("m", i))
	}
	l := h.loops[0]
	var timers []func() // the chunk timer, fired by hand: no clock decides what the first check sees
	l.lazy.after = func(_ time.Duration, f func()) { timers = append(timers, f) }
	before := make([]int, len(conns))
	for i, c := range conns {
		before[i] = c.writes
	}
	written := func() (n int) {
		for i, c := range conns {
			if c.writes > before[i]+1 {
				t.Fatalf("session %d was written %d times", i, c.writes-before[i])
			}
			n += c.writes - before[i]
		}
		return n
	}
	due := h.mono() + int64(cfg.Heartbeat)
	l.sweep(due) // queues the pings, to ride along until the next sweep
	for fake.run() {
	}
	due += int64(cfg.TickInterval())
	l.sweep(due)
	for fake.run() {
	}
	if n := written(); n != lazyChunk {
		t.Fatalf("the sweep wrote %d sessions at once, want %d", n, lazyChunk)
	}
	if len(timers) != 1 {
		t.Fatalf("%d chunk timers set, want 1", len(timers))
	}
	for fired := 0; len(timers) > 0; fired++ { // each timer writes a chunk, and sets the next
		if fired == 2 {
			t.Fatal("more than two more chunks for 2 chunks and 10 sessions")
		}
		fire := timers[0]
		timers = timers[1:]
		fire()
		for fake.run() {
		}
		if n, want := written(), min(len(conns), (fired+2)*lazyChunk); n != want {
			t.Fatalf("after timer %d, %d sessions written, want %d", fired+1, n, want)
		}
	}
	if n := written(); n != len(conns) {
		t.Fatalf("%d of %d sessions were written their pings", n, len(conns))
	}
}

// orderedConn notes when it is first written after mark: the order in
// which a flush writes the loop's sessions.
type orderedConn struct {
	recordingConn
	clock *int
	at    int // the clock when first written since the mark; 0: not yet
}

func (c *orderedConn) Writev(frames [][]byte) {
	c.recordingConn.Writev(frames)
	if c.at == 0 {
		*c.clock++
		c.at = *c.clock
	}
}

// TestUrgentWrittenFirst: in one drain, a large room's message queued
// before a small room's, the small room's members are written first (they
// would wait for every large-room write otherwise), and every member gets
// its messages once, in order.
func TestUrgentWrittenFirst(t *testing.T) {
	h, loop := oneLoopHub(t, testConfig())
	clock := 0
	var sessions []*Session
	open := func(nick string, rooms ...string) *orderedConn {
		conn := &orderedConn{clock: &clock}
		sessions = append(sessions, openOn(t, h, loop, conn, nick, rooms...))
		return conn
	}
	var big, small []*orderedConn
	for i := range 2 * smallFanout {
		big = append(big, open(fmt.Sprintf("b%d", i), "big"))
	}
	for i := range 3 {
		small = append(small, open(fmt.Sprintf("s%d", i), "small", "big"))
	}
	sender := sessions[len(sessions)-3] // s0
	clock = 0
	for _, c := range append(big, small...) {
		c.at, c.got = 0, nil
	}
	say(t, h, sender, "big", "one") // both drained by one run of the loop
	say(t, h, sender, "small", "two")
	for loop.run() {
	}
	for i, c := range small[1:] {
		if got := c.bodies(t); strings.Join(got, ",") != "big:one,small:two" {
			t.Fatalf("small member %d got %v", i+1, got)
		}
		for j, b := range big {
			if c.at == 0 || b.at == 0 || c.at > b.at {
				t.Fatalf("small member %d written at %d, big member %d at %d: small rooms first", i+1, c.at, j, b.at)
			}
		}
	}
	for j, b := range big {
		if got := b.bodies(t); strings.Join(got, ",") != "big:one" {
			t.Fatalf("big member %d got %v", j, got)
		}
	}
}
