package hub

import (
	"parley/codec"
	"parley/server/broker"
)

// handler is the hub as its broker sees it (broker.Handler): the other
// nodes' traffic, applied here. Kept apart from Hub's own methods so that
// the hub's API for transports stays small.
type handler struct{ h *Hub }

var _ broker.Handler = handler{}

// Sequence numbers a room message, delivers it to the local members but
// its sender and hands it to the broker, under the room's lock.
func (x handler) Sequence(m broker.Message) (uint64, error) {
	r := x.h.rooms.get(m.Room)
	if r == nil {
		return 0, broker.ErrNotOwner
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return 0, broker.ErrNotOwner
	}
	sender, _ := m.Sender.(*Session)
	return x.h.sequenceLocked(r, m, sender), nil
}

// Own keeps the room, with its seq continued after last, while this node
// sequences it. last is the log's: seqs given out here beyond it were
// never stored, so nobody saw them and they are given out again.
func (x handler) Own(name string, last uint64) {
	r := x.h.rooms.acquire(name, x.h.newRoom)
	defer r.mu.Unlock()
	r.issued = last
	r.owned = true
}

// Disown lets the room go once no local member needs it.
func (x handler) Disown(name string) {
	r := x.h.rooms.get(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.owned = false
	dead := x.h.mayDieLocked(r)
	r.mu.Unlock()
	if dead {
		x.h.dropRoom(r)
	}
}

// Deliver hands a stored message to the local members. A seq at or below
// the last one delivered is a replay and is dropped, so members never see
// a seq twice or out of order; a seq past the next one is preceded by a
// gap notice, so a hole is never silent.
func (x handler) Deliver(name string, seq uint64, sender broker.Replier, frame []byte) bool {
	r := x.h.rooms.get(name)
	if r == nil {
		return false
	}
	defer x.h.trimHistory() // once the room's lock is let go
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.seq {
		return false
	}
	if r.seq > 0 && seq > r.seq+1 {
		x.h.count.gaps.Add(1)
		r.publishLocked(x.h, codec.MustEncode(&codec.Gap{Room: r.name, First: r.seq + 1, Last: seq - 1}), nil)
	}
	r.seq = seq
	except, _ := sender.(*Session)
	r.publishSeqLocked(x.h, frame, except, seq)
	x.h.rememberLocked(r, seq, frame, nil)
	return true
}

// RemoteJoined announces a member on another node, once.
func (x handler) RemoteJoined(name string, u broker.User) {
	r := x.h.rooms.get(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	x.h.remoteJoinLocked(r, u)
}

// RemoteLeft announces that a member on another node left.
func (x handler) RemoteLeft(name string, u broker.User, reason codec.Reason) {
	r := x.h.rooms.get(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	x.h.remoteLeaveLocked(r, u.Key, u.Node, reason)
}

// NodeDown makes a dead node's users leave every room here.
func (x handler) NodeDown(node string) int {
	dropped := 0
	for _, r := range x.h.rooms.all() {
		r.mu.Lock()
		for k, nodes := range r.remoteAt {
			if nodes[node] {
				x.h.remoteLeaveLocked(r, k, node, codec.ReasonDisconnect)
				dropped++
			}
		}
		r.mu.Unlock()
	}
	return dropped
}

// DeliverDM hands a direct message, or an edit or a delete of one, from
// another node to a local user; a copy goes to the sender's sessions here.
func (x handler) DeliverDM(dm broker.DirectMessage) error {
	if !x.h.nicks.online(dm.ToKey) {
		return codec.ErrNoSuchUser
	}
	defer x.h.trimHistory()
	switch {
	case dm.Kind != "":
		x.h.amendDMFor(dm)
		return nil
	case dm.Copy:
		x.h.keepCopy(dm)
		return nil
	}
	_, err := x.h.sendDM(dm, nil)
	return err
}

// HoldTaken forgets the hold of a nick that a resume through another
// node took over.
func (x handler) HoldTaken(key string) {
	x.h.holds.with(key, func(m map[string]nickHold) { delete(m, key) })
}

// LocalMembers lists a room's members here.
func (x handler) LocalMembers(name string) []broker.User {
	r := x.h.rooms.get(name)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]broker.User, 0, len(r.members))
	for k, m := range r.members {
		out = append(out, broker.User{Key: k, Nick: m.nick, Account: m.account})
	}
	return out
}

// LocalRooms lists the rooms with members here.
func (x handler) LocalRooms() []string {
	var out []string
	for _, r := range x.h.rooms.all() {
		out = append(out, r.name)
	}
	return out
}

// LocalNick is the display nick of a local user.
func (x handler) LocalNick(key string) (string, bool) {
	if u := x.h.nicks.get(key); u != nil {
		return u.nick, true
	}
	return "", false
}

// remoteJoinLocked records that u is a member on u.Node, and announces it
// unless the user was a member already: here, or on another node.
func (h *Hub) remoteJoinLocked(r *room, u broker.User) {
	delete(r.departed, departure(u.Key, u.Node))
	if r.addRemote(u) {
		return
	}
	if r.members[u.Key] != nil {
		r.both++
		return
	}
	before := r.count() - 1
	h.announceLocked(r, before, true, func() []byte { return joinedFrame(u.Nick, r.name) }, nil)
}

// remoteLeaveLocked records that the user with key left on node, and
// announces it when that was its last membership anywhere.
func (h *Hub) remoteLeaveLocked(r *room, key, node string, reason codec.Reason) {
	if !r.followed {
		// Follow's list of members, taken before this leave, must not
		// bring the member back when it arrives.
		if r.departed == nil {
			r.departed = make(map[string]bool)
		}
		r.departed[departure(key, node)] = true
	}
	u, in := r.remote[key]
	if !in || !r.remoteAt[key][node] {
		return
	}
	if delete(r.remoteAt[key], node); len(r.remoteAt[key]) > 0 {
		return // still a member on another node
	}
	before := r.count()
	delete(r.remote, key)
	delete(r.remoteAt, key)
	if r.members[key] != nil {
		r.both--
		return // still a member here
	}
	h.announceLocked(r, before, false, func() []byte { return leftFrame(u.Nick, r.name, reason) }, nil)
}

// departure names a member's leave on one node.
func departure(key, node string) string { return key + "\x00" + node }

// addRemote records a member on node u.Node; it reports whether the user
// was a member on another node already. r.mu held.
func (r *room) addRemote(u broker.User) (known bool) {
	if r.remote == nil {
		r.remote = make(map[string]broker.User)
		r.remoteAt = make(map[string]map[string]bool)
	}
	_, known = r.remote[u.Key]
	if !known {
		r.remote[u.Key] = u
		r.remoteAt[u.Key] = make(map[string]bool, 1)
	}
	r.remoteAt[u.Key][u.Node] = true
	return known
}

// all returns every room in the table.
func (t roomTable) all() []*room {
	var out []*room
	t.each(func(m map[string]*room) {
		for _, r := range m {
			out = append(out, r)
		}
	})
	return out
}
