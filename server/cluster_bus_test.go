package server

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// holdProxy forwards TCP to a NATS server; while held it closes every
// connection and refuses new ones, as a node whose network to NATS comes
// back later than the others' would see.
type holdProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	held   bool
	conns  []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.hold() })
	go p.accept()
	return p
}

func (p *holdProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *holdProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		held := p.held
		p.mu.Unlock()
		out, err := net.Dial("tcp", p.target)
		if held || err != nil {
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
		go func() { _, _ = io.Copy(out, in); out.Close() }()
	}
}

func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *holdProxy) release() {
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
}

// TestClusterNATSRestartLosesNothing stops NATS while every node keeps
// chatting, starts it again, and lets one node back only after the others
// have sequenced messages without it and gone quiet: every member that
// stayed sees every sequenced message exactly once, in order, the late
// node's by reading the room's log when its link returns, then live ones.
func TestClusterNATSRestartLosesNothing(t *testing.T) {
	nats := natstest.Start(t)
	late := newHoldProxy(t, nats.URL()[len("nats://"):])
	cluster := fmt.Sprintf("t%d", time.Now().UnixNano())
	logger := failureLog(t)
	var nodes []*Server
	for i, url := range []string{nats.URL(), nats.URL(), late.url()} {
		nodes = append(nodes, startServer(t, Config{NATS: url, NodeID: fmt.Sprintf("n%d", i), ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1, busLogLen: testLogLen, Logger: logger}))
	}
	for _, n := range nodes {
		eventually(t, "nodes hear each other", func() bool { return n.Stats().Cluster.Peers == 2 })
	}
	var speakers, members []*chatter
	for i, n := range nodes {
		speakers = append(speakers, newChatter(t, n, fmt.Sprintf("s%d", i), "r"))
		members = append(members, newChatter(t, n, fmt.Sprintf("m%d", i), "r"))
	}
	speakers[0].sayAcked("before")
	stop := make(chan struct{})
	var stopped []chan struct{}
	for _, s := range speakers {
		stopped = append(stopped, s.keepSaying(stop))
	}
	eventually(t, "messages sequenced before the outage", func() bool { got, _, _ := members[2].snapshot(); return len(got) >= 20 })

	late.hold()
	nats.Stop()
	for _, n := range nodes {
		eventually(t, "degraded", func() bool { return !n.Stats().Cluster.Connected })
	}
	nats.Start()
	for _, n := range nodes[:2] {
		eventually(t, "reconnected", func() bool { return n.Stats().Cluster.Connected })
	}
	// The others sequence messages while the late node is away.
	before := sequenced(speakers[1])
	eventually(t, "messages sequenced without the late node", func() bool { return sequenced(speakers[1]) >= before+20 })
	if nodes[2].Stats().Cluster.Connected {
		t.Fatal("the late node reconnected while held")
	}
	// Quiet before the late node is back: no live message shows it what it
	// missed, so it must read the log on its own when its link returns.
	close(stop)
	for _, done := range stopped {
		<-done
	}
	late.release()
	eventually(t, "the late node reconnected", func() bool { return nodes[2].Stats().Cluster.Connected })
	settled(t, nodes[0], "r", members)
	again := make(chan struct{})
	back := sequenced(speakers[2])
	done := speakers[2].keepSaying(again)
	eventually(t, "the late node sequences again", func() bool { return sequenced(speakers[2]) >= back+5 })
	close(again)
	<-done
	settled(t, nodes[0], "r", members)
	history(t, nodes[0], "r", append(speakers, members...), members)
}

// TestClusterStaleOwnerIsFenced pauses a room's owner past the dead-node
// bound (its NATS link stalled both ways, as a frozen process's would be)
// while its members keep saying; another node takes the room over and
// sequences messages. When the old owner wakes up, the log refuses what
// it sequenced meanwhile: nothing of it is stored under a seq the new
// owner used, or delivered to anyone, and its says fail with unavailable.
func TestClusterStaleOwnerIsFenced(t *testing.T) {
	nats := natstest.Start(t)
	frozen := newFrozenProxy(t, nats.URL()[len("nats://"):])
	cluster := fmt.Sprintf("t%d", time.Now().UnixNano())
	// Pings far apart: the paused node must not notice the stall itself.
	a := startServer(t, Config{NATS: frozen.url(), NodeID: "a", ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1, busPingInterval: time.Minute})
	b := startServer(t, Config{NATS: nats.URL(), NodeID: "b", ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1})
	eventually(t, "nodes hear each other", func() bool { return a.Stats().Cluster.Peers == 1 && b.Stats().Cluster.Peers == 1 })
	onA := newChatter(t, a, "amy", "r")
	onB := newChatter(t, b, "bob", "r")
	watch := newChatter(t, b, "wes", "r")
	for i := range 3 {
		onA.sayAcked(fmt.Sprintf("early%d", i))
	}
	if !natsBroker(a).Owns("r") {
		t.Fatal("a does not own the room it sequenced")
	}

	frozen.stall()
	for i := range 3 {
		onA.say(fmt.Sprintf("stale%d", i), fmt.Sprintf("stale%d", i))
	}
	eventually(t, "b buries a", func() bool { return b.Stats().Cluster.Peers == 0 })
	var fresh []uint64
	for i := range 3 {
		seq, _ := onB.sayAcked(fmt.Sprintf("fresh%d", i))
		fresh = append(fresh, seq)
	}
	if fresh[0] != 4 {
		t.Fatalf("b's first seq %d, want 4: it continues the log", fresh[0])
	}
	frozen.resume()

	for i := range 3 {
		ref := fmt.Sprintf("stale%d", i)
		eventually(t, "the stale say's answer", func() bool { _, _, done := onA.answered(ref); return done })
		if seq, acked, _ := onA.answered(ref); acked {
			t.Fatalf("a acknowledged %s with seq %d after it was deposed", ref, seq)
		}
	}
	if f := a.Stats().Cluster.Fenced; f == 0 {
		t.Fatal("the log refused nothing from the deposed owner: the fence was not tested")
	}
	// Woken, a learns that b buried it and claims its users' nicks again;
	// it forwards its says to the new owner.
	eventually(t, "b knows amy again", func() bool {
		users, _, _ := natsBroker(b).Users("", 100)
		for _, u := range users {
			if u.Nick == "amy" {
				return true
			}
		}
		return false
	})
	onA.sayAcked("woken")
	settled(t, b, "r", []*chatter{onB, watch, onA})
	history(t, b, "r", []*chatter{onA, onB, watch}, []*chatter{watch})
}

// TestClusterGapWhenTheLogForgot: a node cut off while its room's log
// moved on by more than the log keeps tells its members, once back, which
// seqs they will never get (a gap notice), then delivers what the log still
// has, in order: a hole is never silent.
func TestClusterGapWhenTheLogForgot(t *testing.T) {
	nats := natstest.Start(t)
	cut := newHoldProxy(t, nats.URL()[len("nats://"):])
	cluster := fmt.Sprintf("t%d", time.Now().UnixNano())
	const keep = 5
	logger := failureLog(t)
	cfg := func(url, id string) Config {
		return Config{NATS: url, NodeID: id, ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1, busLogLen: keep, Logger: logger}
	}
	a := startServer(t, cfg(nats.URL(), "a"))
	b := startServer(t, cfg(cut.url(), "b"))
	eventually(t, "nodes hear each other", func() bool { return a.Stats().Cluster.Peers == 1 && b.Stats().Cluster.Peers == 1 })
	speaker := newChatter(t, a, "amy", "r")
	member := newChatter(t, b, "bob", "r")
	for i := range 3 {
		speaker.sayAcked(fmt.Sprintf("before%d", i))
	}
	eventually(t, "bob has the first three", func() bool { got, _, _ := member.snapshot(); return len(got) == 3 })

	cut.hold()
	eventually(t, "b is cut off", func() bool { return !b.Stats().Cluster.Connected })
	var last uint64
	for i := range 20 {
		last, _ = speaker.sayAcked(fmt.Sprintf("during%d", i))
	}
	cut.release()
	eventually(t, "bob has the last message", func() bool {
		got, _, _ := member.snapshot()
		return len(got) > 0 && got[len(got)-1].Seq == last
	})
	got, _, _ := member.snapshot()
	var want []string
	for seq := uint64(1); seq <= 3; seq++ {
		want = append(want, fmt.Sprintf("msg:%d", seq))
	}
	want = append(want, fmt.Sprintf("gap:%d-%d", 4, last-keep))
	for seq := last - keep + 1; seq <= last; seq++ {
		want = append(want, fmt.Sprintf("msg:%d", seq))
	}
	var have []string
	for _, ev := range got {
		if ev.Type == codec.TypeGap {
			have = append(have, fmt.Sprintf("gap:%d-%d", ev.First, ev.Last))
		} else {
			have = append(have, fmt.Sprintf("%s:%d", ev.Type, ev.Seq))
		}
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("bob got %v\nwant %v", have, want)
	}
	if b.Stats().Gaps != 1 {
		t.Fatalf("b counted %d gaps, want 1", b.Stats().Gaps)
	}
}
