package natsbroker

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/internal/poll"
	"parley/server/broker"
	"parley/server/natstest"
)

// The broker is tested here against a fake hub (fakeHandler), the mirror
// of server/hub's tests against a fake broker: two brokers on one real
// NATS server with JetStream, each with a handler that records what the
// cluster tells it and sequences the rooms its broker says it owns.

const waitFor = 10 * time.Second

// delivered is one message a handler got, in the order it got them.
type delivered struct {
	seq  uint64
	body string
}

// fakeHandler is a hub as a broker sees it: it sequences owned rooms (a
// counter per room, the frame is the body), and records deliveries,
// presence, node deaths and direct messages. Safe from any goroutine.
type fakeHandler struct {
	node string
	b    *Broker

	mu        sync.Mutex
	owned     map[string]uint64 // room → last seq sequenced
	delivered map[string][]delivered
	joined    map[string][]broker.User
	left      []string
	downs     []string
	dms       []string
	local     map[string]string // users here: key → nick
	audited   []codec.AuditEntry
}

func newFakeHandler(node string) *fakeHandler {
	return &fakeHandler{node: node, owned: map[string]uint64{}, delivered: map[string][]delivered{},
		joined: map[string][]broker.User{}, local: map[string]string{}}
}

func (f *fakeHandler) Sequence(m broker.Message) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock() // the room's lock: Append must not block under it
	last, ok := f.owned[m.Room]
	if !ok {
		return 0, broker.ErrNotOwner
	}
	seq := last + 1
	f.owned[m.Room] = seq
	if f.b.Append(m, seq, []byte(m.Body)) {
		f.delivered[m.Room] = append(f.delivered[m.Room], delivered{seq, m.Body})
	}
	return seq, nil
}

func (f *fakeHandler) Own(room string, last uint64) {
	f.mu.Lock()
	f.owned[room] = last
	f.mu.Unlock()
}

func (f *fakeHandler) Disown(room string) {
	f.mu.Lock()
	delete(f.owned, room)
	f.mu.Unlock()
}

func (f *fakeHandler) Deliver(room string, seq uint64, _ broker.Replier, frame []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.delivered[room]
	if len(got) > 0 && seq <= got[len(got)-1].seq {
		return false
	}
	f.delivered[room] = append(got, delivered{seq, string(frame)})
	return true
}

func (f *fakeHandler) RemoteJoined(room string, u broker.User) {
	f.mu.Lock()
	f.joined[room] = append(f.joined[room], u)
	f.mu.Unlock()
}

func (f *fakeHandler) RemoteLeft(room string, u broker.User, reason codec.Reason) {
	f.mu.Lock()
	f.left = append(f.left, room+" "+u.Key+" "+string(reason))
	f.mu.Unlock()
}

func (f *fakeHandler) HoldTaken(string) {}

func (f *fakeHandler) NodeDown(node string) int {
	f.mu.Lock()
	f.downs = append(f.downs, node)
	f.mu.Unlock()
	return 0
}

func (f *fakeHandler) DeliverDM(dm broker.DirectMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.local[dm.ToKey]; !ok {
		return codec.NotOnline(codec.ErrNoSuchUser, dm.ToKey)
	}
	f.dms = append(f.dms, dm.From+"→"+dm.ToKey+": "+dm.Body)
	return nil
}

func (f *fakeHandler) LocalMembers(string) []broker.User { return nil }
func (f *fakeHandler) LocalRooms() []string              { return nil }
func (f *fakeHandler) RulesChanged(string, []byte)       {}
func (f *fakeHandler) Audited(e codec.AuditEntry) {
	f.mu.Lock()
	f.audited = append(f.audited, e)
	f.mu.Unlock()
}
func (f *fakeHandler) NoticedUser(string, []byte)          {}
func (f *fakeHandler) Noticed(broker.RoomNotice)           {}
func (f *fakeHandler) LocalRoomCounts() []broker.RoomCount { return nil }
func (f *fakeHandler) AccountChanged([]byte)               {}

func (f *fakeHandler) LocalNick(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	nick, ok := f.local[key]
	return nick, ok
}

// replies records the answers to says. Safe from any goroutine.
type replies struct {
	mu   sync.Mutex
	seqs map[string]uint64
	errs map[string]error
}

func (r *replies) SayDone(ref string, seq uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[ref] = err
		return
	}
	r.seqs[ref] = seq
}

// node is a broker started with its fake hub.
type node struct {
	b *Broker
	h *fakeHandler
}

func startNode(t *testing.T, url, id string) *node {
	t.Helper()
	h := newFakeHandler(id)
	b := New(Config{URL: url, NodeID: id, ClusterName: "test", Heartbeat: 100 * time.Millisecond, LogLen: 100})
	h.b = b
	if err := b.Start(h); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(b.Stop)
	return &node{b: b, h: h}
}

// follow has n follow room and waits until it does.
func (n *node) follow(t *testing.T, room string) {
	t.Helper()
	errc := make(chan error, 1)
	n.b.Follow(room, func(_ []broker.User, _ uint64, err error) { errc <- err })
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("%s follows %s: %v", n.h.node, room, err)
		}
	case <-time.After(waitFor):
		t.Fatalf("%s never followed %s", n.h.node, room)
	}
}

// claim has n claim nick and returns the answer.
func (n *node) claim(t *testing.T, nick string) error {
	t.Helper()
	errc := make(chan error, 1)
	n.b.ClaimNick(broker.NickClaim{Key: nick, Nick: nick}, func(err error) { errc <- err })
	select {
	case err := <-errc:
		return err
	case <-time.After(waitFor):
		t.Fatalf("%s's claim of %s never answered", n.h.node, nick)
		return nil
	}
}

// TestOneSequenceAcrossNodes: says from both nodes into one room are
// sequenced by one owner, each seq given once, and delivered to both
// nodes' hubs in the same order; every say is answered with its seq, and
// the room's log holds them all.
func TestOneSequenceAcrossNodes(t *testing.T) {
	nats := natstest.Start(t)
	a, b := startNode(t, nats.URL(), "a"), startNode(t, nats.URL(), "b")
	a.follow(t, "r")
	b.follow(t, "r")
	rep := &replies{seqs: map[string]uint64{}, errs: map[string]error{}}
	const n = 20
	for i := range n {
		from := a
		if i%2 == 1 {
			from = b
		}
		ref := fmt.Sprint("say", i)
		m := broker.Message{Room: "r", Key: from.h.node, Nick: from.h.node, Body: ref, Sender: rep, Ref: ref}
		if _, pending, err := from.b.Say(m, rep, ref); err != nil || !pending {
			t.Fatalf("say %d: pending %v, %v", i, pending, err)
		}
	}
	// Every say is answered: with its seq, or, when the machine is slow
	// enough that its message did not come back within opTimeout, with
	// unavailable, which says it may have been stored. The log decides:
	// both nodes deliver what it holds, in its order.
	poll.Until(t, waitFor, "every say answered", func() error {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		for ref, err := range rep.errs {
			if !errors.Is(err, codec.ErrUnavailable) {
				t.Fatalf("say %s refused: %v", ref, err)
			}
		}
		if len(rep.seqs)+len(rep.errs) < n {
			return fmt.Errorf("%d of %d answered", len(rep.seqs)+len(rep.errs), n)
		}
		return nil
	})
	if len(rep.errs) > 0 {
		t.Logf("%d says not confirmed in time (may have been stored): %v", len(rep.errs), rep.errs)
	}
	logged := make(chan []broker.Logged, 1)
	poll.Until(t, waitFor, "the log to settle", func() error {
		a.b.ReadLog("r", 0, 100, func(l []broker.Logged, err error) {
			if err != nil {
				t.Error(err)
			}
			logged <- l
		})
		if l := <-logged; len(l) < len(rep.seqs) || len(l) > n {
			return fmt.Errorf("the log holds %d messages, %d acked", len(l), len(rep.seqs))
		}
		return nil
	})
	a.b.ReadLog("r", 0, 100, func(l []broker.Logged, _ error) { logged <- l })
	stored := <-logged
	if len(stored) == 0 || stored[0].Seq != 1 || stored[len(stored)-1].Seq != uint64(len(stored)) {
		t.Fatalf("the log holds %d messages, not numbered 1 to %d", len(stored), len(stored))
	}
	for _, nd := range []*node{a, b} {
		poll.Until(t, waitFor, nd.h.node+" delivered everything", func() error {
			nd.h.mu.Lock()
			defer nd.h.mu.Unlock()
			if got := len(nd.h.delivered["r"]); got < len(stored) {
				return fmt.Errorf("%d of %d", got, len(stored))
			}
			return nil
		})
	}
	a.h.mu.Lock()
	b.h.mu.Lock()
	da, db := a.h.delivered["r"], b.h.delivered["r"]
	a.h.mu.Unlock()
	b.h.mu.Unlock()
	for i := range min(len(da), len(db)) { // a late-stored say may reach one node first
		if da[i].seq != uint64(i+1) || da[i] != db[i] {
			t.Fatalf("deliveries differ or skip at %d:\na %v\nb %v", i, da, db)
		}
	}
	bySeq := map[uint64]string{}
	for _, d := range da {
		bySeq[d.seq] = d.body
	}
	for ref, seq := range rep.seqs {
		if bySeq[seq] != ref {
			t.Fatalf("say %s answered with seq %d, which holds %q", ref, seq, bySeq[seq])
		}
	}
}

// TestNickClaimedOnce: a nick claimed on one node is refused on the
// other while it is held there, and free once released.
func TestNickClaimedOnce(t *testing.T) {
	nats := natstest.Start(t)
	a, b := startNode(t, nats.URL(), "a"), startNode(t, nats.URL(), "b")
	if err := a.claim(t, "amy"); err != nil {
		t.Fatal(err)
	}
	if err := b.claim(t, "amy"); !errors.Is(err, codec.ErrNickTaken) {
		t.Fatalf("b's claim of a's nick = %v, want nick_taken", err)
	}
	a.b.ReleaseNick("amy", "")
	poll.Until(t, waitFor, "b to claim amy once a released it", func() error { return b.claim(t, "amy") })
}

// TestPresenceDMsAndDeathCross: a member's join and leave on one node
// reach the other's hub, a direct message reaches the node its recipient
// is on (and one to nobody is refused), and a node that dies is reported
// down within a few heartbeats.
func TestPresenceDMsAndDeathCross(t *testing.T) {
	nats := natstest.Start(t)
	a, b := startNode(t, nats.URL(), "a"), startNode(t, nats.URL(), "b")
	a.follow(t, "r")
	b.follow(t, "r")
	a.b.Joined("r", broker.User{Key: "amy", Nick: "amy"})
	poll.Until(t, waitFor, "amy's join on b", func() error {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		if j := b.h.joined["r"]; len(j) != 1 || j[0].Key != "amy" || j[0].Node != "a" {
			return fmt.Errorf("b has %+v", j)
		}
		return nil
	})
	a.b.Left("r", "amy", "amy", codec.ReasonQuit)
	poll.Until(t, waitFor, "amy's leave on b", func() error {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		if strings.Join(b.h.left, ",") != "r amy quit" {
			return fmt.Errorf("b has %v", b.h.left)
		}
		return nil
	})

	b.h.mu.Lock()
	b.h.local["bob"] = "bob"
	b.h.mu.Unlock()
	if err := b.claim(t, "bob"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, waitFor, "a DM from a to bob on b", func() error {
		errc := make(chan error, 1)
		a.b.SendDM(broker.DirectMessage{ToKey: "bob", ToNick: "bob", From: "amy", Body: "hi", TS: time.Now().UnixMilli()}, func(err error) { errc <- err })
		return <-errc // no_such_user until a's directory has bob
	})
	b.h.mu.Lock()
	dms := strings.Join(b.h.dms, ",")
	b.h.mu.Unlock()
	if !strings.HasPrefix(dms, "amy→bob: hi") {
		t.Fatalf("b's hub got %q", dms)
	}
	errc := make(chan error, 1)
	a.b.SendDM(broker.DirectMessage{ToKey: "nobody", ToNick: "nobody", From: "amy", Body: "hi", TS: time.Now().UnixMilli()}, func(err error) { errc <- err })
	if err := <-errc; !errors.Is(err, codec.ErrNoSuchUser) {
		t.Fatalf("a DM to nobody = %v, want no_such_user", err)
	}

	a.b.Kill()
	poll.Until(t, waitFor, "a reported down on b", func() error {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		if len(b.h.downs) != 1 || b.h.downs[0] != "a" {
			b.b.mu.Lock()
			defer b.b.mu.Unlock()
			return fmt.Errorf("b has downs %v, peers %v, since %v, stopped %v", b.h.downs, b.b.peers, b.b.since, b.b.stopped)
		}
		return nil
	})
}

// TestAuditKeepsAnEndOnce: every node sweeps a timed limit's end and logs
// it; the audit stream keeps it once, numbered, and any other entry as
// often as it is appended, in each node's order.
func TestAuditKeepsAnEndOnce(t *testing.T) {
	nats := natstest.Start(t)
	a, b := startNode(t, nats.URL(), "a"), startNode(t, nats.URL(), "b")
	end := codec.AuditEntry{Action: "ban_end", Room: "r", By: "server", Target: "eve", Until: 1796000000000}
	kick := codec.AuditEntry{Action: "kick", Room: "r", By: "amy", Target: "eve"}
	for _, n := range []*node{a, b} {
		n.b.AppendAudit(end, nil)
		n.b.AppendAudit(end, nil)
		n.b.AppendAudit(kick, nil)
		n.b.AppendAudit(codec.AuditEntry{Action: "marker", By: n.h.node}, nil) // after its node's others
	}
	var got []codec.AuditEntry
	poll.Until(t, waitFor, "both markers read back", func() error {
		a.h.mu.Lock()
		got = append(got[:0], a.h.audited...)
		a.h.mu.Unlock()
		markers := 0
		for _, e := range got {
			if e.Action == "marker" {
				markers++
			}
		}
		if markers < 2 {
			return fmt.Errorf("%d markers in %d entries", markers, len(got))
		}
		return nil
	})
	counts := map[string]int{}
	var last uint64
	for _, e := range got {
		if e.Seq <= last {
			t.Fatalf("seqs not increasing: %+v", got)
		}
		last = e.Seq
		counts[e.Action]++
	}
	if counts["ban_end"] != 1 || counts["kick"] != 2 {
		t.Fatalf("kept %v, want ban_end once and kick twice", counts)
	}
}
