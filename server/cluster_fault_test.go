package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"parley/codec"
	"parley/server/natstest"
)

// chatter is a member of a room on one node for the fault tests. It reads
// every frame as it comes and records the room's sequenced messages (and
// gap notices) in the order received, and the answer to each of its says.
type chatter struct {
	t    *testing.T
	name string
	room string
	c    *tclient

	mu     sync.Mutex
	got    []codec.Event     // the room's msg frames with a seq, gap notices and acks with a seq, in order
	acks   map[string]uint64 // ref → seq of an acknowledged say
	failed map[string]string // ref → the error code of a refused say
	sent   map[string]string // ref → body
	seen   chan struct{}     // signalled on every frame recorded
	rounds int               // keepSaying calls so far
	bye    codec.Reason      // the bye the server closed it with, if any
}

// pongFrame answers the server's ping.
var pongFrame = codec.MustEncode(&codec.Pong{})

// newChatter logs nick in on srv, joins room (unless it is the lobby) and
// starts recording.
func newChatter(t *testing.T, srv *Server, nick, room string) *chatter {
	t.Helper()
	c := loggedIn(t, srv, nick)
	if room != codec.Lobby {
		c.joinRoom(room)
	}
	ch := &chatter{t: t, name: nick, room: room, c: c, acks: map[string]uint64{}, failed: map[string]string{},
		sent: map[string]string{}, seen: make(chan struct{}, 1)}
	go ch.record()
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(ch.describe())
		}
	})
	return ch
}

// describe sums up what the chatter saw, for a failed test.
func (ch *chatter) describe() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	codes := map[string]int{}
	for _, code := range ch.failed {
		codes[code]++
	}
	var last []string
	for _, ev := range ch.got[max(0, len(ch.got)-5):] {
		last = append(last, fmt.Sprintf("%s:%d", ev.Type, ev.Seq))
	}
	return fmt.Sprintf("%s: sent %d, acked %d, failed %v, received %d, last %v, bye %q", ch.name, len(ch.sent), len(ch.acks), codes, len(ch.got), last, ch.bye)
}

func (ch *chatter) record() {
	for {
		var ev codec.Event
		select {
		case ev = <-ch.c.events:
		case <-ch.c.done:
			return
		}
		if ev.Type == codec.TypePing {
			// A chatter answers pings as any client does: one that only
			// listens, and lives past the idle timeout (a fault test on a
			// loaded machine), was closed with bye timeout mid-test.
			_, _ = ch.c.conn.Write(pongFrame)
			continue
		}
		ch.mu.Lock()
		switch {
		case ev.Type == codec.TypeBye:
			ch.bye = ev.Reason
		case ev.Type == codec.TypeMsg && ev.Room == ch.room && ev.Seq > 0, ev.Type == codec.TypeGap:
			ch.got = append(ch.got, ev)
		case ev.Type == codec.TypeAck && ch.sent[ev.Ref] != "":
			ch.acks[ev.Ref] = ev.Seq
			if ev.Seq > 0 {
				ch.got = append(ch.got, ev)
			}
		case ev.Type == codec.TypeError && ch.sent[ev.Ref] != "":
			ch.failed[ev.Ref] = string(ev.Code)
		}
		ch.mu.Unlock()
		select {
		case ch.seen <- struct{}{}:
		default:
		}
	}
}

// say sends body with ref; the answer is recorded.
func (ch *chatter) say(ref, body string) {
	ch.mu.Lock()
	ch.sent[ref] = body
	ch.mu.Unlock()
	_, _ = ch.c.conn.Write(codec.MustEncode(&codec.Say{Room: ch.room, Body: body, Ref: ref}))
}

// answered reports whether ref has its answer, and its seq if acked.
func (ch *chatter) answered(ref string) (seq uint64, acked, done bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	seq, acked = ch.acks[ref]
	_, failed := ch.failed[ref]
	return seq, acked, acked || failed
}

// sayAcked says until one say is acknowledged with a seq (each refused one
// is tried again) and returns the seq and the body. Its bound is four
// waits: on a loaded machine a room's first say may find the cluster's
// claim answering unavailable after its 2 s timeout more than once.
func (ch *chatter) sayAcked(prefix string) (uint64, string) {
	ch.t.Helper()
	deadline := time.Now().Add(4 * waitFor)
	for try := 0; time.Now().Before(deadline); try++ {
		ref := fmt.Sprintf("%s-%d", prefix, try)
		ch.say(ref, ref)
		for {
			seq, acked, done := ch.answered(ref)
			if done && acked && seq > 0 {
				return seq, ref
			}
			if done || time.Now().After(deadline) {
				break
			}
			ch.wait()
		}
	}
	ch.t.Fatalf("%s: no say acknowledged with a seq within the deadline", ch.name)
	return 0, ""
}

// wait returns when a frame was recorded, or after a moment.
func (ch *chatter) wait() {
	select {
	case <-ch.seen:
	case <-time.After(10 * time.Millisecond):
	}
}

// keepSaying says in the background, a few in flight at a time, until
// stop is closed; done is closed when it has returned.
func (ch *chatter) keepSaying(stop <-chan struct{}) (done chan struct{}) {
	done = make(chan struct{})
	ch.mu.Lock()
	ch.rounds++
	name := fmt.Sprintf("%s-steady%d", ch.name, ch.rounds) // refs unique across calls
	ch.mu.Unlock()
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ch.c.done:
				return
			default:
			}
			ref := fmt.Sprintf("%s-%d", name, i)
			ch.say(ref, ref)
			if i >= 4 {
				old := fmt.Sprintf("%s-%d", name, i-4)
				for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); {
					if _, _, done := ch.answered(old); done {
						break
					}
					ch.wait()
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return done
}

// snapshot returns what the chatter recorded so far.
func (ch *chatter) snapshot() (got []codec.Event, acks map[string]uint64, sent map[string]string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	acks, sent = map[string]uint64{}, map[string]string{}
	for k, v := range ch.acks {
		acks[k] = v
	}
	for k, v := range ch.sent {
		sent[k] = v
	}
	return append([]codec.Event(nil), ch.got...), acks, sent
}

// history checks what the chatters saw against the room's log: the log has
// every seq once and every acknowledged say under its seq, no two
// observations give one seq two bodies, and each chatter in whole saw the
// room's seqs without a gap or a repeat, in order, from its first to the
// log's last (whole chatters stayed connected to the end).
func history(t *testing.T, logOf *Server, room string, all, whole []*chatter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stored, err := natsBroker(logOf).Dump(ctx, room, 1<<20)
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	logged := map[uint64]string{}
	var last uint64
	for _, s := range stored {
		var ev codec.Event
		if err := codec.DecodeEvent(s.Frame[4:], &ev); err != nil {
			t.Fatalf("log entry %d: %v", s.Seq, err)
		}
		if _, twice := logged[s.Seq]; twice {
			t.Fatalf("the log has seq %d twice", s.Seq)
		}
		if s.Seq <= last {
			t.Fatalf("the log has seq %d after %d", s.Seq, last)
		}
		logged[s.Seq], last = ev.Body, s.Seq
	}
	acked := 0
	for _, ch := range all {
		got, acks, sent := ch.snapshot()
		for ref, seq := range acks {
			if seq == 0 {
				continue // unsequenced, while the bus was down
			}
			acked++
			if logged[seq] != sent[ref] {
				t.Fatalf("%s's say %q was acked with seq %d, which the log has as %q", ch.name, sent[ref], seq, logged[seq])
			}
		}
		for _, ev := range got {
			if ev.Type == codec.TypeMsg && logged[ev.Seq] != ev.Body {
				t.Fatalf("%s received seq %d as %q, which the log has as %q", ch.name, ev.Seq, ev.Body, logged[ev.Seq])
			}
		}
	}
	for _, ch := range whole {
		got, _, _ := ch.snapshot()
		if len(got) == 0 {
			t.Fatalf("%s received nothing", ch.name)
		}
		for i, ev := range got {
			if ev.Type == codec.TypeGap {
				t.Fatalf("%s got a gap notice %d-%d", ch.name, ev.First, ev.Last)
			}
			if i > 0 && ev.Seq != got[i-1].Seq+1 {
				t.Fatalf("%s received seq %d after %d", ch.name, ev.Seq, got[i-1].Seq)
			}
		}
		if end := got[len(got)-1].Seq; end != last {
			t.Fatalf("%s's last seq is %d, the log's %d", ch.name, end, last)
		}
	}
	t.Logf("log: %d messages up to seq %d; %d says acked", len(stored), last, acked)
}

// settled waits until every whole chatter has received the log's last seq.
func settled(t *testing.T, logOf *Server, room string, whole []*chatter) {
	t.Helper()
	// behind is how many of the log's messages the members lack, summed,
	// or -1 while the log cannot be read: reaches fails only when that
	// stops shrinking for waitFor, so a node catching up slowly on a
	// loaded machine is no failure, and one that is stuck is.
	behind := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		last, err := natsBroker(logOf).LastSeq(ctx, room)
		if err != nil || last == 0 {
			return -1
		}
		n := 0
		for _, ch := range whole {
			got, _, _ := ch.snapshot()
			switch {
			case len(got) == 0:
				n += int(last)
			case got[len(got)-1].Seq < last:
				n += int(last - got[len(got)-1].Seq)
			}
		}
		return n
	}
	defer func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			end, err := natsBroker(logOf).LastSeq(ctx, room)
			last, catchingUp, held := natsBroker(logOf).Cursor(room)
			seq, _ := logOf.hub.RoomSeq(room)
			m := logOf.hub.Metrics()
			t.Logf("log's last seq %d (%v); the node's cursor: stream seq %d, catching up %v, %d held; its hub: room seq %d, %d skipped, %d gaps, %d bytes unsent",
				end, err, last, catchingUp, held, seq, m.Skipped, m.Gaps, m.OutboundBytes)
		}
	}()
	reaches(t, "every member has the log's last message (messages missing)", 0, behind)
}

// testLogLen keeps the whole of a fault test's room in its log, so that
// every acknowledged say can be found there.
const testLogLen = 1 << 20

// TestClusterOwnerDeathGivesNoSeqTwice kills a room's owner (its bus link
// dropped without a word, then its server) right after it acknowledged a
// say, 20 times, while two other nodes keep saying: no seq is ever given
// to two messages, every acknowledged say is in the log under its seq, and
// the members who stayed saw every seq once, in order.
func TestClusterOwnerDeathGivesNoSeqTwice(t *testing.T) {
	nats := natstest.Start(t)
	cluster := fmt.Sprintf("t%d", time.Now().UnixNano())
	logger := failureLog(t)
	next := 0
	type node struct {
		srv      *Server
		speaker  *chatter
		stop     chan struct{}
		stopped  chan struct{}
		listener *chatter
	}
	start := func() *node {
		id := fmt.Sprintf("n%d", next)
		next++
		srv := startServer(t, Config{NATS: nats.URL(), NodeID: id, ClusterName: cluster, NodeHeartbeat: testNodeHeartbeat, RateLimit: -1, busLogLen: testLogLen, Logger: logger})
		nd := &node{srv: srv, stop: make(chan struct{})}
		nd.speaker = newChatter(t, srv, "s"+id, codec.Lobby)
		nd.listener = newChatter(t, srv, "l"+id, codec.Lobby)
		return nd
	}
	// The witness never speaks and is never killed: its members saw it all.
	witness := start()
	nodes := []*node{start(), start()}
	all := []*chatter{witness.speaker, witness.listener}
	for _, nd := range nodes {
		all = append(all, nd.speaker, nd.listener)
	}
	nodes[0].speaker.sayAcked("first") // nodes[0] owns the lobby
	for _, nd := range nodes {
		nd.stopped = nd.speaker.keepSaying(nd.stop)
	}
	for round := range 20 {
		owner := -1
		eventually(t, "a node owns the lobby", func() bool {
			for i, nd := range nodes {
				if natsBroker(nd.srv).Owns(codec.Lobby) {
					owner = i
					return true
				}
			}
			return false
		})
		victim := nodes[owner]
		close(victim.stop)
		<-victim.stopped
		victim.speaker.sayAcked(fmt.Sprintf("last-%d", round))
		if round%2 == 1 { // at random moments: some right away, some a little later
			time.Sleep(time.Duration(round%5) * time.Millisecond)
		}
		natsBroker(victim.srv).Kill()
		stopNow(t, victim.srv)
		fresh := start()
		fresh.stopped = fresh.speaker.keepSaying(fresh.stop)
		all = append(all, fresh.speaker, fresh.listener)
		nodes[owner] = fresh
	}
	for _, nd := range nodes {
		close(nd.stop)
		<-nd.stopped
	}
	whole := []*chatter{witness.listener}
	settled(t, witness.srv, codec.Lobby, whole)
	history(t, witness.srv, codec.Lobby, all, whole)
}

// failureLog collects the nodes' logs of a test and prints them if the
// test fails: a fault test's failure is read from what the nodes saw.
func failureLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("node logs:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sequenced counts a chatter's says acknowledged with a seq.
func sequenced(ch *chatter) int {
	_, acks, _ := ch.snapshot()
	n := 0
	for _, seq := range acks {
		if seq > 0 {
			n++
		}
	}
	return n
}
