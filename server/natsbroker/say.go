package natsbroker

import (
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"parley/codec"
	"parley/server/broker"
)

// A say on a node that does not own the room is forwarded to the owner
// without holding the session: one session's says leave in order on one
// connection, so the owner sequences them in order, and each is
// acknowledged when its message comes back on the room's subject, after
// every earlier message of the room. A say waits in a FIFO per sender and
// room until then; the owner answers directly only to refuse.

// pendingKey names one sender's says in flight to one room.
type pendingKey struct{ key, room string }

// pendingSay is one forwarded say waiting for its message.
type pendingSay struct {
	r     broker.Replier
	ref   string
	owner string
	sent  time.Time
}

// queuedSay is a say waiting for its room's claim to settle.
type queuedSay struct {
	m     broker.Message
	r     broker.Replier
	ref   string
	relay *nats.Msg // a say another node forwarded here; r is nil then
}

// done answers a queued say: a local one through its Replier, a relayed
// one with a refusal when it was not sequenced here (when it was, its
// message on the room's subject is the answer).
func (n *Broker) done(q queuedSay, seq uint64, err error) {
	switch {
	case q.relay == nil:
		q.r.SayDone(q.ref, seq, err)
	case err != nil:
		n.refuseSay(q.relay)
	}
}

// Say routes a room message: sequenced here if this node owns the room,
// forwarded to the owner otherwise, and claimed first when the room has
// no live owner. While the bus is down it answers ErrUnsequenced; while
// the queue to the bus is backed up it refuses with unavailable before the
// message is sequenced. Loop goroutine of the sender.
func (n *Broker) Say(m broker.Message, r broker.Replier, ref string) (uint64, bool, error) {
	if !n.connected() {
		return 0, false, broker.ErrUnsequenced
	}
	if n.backedUp() {
		return 0, false, fmt.Errorf("%w: the link to the cluster is backed up; send again", codec.ErrUnavailable)
	}
	// One critical section decides the route, so that of two says for a
	// room without an owner (from two loops) one starts the claim and the
	// other queues behind it.
	n.mu.Lock()
	if q, claiming := n.claims[m.Room]; claiming {
		n.claims[m.Room] = append(q, queuedSay{m: m, r: r, ref: ref})
		n.mu.Unlock()
		return 0, true, nil
	}
	if n.owned[m.Room] {
		n.mu.Unlock()
		seq, err := n.h.Sequence(m)
		return seq, false, err
	}
	if owner, ok := n.ownerOfLocked(m.Room); ok && owner != n.id {
		n.mu.Unlock()
		n.forwardSay(m, r, ref, owner)
		return 0, true, nil
	}
	n.claims[m.Room] = []queuedSay{{m: m, r: r, ref: ref}}
	n.mu.Unlock()
	n.claimThenSay(m.Room)
	return 0, true, nil
}

// claimThenSay claims a room whose say found no live owner, then routes
// the says queued in n.claims[room] (that one and every one that arrived
// meanwhile), in order.
func (n *Broker) claimThenSay(room string) {
	n.goRun(func() {
		owner, err := n.claimWithin(room)
		for done := 0; ; {
			n.mu.Lock()
			q := n.claims[room]
			if done == len(q) {
				delete(n.claims, room)
				n.mu.Unlock()
				return
			}
			next := q[done]
			n.mu.Unlock()
			done++
			switch {
			case err != nil:
				n.done(next, 0, err)
			case owner == n.id:
				seq, err := n.h.Sequence(next.m)
				n.done(next, seq, err)
			case next.relay != nil:
				n.refuseSay(next.relay) // the sender's node finds the owner again
			default:
				n.forwardSay(next.m, next.r, next.ref, owner)
			}
		}
	})
}

// claimWithin is claimRoom with a deadline: the bucket requests go to
// NATS on the calling goroutine, and a stalled link can hold a write
// there for much longer than their own timeouts. The says waiting for the
// claim are then answered unavailable, unsequenced; the claim itself goes
// on and takes effect if it lands.
func (n *Broker) claimWithin(room string) (string, error) {
	type result struct {
		owner string
		err   error
	}
	ch := make(chan result, 1)
	n.goRun(func() {
		owner, err := n.claimRoom(room)
		ch <- result{owner, err}
	})
	select {
	case r := <-ch:
		return r.owner, r.err
	case <-time.After(opTimeout):
		return "", fmt.Errorf("%w: the cluster did not answer in time; send again", codec.ErrUnavailable)
	}
}

// forwardSay sends a say to the room's owner.
func (n *Broker) forwardSay(m broker.Message, r broker.Replier, ref, owner string) {
	pk := pendingKey{m.Key, m.Room}
	n.mu.Lock()
	n.pending[pk] = append(n.pending[pk], pendingSay{r: r, ref: ref, owner: owner, sent: time.Now()})
	n.mu.Unlock()
	data, err := sonic.Marshal(&busMsg{Room: m.Room, Key: m.Key, Nick: m.Nick, Body: m.Body, TS: m.TS})
	if err == nil && !n.enqueue(outMsg{subject: n.subj.node(owner) + ".say", reply: n.saidSubject(pk), data: data}) {
		err = fmt.Errorf("the link to the cluster is backed up")
	}
	if err != nil {
		n.settle(pk, 0, fmt.Errorf("%w: %v", codec.ErrUnavailable, err))
	}
}

// saidSubject is where an owner's refusal of a forwarded say comes back.
func (n *Broker) saidSubject(pk pendingKey) string {
	return n.subj.node(n.id) + ".said." + hexKey(pk.key) + "." + hexKey(pk.room)
}

// sayRefused handles a refusal: the owner no longer owns the room, or no
// node listens on the owner's subject (NATS answers status 503). The say
// fails with unavailable and the next one finds the room's owner again.
// Dispatcher goroutine.
func (n *Broker) sayRefused(arg string, m *nats.Msg) {
	_, tail, _ := strings.Cut(arg, ".said.")
	hexNick, hexRoom, _ := strings.Cut(tail, ".")
	pk := pendingKey{unkey(hexNick), unkey(hexRoom)}
	why := "the room's node does not answer"
	if m.Header.Get("Status") != "503" {
		why = "the room moved to another node"
	}
	n.mu.Lock()
	if q := n.pending[pk]; len(q) > 0 {
		if o, ok := n.owner[pk.room]; ok && o.node == q[0].owner {
			delete(n.owner, pk.room)
		}
	}
	n.mu.Unlock()
	n.settle(pk, 0, fmt.Errorf("%w: %s; send again", codec.ErrUnavailable, why))
}

// settle completes the oldest say in flight of pk: acknowledged with seq,
// or failed with err. Safe from any goroutine.
func (n *Broker) settle(pk pendingKey, seq uint64, err error) {
	n.mu.Lock()
	q := n.pending[pk]
	if len(q) == 0 {
		n.mu.Unlock()
		return
	}
	p := q[0]
	if len(q) == 1 {
		delete(n.pending, pk)
	} else {
		q[0] = pendingSay{}
		n.pending[pk] = q[1:]
	}
	n.mu.Unlock()
	p.r.SayDone(p.ref, seq, err)
}

// expireSays fails the says whose message has not come back within
// opTimeout: their owner died or the bus lost them.
func (n *Broker) expireSays() {
	old := time.Now().Add(-opTimeout)
	var due []pendingKey
	n.mu.Lock()
	for pk, q := range n.pending {
		for _, p := range q {
			if p.sent.Before(old) {
				due = append(due, pk)
			}
		}
	}
	n.mu.Unlock()
	for _, pk := range due {
		n.settle(pk, 0, fmt.Errorf("%w: the room's node did not answer in time; send again", codec.ErrUnavailable))
	}
}
