package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"parley/codec"
	"parley/server/broker"
)

// busMsg is every message between nodes except room messages, which go
// through the room's log (log.go).
type busMsg struct {
	Node    string        `json:"node,omitempty"`
	Room    string        `json:"room,omitempty"`
	Key     string        `json:"key,omitempty"`     // nick key of the sender, joiner or leaver
	Account string        `json:"account,omitempty"` // presence: the joiner's account
	Nick    string        `json:"nick,omitempty"`    // its display form
	To      string        `json:"to,omitempty"`      // dm: nick key of the recipient (of a copy: the sender)
	Dest    string        `json:"dest,omitempty"`    // dm copy: the recipient's nick
	Copy    bool          `json:"copy,omitempty"`    // dm: the sender's copy, for its other sessions
	Body    string        `json:"body,omitempty"`
	ID      string        `json:"id,omitempty"`    // say: the sender's idempotency key
	Token   string        `json:"token,omitempty"` // say: the forwarding node's name for it
	TS      int64         `json:"ts,omitempty"`
	Join    bool          `json:"join,omitempty"` // presence: joined; otherwise left
	Reason  codec.Reason  `json:"reason,omitempty"`
	Sync    bool          `json:"sync,omitempty"` // presence: Members are all of Node's members
	Members []broker.User `json:"members,omitempty"`
	Leaving bool          `json:"leaving,omitempty"` // heartbeat: the node is stopping
	Code    codec.Code    `json:"code,omitempty"`    // reply: the request failed
	// say: the reply, mentions and sender account, or the amendment.
	Conv *broker.Conversation `json:"conv,omitempty"`
}

// replyNotOwner is the code an owner answers a say it no longer sequences.
const replyNotOwner codec.Code = "not_owner"

// outMsg is one message waiting for the bus: a plain NATS message, or a
// message for the rooms' log (stored), with its room, the fence it was
// appended under and the count of reconnections when it was queued (link).
type outMsg struct {
	subject, reply string
	data           []byte
	stored         *nats.Msg
	room           string
	fence, link    uint64
}

// enqueue hands a message to the writer goroutine. It never blocks: when
// the queue is full the message is dropped, counted and (at most once per
// 10 s) logged. Callers may hold a room lock.
func (n *Broker) enqueue(m outMsg) bool {
	select {
	case n.out <- m:
		return true
	default:
		n.droppedOne("cluster bus queue full: dropping messages for the bus", "queue", cap(n.out))
		return false
	}
}

// droppedOne counts a message dropped for a full queue, and logs msg at
// most once per 10 s.
func (n *Broker) droppedOne(msg string, attrs ...any) {
	n.dropped.Add(1)
	n.mu.Lock()
	due := time.Since(n.lastWarn) >= 10*time.Second
	if due {
		n.lastWarn = time.Now()
	}
	n.mu.Unlock()
	if due {
		n.log.Warn(msg, append(attrs, "dropped", n.dropped.Load())...)
	}
}

// backedUp reports whether the queue to the bus is nearly full: a say is
// then refused before it is sequenced, so that no sequenced message is
// dropped (the margin covers says already past the check).
func (n *Broker) backedUp() bool { return len(n.out) > cap(n.out)*9/10 }

// writer writes the queued messages to NATS, in order. nats.go may block
// here while its link is slow; nothing else waits for it.
func (n *Broker) writer() {
	defer close(n.writerDone)
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.out:
			n.write(m)
		}
	}
}

func (n *Broker) write(m outMsg) {
	switch {
	case m.stored != nil:
		n.appendNow(m)
	case m.reply != "":
		_ = n.nc.PublishRequest(m.subject, m.reply, m.data)
	default:
		_ = n.nc.Publish(m.subject, m.data)
	}
}

// drainOut writes what is queued, for Kill, once the writer has returned.
func (n *Broker) drainOut() {
	for {
		select {
		case m := <-n.out:
			n.write(m)
		default:
			return
		}
	}
}

// publish queues m for subject; while the bus is down NATS drops it.
// Callers may hold a room lock.
func (n *Broker) publish(subject string, m *busMsg) {
	data, err := sonic.Marshal(m)
	if err == nil {
		n.enqueue(outMsg{subject: subject, data: data})
	}
}

// request sends m to subject and waits for the answer. A request nobody
// listens to yet (a node still resubscribing after an outage) was not
// handled, so it is sent again a few times before it fails.
func (n *Broker) request(subject string, m *busMsg) (*busMsg, error) {
	data, err := sonic.Marshal(m)
	if err != nil {
		return nil, err
	}
	msg, err := n.nc.Request(subject, data, opTimeout)
	for try := 1; errors.Is(err, nats.ErrNoResponders) && try <= 5; try++ {
		select {
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		case <-n.ctx.Done():
			return nil, fmt.Errorf("%w: the node is stopping", codec.ErrUnavailable)
		}
		msg, err = n.nc.Request(subject, data, opTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", codec.ErrUnavailable, err)
	}
	var reply busMsg
	if err := sonic.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("%w: bad reply: %v", codec.ErrUnavailable, err)
	}
	return &reply, nil
}

func (n *Broker) respond(m *nats.Msg, reply *busMsg) {
	if m.Reply != "" {
		n.publish(m.Reply, reply)
	}
}

// dispatch handles the node's bus traffic in the order it arrives.
func (n *Broker) dispatch() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.inbox:
			n.handle(m)
		case res := <-n.fetched:
			n.caughtUp(res)
		}
	}
}

func (n *Broker) handle(m *nats.Msg) {
	rest, _ := strings.CutPrefix(m.Subject, n.subj.cluster+".")
	kind, arg, _ := strings.Cut(rest, ".")
	switch {
	case kind == "room":
		hexName, what, _ := strings.Cut(arg, ".")
		n.roomTraffic(unkey(hexName), what, m)
		return
	case kind == "notice":
		n.noticed(m)
		return
	case kind == "rooms":
		n.roomsReported(m)
		return
	case strings.Contains(arg, ".said."):
		n.sayRefused(arg, m)
		return
	}
	var in busMsg
	if sonic.Unmarshal(m.Data, &in) != nil {
		return
	}
	switch {
	case kind == "hb":
		n.heard(&in)
	case kind == "who":
		n.respond(m, &busMsg{Node: n.id, Members: n.h.LocalMembers(in.Room)})
	case strings.HasSuffix(arg, ".say"):
		n.ownerSay(m, &in)
	case strings.HasSuffix(arg, ".dm"):
		n.deliverDM(m, &in)
	case strings.HasSuffix(arg, ".unotice"):
		n.h.NoticedUser(in.To, []byte(in.Body))
	}
}

func (n *Broker) roomTraffic(name, what string, m *nats.Msg) {
	switch what {
	case "msg":
		if lm, ok := republished(m); ok {
			n.received(name, lm)
		}
	case "pres":
		var in busMsg
		if sonic.Unmarshal(m.Data, &in) == nil && in.Node != n.id {
			n.presence(name, &in)
		}
	}
}

// presence applies a join, a leave or a full member list from another
// node. Dispatcher goroutine.
func (n *Broker) presence(room string, in *busMsg) {
	n.heardFrom(in.Node)
	switch {
	case in.Sync:
		for _, u := range in.Members {
			u.Node = in.Node
			n.h.RemoteJoined(room, u)
		}
	case in.Join:
		n.h.RemoteJoined(room, broker.User{Key: in.Key, Nick: in.Nick, Node: in.Node, Account: in.Account})
	default:
		n.h.RemoteLeft(room, broker.User{Key: in.Key, Nick: in.Nick, Node: in.Node}, in.Reason)
	}
}

// Joined and Left tell the other nodes of a local member's arrival and
// departure. The room's lock is held: they only enqueue.
func (n *Broker) Joined(room string, u broker.User) {
	n.publish(n.subj.roomPres(room), &busMsg{Node: n.id, Key: u.Key, Nick: u.Nick, Account: u.Account, Join: true})
}

func (n *Broker) Left(room, key, nick string, reason codec.Reason) {
	n.publish(n.subj.roomPres(room), &busMsg{Node: n.id, Key: key, Nick: nick, Reason: reason})
}

// ownerSay sequences a message sent on another node, if this node owns
// the room (or claims it: a say may arrive before the claim has finished
// here, or after a failed store disowned the room). The message itself,
// back from the log, is the answer; only a refusal is answered directly.
func (n *Broker) ownerSay(m *nats.Msg, in *busMsg) {
	if !n.connected() || n.backedUp() {
		n.refuseSay(m)
		return
	}
	msg := broker.Message{Room: in.Room, Key: in.Key, Nick: in.Nick, Body: in.Body, ID: in.ID, TS: in.TS, Token: in.Token}
	if in.Conv != nil {
		msg.Conversation = *in.Conv
	}
	n.route(queuedSay{m: msg, relay: m})
}

// refuseSay answers a forwarded say that this node does not sequence.
func (n *Broker) refuseSay(m *nats.Msg) {
	n.respond(m, &busMsg{Node: n.id, Code: replyNotOwner})
}

// deliverDM hands a direct message from another node to a local user.
func (n *Broker) deliverDM(m *nats.Msg, in *busMsg) {
	dm := broker.DirectMessage{ToKey: in.To, ToNick: in.Dest, From: in.Nick, Body: in.Body, TS: in.TS, ID: in.ID, Copy: in.Copy}
	if in.Conv != nil {
		dm.Account, dm.Kind, dm.API = in.Conv.Account, in.Conv.Kind, in.Conv.API
	}
	if n.h.DeliverDM(dm) != nil {
		n.respond(m, &busMsg{Code: codec.CodeNoSuchUser})
		return
	}
	n.respond(m, &busMsg{})
}

// forwardDM delivers a direct message to the user's sessions on node id.
func (n *Broker) forwardDM(id, nick string, dm broker.DirectMessage) error {
	out := &busMsg{To: dm.ToKey, Nick: dm.From, Body: dm.Body, TS: dm.TS, ID: dm.ID}
	if dm.Copy {
		out.Copy, out.Dest = true, dm.ToNick
	}
	if dm.Account != "" || dm.Kind != "" || dm.API {
		out.Conv = &broker.Conversation{Account: dm.Account, Kind: dm.Kind, API: dm.API}
	}
	reply, err := n.request(n.subj.node(id)+".dm", out)
	if err != nil {
		return err
	}
	if reply.Code == codec.CodeNoSuchUser {
		return codec.NotOnline(codec.ErrNoSuchUser, nick)
	}
	return nil
}

// gather asks every other live node for its members of a room. It returns
// what arrived within the timeout.
func (n *Broker) gather(room string) []broker.User {
	n.mu.Lock()
	peers := len(n.livePeersLocked())
	n.mu.Unlock()
	if peers == 0 || !n.connected() {
		return nil
	}
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	data, _ := sonic.Marshal(&busMsg{Room: room})
	if n.nc.PublishRequest(n.subj.who(), inbox, data) != nil {
		return nil
	}
	var out []broker.User
	deadline := time.Now().Add(opTimeout / 2)
	for got := 0; got < peers; got++ {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var in busMsg
		if sonic.Unmarshal(m.Data, &in) == nil {
			for _, mb := range in.Members {
				mb.Node = in.Node
				out = append(out, mb)
			}
		}
	}
	return out
}

// Follow subscribes this node to a room's traffic and learns its members
// on other nodes; the hub holds the room's first joins until done, so a
// member receives every message sequenced after its join is acknowledged.
func (n *Broker) Follow(room string, done func([]broker.User, uint64, error)) {
	n.goRun(func() {
		n.mu.Lock()
		if n.cursors[room] == nil {
			n.cursors[room] = &cursor{}
		}
		n.mu.Unlock()
		sub, err := n.nc.ChanSubscribe(n.subj.room(room)+".*", n.inbox)
		if err != nil {
			done(nil, 0, fmt.Errorf("%w: subscribe: %v", codec.ErrUnavailable, err))
			return
		}
		n.mu.Lock()
		old := n.subs[room]
		n.subs[room] = sub
		n.mu.Unlock()
		if old != nil {
			_ = old.Unsubscribe()
		}
		if n.connected() {
			_ = n.nc.FlushTimeout(opTimeout) // the subscription is live on the server
		}
		// Members who join now start after the log's current end.
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		sseq, last, err := n.tail(ctx, room)
		cancel()
		if err != nil {
			done(nil, 0, fmt.Errorf("%w: read the room's log: %v", codec.ErrUnavailable, err))
			return
		}
		n.startFollowing(room, sseq)
		done(n.gather(room), last, nil)
	})
}

// Unfollow drops a room's subscription. The hub calls it when the room
// died here, before anyone can follow it again; it never blocks.
func (n *Broker) Unfollow(room string) {
	n.mu.Lock()
	sub := n.subs[room]
	delete(n.subs, room)
	delete(n.cursors, room)
	n.mu.Unlock()
	if sub != nil {
		n.goRun(func() { _ = sub.Unsubscribe() })
	}
}

// Members asks the other nodes for their members of a room.
func (n *Broker) Members(room string, done func([]broker.User)) {
	n.goRun(func() { done(n.gather(room)) })
}

// SendDM delivers a direct message to the user's sessions on every other
// node it is online on, at once; it succeeds when one of them took it.
func (n *Broker) SendDM(dm broker.DirectMessage, done func(error)) {
	n.goRun(func() {
		nick, nodes := n.whereOnline(dm.ToKey)
		if nick == "" {
			nick = dm.ToNick
		}
		switch {
		case len(nodes) == 0 && !n.connected():
			done(fmt.Errorf("%w: the cluster bus is down", codec.ErrUnavailable))
			return
		case len(nodes) == 0:
			done(codec.NotOnline(codec.ErrNoSuchUser, nick))
			return
		}
		errs := make(chan error, len(nodes))
		for _, id := range nodes[1:] {
			n.goRun(func() { errs <- n.forwardDM(id, nick, dm) })
		}
		errs <- n.forwardDM(nodes[0], nick, dm)
		var first error
		for range nodes {
			err := <-errs
			if err == nil {
				first = nil
				break
			}
			if first == nil {
				first = err
			}
		}
		done(first)
	})
}
