package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/natsbroker"
	"parley/server/natstest"
)

// testNodeHeartbeat keeps the dead-node bound short in tests.
const testNodeHeartbeat = 100 * time.Millisecond

// deadBound is the bound docs/CLUSTER.md states for a dead node's users to
// leave elsewhere: DeadAfter silent heartbeats, plus one heartbeat for the
// sweep that notices. The test logs the time taken; it asserts the order
// of events, not the time, which a shared machine cannot promise.
const deadBound = (natsbroker.DeadAfter + 1) * testNodeHeartbeat

// startCluster starts count nodes on one NATS server.
func startCluster(t *testing.T, nats *natstest.NATS, count int) []*Server {
	t.Helper()
	return startClusterWith(t, nats, count, nil)
}

// startClusterWith is startCluster with tweak applied to every node's
// configuration.
func startClusterWith(t *testing.T, nats *natstest.NATS, count int, tweak func(*Config)) []*Server {
	t.Helper()
	cluster := fmt.Sprintf("t%d", time.Now().UnixNano())
	var nodes []*Server
	for i := range count {
		cfg := Config{
			NATS: nats.URL(), NodeID: fmt.Sprintf("n%d", i), ClusterName: cluster,
			NodeHeartbeat: testNodeHeartbeat,
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes = append(nodes, startServer(t, cfg))
	}
	// Every node knows every other before the test starts.
	for _, n := range nodes {
		eventually(t, "nodes hear each other", func() bool { return n.Stats().Cluster.Peers == count-1 })
	}
	return nodes
}

func TestClusterRoomOrder(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 3)
	const perSender = 30
	var clients []*tclient
	for i := range 6 {
		c := loggedIn(t, nodes[i%3], fmt.Sprintf("u%d", i))
		c.joinRoom("ops")
		clients = append(clients, c)
	}
	// Senders on every node talk at once.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func(c *tclient) {
			defer wg.Done()
			for j := range perSender {
				body := fmt.Sprintf("%s-%d", "m", j)
				_, _ = c.conn.Write(codec.MustEncode(&codec.Say{Room: "ops", Body: body, ID: "id-" + body, Ref: fmt.Sprintf("s%d", j)}))
			}
		}(clients[i])
	}
	wg.Wait()
	const total = 3 * perSender
	var views []map[uint64]string
	for i, c := range clients {
		view := map[uint64]string{}
		var last uint64
		for len(view) < total {
			ev := c.until(fmt.Sprintf("message %d of %d for client %d", len(view)+1, total, i), func(ev codec.Event) bool {
				return ev.Type == codec.TypeAck || ev.Type == codec.TypeMsg && ev.Room == "ops" || ev.Type == codec.TypeError
			})
			switch ev.Type {
			case codec.TypeError:
				t.Fatalf("client %d: error %s %s", i, ev.Code, ev.Message)
			case codec.TypeAck:
				if ev.Seq == 0 {
					t.Fatalf("client %d: say %s acked without a seq: its node lost NATS", i, ev.Ref)
				}
				view[ev.Seq] = fmt.Sprintf("u%d:%s", i, ev.Ref)
			case codec.TypeMsg:
				if ev.Seq <= last {
					t.Fatalf("client %d: seq %d after %d", i, ev.Seq, last)
				}
				if ev.ID != "id-"+ev.Body {
					t.Fatalf("client %d: message %q arrived with id %q", i, ev.Body, ev.ID)
				}
				last = ev.Seq
				view[ev.Seq] = ev.From + ":s" + ev.Body[len("m-"):]
			}
		}
		for seq := uint64(1); seq <= total; seq++ {
			if _, ok := view[seq]; !ok {
				t.Fatalf("client %d: seq %d missing (got %d seqs)", i, seq, len(view))
			}
		}
		views = append(views, view)
	}
	for i := 1; i < len(views); i++ {
		for seq, what := range views[0] {
			if views[i][seq] != what {
				t.Fatalf("seq %d is %q for client 0 but %q for client %d", seq, what, views[i][seq], i)
			}
		}
	}
}

func TestClusterDirectMessages(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 3)
	alice := loggedIn(t, nodes[0], "alice")
	bob := loggedIn(t, nodes[1], "Bob")

	alice.send(&codec.DM{To: "bob", Body: "hi bob", Ref: "d1"})
	alice.untilAck("d1")
	got := bob.until("the dm", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.To != "" })
	if got.From != "alice" || got.To != "Bob" || got.Body != "hi bob" {
		t.Fatalf("bob got %+v", got)
	}
	bob.send(&codec.DM{To: "ALICE", Body: "hi", Ref: "d2"})
	bob.untilAck("d2")
	alice.until("the reply", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.From == "Bob" })

	alice.send(&codec.DM{To: "nobody", Body: "hello?", Ref: "d3"})
	if ev := alice.until("an answer", func(ev codec.Event) bool { return ev.Ref == "d3" }); ev.Code != codec.CodeNoSuchUser {
		t.Fatalf("dm to nobody: %+v", ev)
	}

	// The nick is taken on another node, case-insensitively.
	c := dial(t, nodes[2])
	c.send(&codec.Login{Nick: "BOB", Ref: "l"})
	c.expectError(codec.CodeNickTaken)
	c.login("carol")
}

func TestClusterWhoAndPresence(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 3)
	alice := loggedIn(t, nodes[0], "alice")
	bob := loggedIn(t, nodes[1], "bob")
	loggedIn(t, nodes[2], "carol")
	eventually(t, "node 2 knows three users", func() bool { return nodes[2].Stats().Cluster.Users == 3 })
	dave := dial(t, nodes[2])
	if w := dave.login("dave"); w.Online != 3 {
		t.Fatalf("welcome online %d, want 3", w.Online)
	}
	dave.send(&codec.Who{Ref: "w"})
	if ev := dave.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers }); ev.Count != 4 || fmt.Sprint(ev.Nicks) != "[alice bob carol dave]" {
		t.Fatalf("who: %+v", ev)
	}

	// Joins and leaves cross nodes.
	bobNode := natsBroker(nodes[1])
	subsBefore := bobNode.Subscriptions()
	alice.joinRoom("x")
	bob.joinRoom("x")
	if n := bobNode.Subscriptions(); n != subsBefore+1 {
		t.Fatalf("bob's node has %d subscriptions after joining x, want %d", n, subsBefore+1)
	}
	if ev := alice.until("bob joins x", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Room == "x" }); ev.Nick != "bob" {
		t.Fatalf("alice saw %+v", ev)
	}
	bob.send(&codec.Who{Room: "x", Ref: "wx"})
	if ev := bob.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers }); ev.Count != 2 || fmt.Sprint(ev.Nicks) != "[alice bob]" {
		t.Fatalf("who x from a member: %+v", ev)
	}
	dave.send(&codec.Who{Room: "x", Ref: "wx"}) // node 2 has nobody in x
	if ev := dave.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers }); ev.Count != 2 || fmt.Sprint(ev.Nicks) != "[alice bob]" {
		t.Fatalf("who x from elsewhere: %+v", ev)
	}
	// Interest-based routing: a node follows a room only while it has
	// members there.
	if nodes[2].hub.HasRoom("x") {
		t.Fatal("node 2 follows room x without members in it")
	}
	bob.send(&codec.Leave{Room: "x", Ref: "lx"})
	bob.untilAck("lx")
	eventually(t, "node 1 to stop following room x after its last member left", func() bool {
		return !nodes[1].hub.HasRoom("x") && bobNode.Subscriptions() == subsBefore
	})
	if ev := alice.until("bob leaves x", func(ev codec.Event) bool { return ev.Type == codec.TypeLeft && ev.Room == "x" }); ev.Nick != "bob" || ev.Reason != codec.ReasonLeave {
		t.Fatalf("alice saw %+v", ev)
	}
	// A quit releases the nick everywhere.
	bob.send(&codec.Quit{})
	bob.expectBye(codec.ReasonQuit)
	if ev := alice.until("bob quits", func(ev codec.Event) bool { return ev.Type == codec.TypeLeft && ev.Room == codec.Lobby }); ev.Nick != "bob" || ev.Reason != codec.ReasonQuit {
		t.Fatalf("alice saw %+v", ev)
	}
	eventually(t, "bob's nick is free", func() bool { return nodes[2].Stats().Cluster.Users == 3 })
	loggedIn(t, nodes[2], "bob")
}

func TestClusterNodeDeath(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 3)
	alice := loggedIn(t, nodes[0], "alice")
	bob := loggedIn(t, nodes[1], "bob")
	victim := loggedIn(t, nodes[2], "victim")
	for _, c := range []*tclient{victim, alice, bob} {
		c.joinRoom("r")
	}
	// The victim speaks first, so its node owns the room.
	victim.send(&codec.Say{Room: "r", Body: "one", Ref: "s1"})
	if ack := victim.untilAck("s1"); ack.Seq != 1 {
		t.Fatalf("first seq %d", ack.Seq)
	}
	bob.send(&codec.Say{Room: "r", Body: "two", Ref: "s2"})
	if ack := bob.untilAck("s2"); ack.Seq != 2 {
		t.Fatalf("second seq %d", ack.Seq)
	}
	alice.until("two", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Seq == 2 })
	// In "solo" only the victim speaks: no other node sees its seq, so
	// the next owner must read it from the stream.
	victim.joinRoom("solo")
	for i := 1; i <= 2; i++ {
		ref := fmt.Sprintf("solo%d", i)
		victim.send(&codec.Say{Room: "solo", Body: "alone", Ref: ref})
		victim.untilAck(ref)
	}

	killed := time.Now()
	natsBroker(nodes[2]).Kill()
	stopNow(t, nodes[2])
	left := map[string]bool{}
	for len(left) < 2 {
		ev := alice.until("victim leaves", func(ev codec.Event) bool { return ev.Type == codec.TypeLeft })
		if ev.Nick != "victim" || ev.Reason != codec.ReasonDisconnect || left[ev.Room] {
			t.Fatalf("alice saw %+v", ev)
		}
		left[ev.Room] = true
	}
	took := time.Since(killed)
	t.Logf("victim left everywhere %v after the kill (bound %v)", took, deadBound)

	// Ownership moves; the sequence continues without reuse.
	bob.send(&codec.Say{Room: "r", Body: "three", Ref: "s3"})
	if ack := bob.untilAck("s3"); ack.Seq != 3 {
		t.Fatalf("after the owner died: seq %d, want 3", ack.Seq)
	}
	if ev := alice.until("three", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "r" }); ev.Seq != 3 || ev.Body != "three" {
		t.Fatalf("alice got %+v", ev)
	}
	alice.joinRoom("solo")
	alice.send(&codec.Say{Room: "solo", Body: "anyone?", Ref: "solo3"})
	if ack := alice.untilAck("solo3"); ack.Seq != 3 {
		t.Fatalf("solo after its owner died: seq %d, want 3 (read from the stream)", ack.Seq)
	}
	// The dead node's nick is free.
	loggedIn(t, nodes[0], "victim")
}

func TestClusterNATSRestart(t *testing.T) {
	nats := natstest.Start(t)
	nodes := startCluster(t, nats, 2)
	alice := loggedIn(t, nodes[0], "alice")
	bob := loggedIn(t, nodes[1], "bob")
	alice.send(&codec.Say{Body: "before", Ref: "s1"})
	first := alice.untilAck("s1").Seq
	bob.until("before", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Seq == first })

	nats.Stop()
	for _, n := range nodes {
		eventually(t, "degraded", func() bool { return !n.Stats().Cluster.Connected })
	}
	// Down: local rooms go on without a seq; logins and remote DMs wait.
	local := loggedInFails(t, nodes[0], "carol")
	alice.send(&codec.Say{Body: "during", Ref: "s2"})
	if ack := alice.untilAck("s2"); ack.Seq != 0 {
		t.Fatalf("unsequenced say acked with seq %d", ack.Seq)
	}
	alice.send(&codec.DM{To: "bob", Body: "there?", Ref: "d1"})
	if ev := alice.until("answer", func(ev codec.Event) bool { return ev.Ref == "d1" }); ev.Code != codec.CodeUnavailable {
		t.Fatalf("dm while down: %+v", ev)
	}
	_ = local

	nats.Start()
	for _, n := range nodes {
		eventually(t, "reconnected", func() bool { return n.Stats().Cluster.Connected })
	}
	second := sayUntilSequenced(t, bob, "after")
	if second != first+1 {
		t.Fatalf("seq after the restart %d, want %d", second, first+1)
	}
	if ev := alice.until("after", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "after" }); ev.Seq != second {
		t.Fatalf("alice got %+v", ev)
	}
	alice.send(&codec.DM{To: "bob", Body: "back", Ref: "d2"})
	alice.untilAck("d2")
	loggedIn(t, nodes[1], "carol")
}

// sayUntilSequenced says body in the lobby until it is sequenced. Right
// after an outage the room's owner may not be subscribed yet: NATS answers
// that nobody listens, and the say fails with unavailable, unsequenced.
func sayUntilSequenced(t *testing.T, c *tclient, body string) uint64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for try := 0; time.Now().Before(deadline); try++ {
		ref := fmt.Sprintf("retry%d", try)
		c.send(&codec.Say{Body: body, Ref: ref})
		ev := c.until("an answer", func(ev codec.Event) bool { return ev.Ref == ref })
		if ev.Type == codec.TypeAck {
			return ev.Seq
		}
		if ev.Code != codec.CodeUnavailable || !strings.Contains(ev.Message, "does not answer") {
			t.Fatalf("say: %+v", ev)
		}
	}
	t.Fatal("say not sequenced within the deadline")
	return 0
}

// loggedInFails tries to log in while the bus is down.
func loggedInFails(t *testing.T, srv *Server, nick string) *tclient {
	t.Helper()
	c := dial(t, srv)
	c.send(&codec.Login{Nick: nick, Ref: "l"})
	c.expectError(codec.CodeUnavailable)
	return c
}

// natsBroker is a cluster node's broker.
func natsBroker(srv *Server) *natsbroker.Broker { return srv.hub.Broker().(*natsbroker.Broker) }

// stopNow stops a server without waiting for its clients.
func stopNow(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
