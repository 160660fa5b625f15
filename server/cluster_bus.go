package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"parley/codec"
)

// busMsg is every message between nodes except room messages, which travel
// as already-encoded frames (see publishMsg).
type busMsg struct {
	Node    string       `json:"node,omitempty"`
	Room    string       `json:"room,omitempty"`
	Key     string       `json:"key,omitempty"`  // folded nick of the sender, joiner or leaver
	Nick    string       `json:"nick,omitempty"` // its display form
	To      string       `json:"to,omitempty"`   // dm: folded nick of the recipient
	Body    string       `json:"body,omitempty"`
	TS      int64        `json:"ts,omitempty"`
	Join    bool         `json:"join,omitempty"` // presence: joined; otherwise left
	Reason  codec.Reason `json:"reason,omitempty"`
	Sync    bool         `json:"sync,omitempty"` // presence: Members are all of Node's members
	Members []member     `json:"members,omitempty"`
	Leaving bool         `json:"leaving,omitempty"` // heartbeat: the node is stopping
	Code    codec.Code   `json:"code,omitempty"`    // reply: the request failed
}

// member is one user in a room, as nodes tell each other.
type member struct {
	Key  string `json:"key"`
	Nick string `json:"nick"`
	Node string `json:"node,omitempty"` // set by gather from the answering node
}

// replyNotOwner is the code an owner answers a say it no longer sequences.
const replyNotOwner codec.Code = "not_owner"

// publish sends m on subject; while the bus is down it is dropped. Callers
// may hold a room lock: publishing only appends to the connection's buffer.
func (n *node) publish(subject string, m *busMsg) {
	data, err := sonic.Marshal(m)
	if err == nil {
		_ = n.nc.Publish(subject, data)
	}
}

// request sends m to subject and waits for the answer. A request nobody
// listens to yet (a node still resubscribing after an outage) was not
// handled, so it is sent again a few times before it fails.
func (n *node) request(subject string, m *busMsg) (*busMsg, error) {
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

func (n *node) respond(m *nats.Msg, reply *busMsg) {
	if m.Reply != "" {
		n.publish(m.Reply, reply)
	}
}

// publishMsg sends a sequenced room message: 8 bytes of seq, the sender's
// folded nick after one length byte, then the frame as members receive it,
// so the other nodes write it out without encoding it again.
func (n *node) publishMsg(room string, seq uint64, key string, frame []byte) {
	data := make([]byte, 9, 9+len(key)+len(frame))
	binary.BigEndian.PutUint64(data, seq)
	data[8] = byte(len(key))
	data = append(append(data, key...), frame...)
	_ = n.nc.Publish(n.subj.roomMsg(room), data)
}

func parseRoomMsg(data []byte) (seq uint64, key string, frame []byte, ok bool) {
	if len(data) < 9 || len(data) < 9+int(data[8]) {
		return 0, "", nil, false
	}
	end := 9 + int(data[8])
	return binary.BigEndian.Uint64(data), string(data[9:end]), data[end:], true
}

// dispatch handles the node's bus traffic in the order it arrives.
func (n *node) dispatch() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.inbox:
			n.handle(m)
		}
	}
}

func (n *node) handle(m *nats.Msg) {
	rest, _ := strings.CutPrefix(m.Subject, n.subj.cluster+".")
	kind, arg, _ := strings.Cut(rest, ".")
	switch {
	case kind == "room":
		hexName, what, _ := strings.Cut(arg, ".")
		n.roomTraffic(unkey(hexName), what, m)
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
		n.respond(m, &busMsg{Node: n.id, Members: n.h.localMembers(in.Room)})
	case strings.HasSuffix(arg, ".say"):
		n.ownerSay(m, &in)
	case strings.HasSuffix(arg, ".dm"):
		n.deliverDM(m, &in)
	}
}

func (n *node) roomTraffic(name, what string, m *nats.Msg) {
	switch what {
	case "msg":
		seq, key, frame, ok := parseRoomMsg(m.Data)
		if ok && n.h.remoteMsg(name, seq, key, frame) {
			n.settle(pendingKey{key, name}, seq, nil)
		}
	case "pres":
		var in busMsg
		if sonic.Unmarshal(m.Data, &in) == nil && in.Node != n.id {
			n.h.remotePresence(name, &in)
		}
	}
}

// ownerSay sequences a message sent on another node, if this node owns the
// room. The message itself, back on the room's subject, is the answer; only
// a refusal is answered directly.
func (n *node) ownerSay(m *nats.Msg, in *busMsg) {
	if _, err := n.h.sayForwarded(in.Room, in.Key, in.Nick, in.Body, in.TS); err != nil {
		n.respond(m, &busMsg{Node: n.id, Code: replyNotOwner})
	}
}

// deliverDM hands a direct message from another node to a local user.
func (n *node) deliverDM(m *nats.Msg, in *busMsg) {
	to := n.h.nicks.get(in.To)
	if to == nil {
		n.respond(m, &busMsg{Code: codec.CodeNoSuchUser})
		return
	}
	to.send(codec.MustEncode(&codec.Msg{From: in.Nick, To: to.nick, Body: in.Body, TS: in.TS}))
	n.respond(m, &busMsg{})
}

// forgetOwner drops a cached owner that did not answer as one.
func (n *node) forgetOwner(room, owner string) {
	n.mu.Lock()
	if o, ok := n.owner[room]; ok && o.node == owner {
		delete(n.owner, room)
	}
	n.mu.Unlock()
}

// forwardDM delivers a direct message to a user on another node.
func (n *node) forwardDM(to dirEntry, toKey, from, body string, ts int64) error {
	reply, err := n.request(n.subj.node(to.Node)+".dm", &busMsg{To: toKey, Nick: from, Body: body, TS: ts})
	if err != nil {
		return err
	}
	if reply.Code == codec.CodeNoSuchUser {
		return fmt.Errorf("%w: %q is not online", codec.ErrNoSuchUser, to.Nick)
	}
	return nil
}

// gather asks every other live node for its members of a room. It returns
// what arrived within the timeout.
func (n *node) gather(room string) []member {
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
	var out []member
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

// establish subscribes this node to a room's traffic and learns its
// members on other nodes, once per room; joins wait for it, so a member
// receives every message sequenced after its join is acknowledged.
func (n *node) establish(name string) error {
	r := n.h.rooms.acquire(name, n.h.newRoom)
	if r.ready {
		r.mu.Unlock()
		return nil
	}
	ch, first := r.readyCh, r.readyCh == nil
	if first {
		ch = make(chan struct{})
		r.readyCh = ch
	}
	r.mu.Unlock()
	if !first {
		<-ch
		return nil
	}
	defer close(ch)
	sub, err := n.nc.ChanSubscribe(n.subj.room(name)+".*", n.inbox)
	if err != nil {
		r.mu.Lock()
		r.readyCh = nil
		r.mu.Unlock()
		return fmt.Errorf("%w: subscribe: %v", codec.ErrUnavailable, err)
	}
	if n.connected() {
		_ = n.nc.FlushTimeout(opTimeout) // the subscription is live on the server
	}
	others := n.gather(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.readyCh = nil
	if r.dead {
		_ = sub.Unsubscribe()
		return nil // the join retries on a new room
	}
	r.sub, r.ready = sub, true
	for _, m := range others {
		r.addRemote(m)
	}
	return nil
}
