package hub

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// fakeLoop queues Executed functions until run is called. It reuses its
// queue's arrays, so that allocation counts are the hub's alone.
type fakeLoop struct {
	mu         sync.Mutex
	fns, spare []func()
}

func (f *fakeLoop) Execute(fn func()) error {
	f.mu.Lock()
	f.fns = append(f.fns, fn)
	f.mu.Unlock()
	return nil
}

// run runs what was queued; it reports whether there was anything.
func (f *fakeLoop) run() bool {
	f.mu.Lock()
	fns := f.fns
	f.fns, f.spare = f.spare[:0], nil
	f.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	clear(fns)
	f.mu.Lock()
	f.spare = fns[:0]
	f.mu.Unlock()
	return len(fns) > 0
}

// runOne runs the first function queued, if any.
func (f *fakeLoop) runOne() {
	f.mu.Lock()
	if len(f.fns) == 0 {
		f.mu.Unlock()
		return
	}
	fn := f.fns[0]
	f.fns = append(f.fns[:0], f.fns[1:]...)
	f.mu.Unlock()
	fn()
}

// fakeConn counts what it is given.
type fakeConn struct {
	frames, writes int
	closed         bool
}

func (c *fakeConn) Writev(frames [][]byte) { c.frames += len(frames); c.writes++ }
func (c *fakeConn) Buffered() int          { return 0 }
func (c *fakeConn) Flush()                 {}
func (c *fakeConn) Close()                 { c.closed = true }

// fanoutRig is a hub with members logged in over fake connections on two
// fake loops, all in room "bench".
type fanoutRig struct {
	h      *Hub
	loops  []*fakeLoop
	sender *Session
	say    codec.Request
	conns  []*fakeConn
}

func newFanoutRig(tb testing.TB, members int) *fanoutRig {
	h := New(testConfig(), broker.NewLocal())
	if err := h.Start(); err != nil {
		tb.Fatal(err)
	}
	rig := &fanoutRig{h: h, loops: []*fakeLoop{{}, {}}}
	rig.say = codec.Request{Type: codec.TypeSay, Room: "bench", Body: "hello everyone, this is a typical chat message"}
	for i := 0; i <= members; i++ {
		conn := &fakeConn{}
		h.Reserve("fake")
		s, refusal := h.Open(rig.loops[i%2], conn, "fake")
		if refusal != nil {
			tb.Fatal("refused")
		}
		s.loop.enter()
		h.handleFrame(s, codec.MustEncode(&codec.Login{Nick: fmt.Sprint("m", i)})[codec.HeaderSize:])
		s.loop.leave()
		rig.settle() // the login completes on the loop
		s.loop.enter()
		h.handleFrame(s, codec.MustEncode(&codec.Join{Room: "bench"})[codec.HeaderSize:])
		s.loop.leave()
		rig.settle()
		if i == 0 {
			rig.sender = s
		} else {
			rig.conns = append(rig.conns, conn)
		}
	}
	return rig
}

// testConfig is a hub configuration with the server's defaults, flood
// control and presence counts off.
func testConfig() Config {
	return Config{
		Loops: 2, Heartbeat: 10 * time.Second, IdleTimeout: 30 * time.Second, LoginTimeout: 10 * time.Second,
		MaxFrame: codec.DefaultMaxFrame, MaxLoginFrame: 4096, FrameTimeout: 10 * time.Second, MaxBody: codec.DefaultMaxBody,
		MaxOutbound: 4 << 20, MaxOutboundTotal: 1 << 30, WriteDeadline: 10 * time.Second, PresenceLimit: -1,
		PresenceInterval: time.Second, RoomsPerSession: codec.DefaultMaxRooms, RoomCreateRate: -1, RateLimit: -1, FloodGrace: 5 * time.Second,
		NickHold: 30 * time.Second, DMRate: -1, JoinRate: -1, Logger: slog.New(slog.DiscardHandler),
	}
}

// settle runs the loops until nothing is queued.
func (r *fanoutRig) settle() {
	for busy := true; busy; {
		busy = false
		for _, l := range r.loops {
			busy = l.run() || busy
		}
	}
}

// broadcast sends one room message through the say handler, as a frame
// decoded already, and delivers it.
func (r *fanoutRig) broadcast() {
	if err := r.h.handleSay(r.sender, &r.say); err != nil {
		panic(err)
	}
	r.settle()
}

func TestFanoutDeliversOnceToEveryOtherMember(t *testing.T) {
	rig := newFanoutRig(t, 100)
	before := make([]int, len(rig.conns))
	for i, c := range rig.conns {
		before[i] = c.frames
	}
	for i := 0; i < 10; i++ {
		rig.broadcast()
	}
	for i, c := range rig.conns {
		if got := c.frames - before[i]; got != 10 {
			t.Fatalf("member %d got %d frames, want 10", i, got)
		}
	}
}

// TestFanoutCoalescesWrites queues 50 messages before the loops run: each
// member gets them in one writev.
func TestFanoutCoalescesWrites(t *testing.T) {
	rig := newFanoutRig(t, 10)
	writes := rig.conns[0].writes
	for i := 0; i < 50; i++ {
		if err := rig.h.handleSay(rig.sender, &rig.say); err != nil {
			t.Fatal(err)
		}
	}
	rig.settle()
	if got := rig.conns[0].writes - writes; got != 1 {
		t.Fatalf("50 queued messages took %d writes, want 1", got)
	}
}

// TestFanoutAllocsFlat: the allocations of one broadcast do not grow with
// the number of recipients.
func TestFanoutAllocsFlat(t *testing.T) {
	allocs := map[int]float64{}
	for _, n := range []int{1, 1000} {
		rig := newFanoutRig(t, n)
		rig.broadcast() // warm the per-session slices
		allocs[n] = testing.AllocsPerRun(200, rig.broadcast)
	}
	t.Logf("allocs per broadcast: 1 member %.1f, 1000 members %.1f", allocs[1], allocs[1000])
	if allocs[1000] > allocs[1]+1 {
		t.Fatalf("allocs grow with recipients: %v", allocs)
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			rig := newFanoutRig(b, n)
			rig.broadcast()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rig.broadcast()
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
