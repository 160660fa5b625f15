package server

import (
	"fmt"
	"sync"
	"testing"

	"parley/codec"
)

// fakeLoop queues Executed functions until run is called.
type fakeLoop struct {
	mu  sync.Mutex
	fns []func()
}

func (f *fakeLoop) Execute(fn func()) error {
	f.mu.Lock()
	f.fns = append(f.fns, fn)
	f.mu.Unlock()
	return nil
}

func (f *fakeLoop) run() {
	f.mu.Lock()
	fns := f.fns
	f.fns = nil
	f.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
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
	h      *hub
	loops  []*fakeLoop
	sender *session
	room   *room
	conns  []*fakeConn
}

func newFanoutRig(tb testing.TB, members int) *fanoutRig {
	h := newHub(Config{Loops: 2, PresenceLimit: -1}.withDefaults())
	rig := &fanoutRig{h: h, loops: []*fakeLoop{{}, {}}}
	for i := 0; i <= members; i++ {
		l := h.bind(rig.loops[i%2])
		conn := &fakeConn{}
		s, refusal := h.open(l, conn, "fake")
		if refusal != nil {
			tb.Fatal("refused")
		}
		l.enter()
		h.handleFrame(s, codec.MustEncode(&codec.Login{Nick: fmt.Sprint("m", i)})[codec.HeaderSize:])
		h.handleFrame(s, codec.MustEncode(&codec.Join{Room: "bench"})[codec.HeaderSize:])
		l.leave()
		if i == 0 {
			rig.sender = s
		} else {
			rig.conns = append(rig.conns, conn)
		}
	}
	rig.settle()
	rig.room = rig.sender.rooms["bench"]
	return rig
}

// settle runs the loops until nothing is queued.
func (r *fanoutRig) settle() {
	for _, l := range r.loops {
		l.run()
	}
}

// broadcast sends one room message and delivers it.
func (r *fanoutRig) broadcast() {
	r.h.say(r.sender, r.room, "hello everyone, this is a typical chat message")
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
		rig.h.say(rig.sender, rig.room, "queued")
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
