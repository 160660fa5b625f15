package natsbroker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"parley/codec"
	"parley/server/broker"
)

// A say on a node that does not own the room is forwarded to the owner
// without holding the session: one session's says leave in order on one
// connection, so the owner sequences them in order. Every say, forwarded
// or sequenced here, is named by a token (this node's id and a counter)
// that the owner stores with its message, and is acknowledged when that
// message comes back from the log to this node, after every earlier
// message of the room. The owner answers directly only to refuse.

// pendingSay is one say waiting for its message to be stored.
type pendingSay struct {
	r     broker.Replier
	ref   string
	room  string
	owner string // the node it was sent to; this one when sequenced here
	sent  time.Time
}

// queuedSay is a say waiting for its room's claim to settle.
type queuedSay struct {
	m     broker.Message
	r     broker.Replier
	ref   string
	relay *nats.Msg // a say another node forwarded here; r is nil then
}

// done answers a queued say that was not sequenced: a local one through
// its Replier, a relayed one with a refusal.
func (n *Broker) done(q queuedSay, err error) {
	if q.relay == nil {
		q.r.SayDone(q.ref, 0, err)
		return
	}
	n.refuseSay(q.relay)
}

// Say routes a room message: sequenced here if this node owns the room,
// forwarded to the owner otherwise, and claimed first when the room has
// no live owner. It is answered through r once stored. While the bus is
// down it answers ErrUnsequenced; while the queue to the bus is backed up
// it refuses with unavailable before the message is sequenced. Loop
// goroutine of the sender.
func (n *Broker) Say(m broker.Message, r broker.Replier, ref string) (uint64, bool, error) {
	if !n.connected() {
		return 0, false, broker.ErrUnsequenced
	}
	if n.backedUp() {
		return 0, false, fmt.Errorf("%w: the link to the cluster is backed up; send again", codec.ErrUnavailable)
	}
	n.route(queuedSay{m: m, r: r, ref: ref})
	return 0, true, nil
}

// route sends a say (local or relayed) on its way. One critical section
// decides the route, so that of two says for a room without an owner
// (from two loops, or a loop and the dispatcher) one starts the claim and
// the other queues behind it.
func (n *Broker) route(q queuedSay) {
	n.mu.Lock()
	if waiting, claiming := n.claims[q.m.Room]; claiming {
		n.claims[q.m.Room] = append(waiting, q)
		n.mu.Unlock()
		return
	}
	if _, owned := n.owned[q.m.Room]; owned {
		n.mu.Unlock()
		n.sequenceHere(q)
		return
	}
	owner, ok := n.ownerOfLocked(q.m.Room)
	if ok && owner != n.id {
		n.mu.Unlock()
		if q.relay != nil {
			n.refuseSay(q.relay) // the sender's node finds the owner again
		} else {
			n.forwardSay(q, owner)
		}
		return
	}
	n.claims[q.m.Room] = []queuedSay{q}
	n.mu.Unlock()
	n.claimThenSay(q.m.Room)
}

// sequenceHere sequences a say in a room this node owns. A local say
// waits for its message to come back from the log; a relayed one's
// message is its answer.
func (n *Broker) sequenceHere(q queuedSay) {
	if q.relay == nil {
		q.m.Token = n.addPending(q, n.id)
	}
	if _, err := n.h.Sequence(q.m); err != nil {
		if q.relay != nil {
			n.refuseSay(q.relay)
			return
		}
		n.settle(q.m.Token, 0, fmt.Errorf("%w: the room moved; send again", codec.ErrUnavailable))
	}
}

// addPending records a local say on its way and returns its token.
func (n *Broker) addPending(q queuedSay, owner string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.says++
	token := n.id + "." + strconv.FormatUint(n.says, 36)
	n.pending[token] = pendingSay{r: q.r, ref: q.ref, room: q.m.Room, owner: owner, sent: time.Now()}
	return token
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
				n.done(next, err)
			case owner == n.id:
				n.sequenceHere(next)
			case next.relay != nil:
				n.refuseSay(next.relay) // the sender's node finds the owner again
			default:
				n.forwardSay(next, owner)
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
func (n *Broker) forwardSay(q queuedSay, owner string) {
	token := n.addPending(q, owner)
	m := q.m
	out := &busMsg{Room: m.Room, Key: m.Key, Nick: m.Nick, Body: m.Body, ID: m.ID, TS: m.TS, Token: token}
	if m.Conversation.Kind != "" || m.ReplyTo != 0 || m.Mentions != nil || m.Conversation.Account != "" || m.API {
		out.Conv = &m.Conversation
	}
	data, err := sonic.Marshal(out)
	if err == nil && !n.enqueue(outMsg{subject: n.subj.node(owner) + ".say", reply: n.subj.node(n.id) + ".said." + token, data: data}) {
		err = fmt.Errorf("the link to the cluster is backed up")
	}
	if err != nil {
		n.settle(token, 0, fmt.Errorf("%w: %v", codec.ErrUnavailable, err))
	}
}

// sayRefused handles a refusal: the owner no longer owns the room, or no
// node listens on the owner's subject (NATS answers status 503). The say
// fails with unavailable and the next one finds the room's owner again.
// Dispatcher goroutine.
func (n *Broker) sayRefused(arg string, m *nats.Msg) {
	_, token, _ := strings.Cut(arg, ".said.")
	why := "the room's node does not answer"
	if m.Header.Get("Status") != "503" {
		why = "the room moved to another node"
	}
	n.mu.Lock()
	if p, ok := n.pending[token]; ok {
		if o, known := n.owner[p.room]; known && o.node == p.owner {
			delete(n.owner, p.room)
		}
	}
	n.mu.Unlock()
	n.settle(token, 0, fmt.Errorf("%w: %s; send again", codec.ErrUnavailable, why))
}

// sayer is the local session whose say is named token and still waits
// for its ack, or nil. Safe from any goroutine.
func (n *Broker) sayer(token string) broker.Replier {
	if token == "" {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.pending[token]; ok {
		return p.r
	}
	return nil
}

// settle completes the say named token, if it is this node's and still
// waiting: acknowledged with seq, or failed with err. Safe from any
// goroutine.
func (n *Broker) settle(token string, seq uint64, err error) {
	if token == "" {
		return
	}
	n.mu.Lock()
	p, ok := n.pending[token]
	delete(n.pending, token)
	n.mu.Unlock()
	if ok && p.owner != n.id {
		n.forwarded.Add(1)
		n.sayTime.Observe(int64(time.Since(p.sent)))
	}
	if ok {
		p.r.SayDone(p.ref, seq, err)
	}
}

// expireSays fails the says whose message has not come back within
// opTimeout: their owner died, or the log did not store them, or the
// message is on its way after a break in this node's link. A say that
// expired may still have been stored (docs/CLUSTER.md).
func (n *Broker) expireSays() {
	old := time.Now().Add(-opTimeout)
	var due []string
	n.mu.Lock()
	for token, p := range n.pending {
		if p.sent.Before(old) {
			due = append(due, token)
		}
	}
	n.mu.Unlock()
	for _, token := range due {
		n.settle(token, 0, fmt.Errorf("%w: the message was not confirmed in time; it may have been stored", codec.ErrUnavailable))
	}
}
