package server

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// stallProxy forwards TCP to a NATS server; while stalled it stops
// reading what the node sends, as a NATS link that stopped reading would.
type stallProxy struct {
	ln     net.Listener
	target string
	both   bool // stall what NATS sends too, as a frozen node would
	mu     sync.Mutex
	gate   chan struct{} // closed while not stalled
	conns  []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	return startStallProxy(t, target, false)
}

// newFrozenProxy is a stallProxy that stalls both ways.
func newFrozenProxy(t *testing.T, target string) *stallProxy {
	return startStallProxy(t, target, true)
}

func startStallProxy(t *testing.T, target string, both bool) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, both: both, gate: make(chan struct{})}
	close(p.gate)
	t.Cleanup(p.close)
	go p.accept()
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *stallProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		// The kernel's receive buffer, not a tiny one: far below the
		// loopback MSS, TCP's window updates stall once reading resumes.
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		if p.both {
			go p.forward(out, in)
		} else {
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
		go p.forward(in, out)
	}
}

// forward copies from in to out (the node's bytes to NATS, or with both
// the other way too). Bytes read wait at the gate before they are
// written, so nothing sent after stall returns gets through.
func (p *stallProxy) forward(in, out net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, err := out.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			out.Close()
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	close(p.gate)
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	for _, c := range p.conns {
		c.Close()
	}
}

// TestClusterStalledBusDoesNotBlockLoops: a node whose NATS link stops
// reading keeps serving its sessions. Its event loops never wait for NATS:
// says queued while the queue to the bus has room fail with unavailable
// when the log does not confirm them in time, the others at once when it
// is backed up, pings are answered throughout, and after the link reads
// again the node sequences says again.
func TestClusterStalledBusDoesNotBlockLoops(t *testing.T) {
	nats := natstest.Start(t)
	proxy := newStallProxy(t, strings.TrimPrefix(nats.URL(), "nats://"))
	cluster := fmt.Sprintf("stall%d", testNodeHeartbeat)
	a := startServer(t, Config{NATS: proxy.url(), NodeID: "a", ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1, busQueueLen: 64})
	startServer(t, Config{NATS: nats.URL(), NodeID: "b", ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat})
	alice := loggedIn(t, a, "alice")
	sayUntilSequenced(t, alice, "a owns the lobby now")

	proxy.stall()
	body := strings.Repeat("s", 4000)
	const says = 3000
	go func() {
		for i := 0; i < says; i++ {
			alice.send(&codec.Say{Body: body, Ref: fmt.Sprint(i)})
		}
		alice.send(&codec.Ping{})
	}()
	// Every say is answered and the ping too (a say the node forwarded
	// after losing the room may be answered after the pong).
	acked, refused, pong := 0, 0, false
	for acked+refused < says || !pong {
		ev := alice.until("answers while the bus is stalled", func(ev codec.Event) bool {
			return ev.Type == codec.TypeAck || ev.Type == codec.TypeError || ev.Type == codec.TypePong
		})
		switch {
		case ev.Type == codec.TypePong:
			pong = true
		case ev.Type == codec.TypeAck:
			acked++
		case ev.Code == codec.CodeUnavailable:
			refused++
		default:
			t.Fatalf("say answered %s: %s", ev.Code, ev.Message)
		}
	}
	t.Logf("stalled bus: %d says acknowledged, %d refused with unavailable; %d bus messages dropped", acked, refused, a.Stats().Cluster.Dropped)
	if refused == 0 {
		t.Fatal("no say was refused: the queue to the bus never backed up")
	}

	proxy.resume()
	resumed := time.Now()
	// Once the queue drains (and the lobby is claimed again, if node b
	// took the silent node for dead), says are sequenced again.
	deadline := time.Now().Add(4 * waitFor)
	for try := 0; ; try++ {
		ref := fmt.Sprint("after", try)
		alice.send(&codec.Say{Body: "back", Ref: ref})
		ev := alice.until("an answer", func(ev codec.Event) bool { return ev.Ref == ref })
		if ev.Type == codec.TypeAck && ev.Seq > 0 {
			t.Logf("sequenced again %v after the link read again (seq %d)", time.Since(resumed).Round(time.Millisecond), ev.Seq)
			break
		}
		if ev.Type != codec.TypeAck && ev.Code != codec.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the stall: %+v (stats %+v)", ev, a.Stats().Cluster)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
