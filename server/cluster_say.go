package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"parley/codec"
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
	s     *session
	ref   string
	owner string
	sent  time.Time
}

// forwardSay sends a say to the room's owner. Loop goroutine of s.
func (n *node) forwardSay(s *session, owner, room, ref, body string, ts int64) {
	pk := pendingKey{s.key, room}
	n.mu.Lock()
	n.pending[pk] = append(n.pending[pk], pendingSay{s: s, ref: ref, owner: owner, sent: time.Now()})
	n.mu.Unlock()
	data, err := sonic.Marshal(&busMsg{Room: room, Key: s.key, Nick: s.nick, Body: body, TS: ts})
	if err == nil {
		err = n.nc.PublishRequest(n.subj.node(owner)+".say", n.saidSubject(pk), data)
	}
	if err != nil {
		n.settle(pk, 0, fmt.Errorf("%w: %v", codec.ErrUnavailable, err))
	}
}

// saidSubject is where an owner's refusal of a forwarded say comes back.
func (n *node) saidSubject(pk pendingKey) string {
	return n.subj.node(n.id) + ".said." + hexKey(pk.key) + "." + hexKey(pk.room)
}

// sayRefused handles a refusal: the owner no longer owns the room, or no
// node listens on the owner's subject (NATS answers status 503). The say
// fails with unavailable and the next one finds the room's owner again.
// Dispatcher goroutine.
func (n *node) sayRefused(arg string, m *nats.Msg) {
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
func (n *node) settle(pk pendingKey, seq uint64, err error) {
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
	switch {
	case err != nil:
		p.s.send(errorFrame(err, p.ref))
	case p.ref != "":
		p.s.send(codec.MustEncode(&codec.Ack{Ref: p.ref, Seq: seq}))
	}
}

// expireSays fails the says whose message has not come back within
// opTimeout: their owner died or the bus lost them.
func (n *node) expireSays() {
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
