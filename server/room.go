package server

import (
	"sync"

	"github.com/nats-io/nats.go"

	"parley/codec"
)

// room is a chat room. Fields under mu are shared; local is split by loop,
// and each loop's part is touched only by that loop's goroutine, through
// itemAdd and itemRemove applied in order with the room's messages.
type room struct {
	name string

	mu      sync.Mutex
	seq     uint64              // last sequence number given out
	members map[string]*session // by folded nick
	perLoop []int               // members on each loop: which loops a broadcast visits
	dead    bool                // emptied and leaving the room table

	counted              bool  // over the presence limit: changes are counted
	presJoined, presLeft int   // changes counted since the last presence frame
	presDirty            bool  // a presence frame is due
	presLast             int64 // when the last presence frame went out

	local [][]*session // per loop: that loop's members

	// Cluster mode only, under mu.
	remote  map[string]member  // members on other nodes, by folded nick
	owned   bool               // this node sequences the room
	ready   bool               // subscribed to the room's traffic, remote members known
	readyCh chan struct{}      // closed when a subscription in progress is ready
	sub     *nats.Subscription // the room's traffic, while ready
}

// count is the room's size across the cluster. r.mu held.
func (r *room) count() int { return len(r.members) + len(r.remote) }

func newRoom(name string, loops int) *room {
	return &room{
		name:    name,
		members: make(map[string]*session),
		perLoop: make([]int, loops),
		local:   make([][]*session, loops),
	}
}

// publishLocked queues frame for every member except one, one outbox item
// per loop that has members. Callers hold r.mu, which orders the room's
// frames identically on every loop.
func (r *room) publishLocked(h *hub, frame []byte, except *session) {
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].push(item{kind: itemRoom, room: r, frame: frame, except: except})
		}
	}
}

// addLocal and removeLocal maintain one loop's member list. Loop goroutine
// of index only.
func (r *room) addLocal(index int, s *session) {
	if s.slots == nil {
		s.slots = make(map[*room]int)
	}
	s.slots[r] = len(r.local[index])
	r.local[index] = append(r.local[index], s)
}

func (r *room) removeLocal(index int, s *session) {
	pos, ok := s.slots[r]
	if !ok {
		return
	}
	delete(s.slots, r)
	list := r.local[index]
	last := len(list) - 1
	if pos != last {
		list[pos] = list[last]
		list[pos].slots[r] = pos
	}
	list[last] = nil
	r.local[index] = list[:last]
}

// individualLocked reports whether a change of r to after members is
// announced one by one rather than counted into presence. A room that
// passed the presence limit goes on counting until it is a tenth below
// it, so a room at the limit cannot be toggled between the two at the
// price of a frame to every member each time. r.mu held.
func (h *hub) individualLocked(r *room, after int) bool {
	limit := h.cfg.PresenceLimit
	switch {
	case limit < 0:
		return true
	case after > limit:
		r.counted = true
	case r.counted && after <= limit-max(limit/10, 1):
		r.counted = false
	}
	return !r.counted
}

// enterRoom adds s to r and announces it. Loop goroutine of s; r.mu held.
func (h *hub) enterRoomLocked(s *session, r *room) {
	before := r.count()
	r.members[s.key] = s
	r.perLoop[s.loop.index]++
	s.loop.push(item{kind: itemAdd, room: r, to: s})
	h.announceLocked(r, before, true, func() []byte { return codec.MustEncode(&codec.Joined{Nick: s.nick, Room: r.name}) }, s)
	s.rooms[r.name] = r
	if h.cluster != nil {
		h.cluster.publish(h.cluster.subj.roomPres(r.name), &busMsg{Node: h.cluster.id, Key: s.key, Nick: s.nick, Join: true})
	}
}

// announceLocked tells r's members here of a join or a leave: one by one
// while the room is small, else counted into the next presence frame.
// r.mu held.
func (h *hub) announceLocked(r *room, before int, joined bool, frame func() []byte, except *session) {
	after := before - 1
	if joined {
		after = before + 1
	}
	switch {
	case h.individualLocked(r, after):
		r.publishLocked(h, frame(), except)
	case joined:
		r.presJoined++
		h.markPresence(r)
	default:
		r.presLeft++
		h.markPresence(r)
	}
}

// join puts s in the room called name, creating it if needed. In a
// cluster it returns errNotReady while this node is not yet subscribed to
// the room.
func (h *hub) join(s *session, name string) error {
	if _, in := s.rooms[name]; in {
		return nil
	}
	if len(s.rooms) >= h.cfg.MaxRooms {
		return codec.ErrTooManyRooms
	}
	r := h.rooms.acquire(name, h.newRoom)
	defer r.mu.Unlock()
	if h.cluster != nil && !r.ready {
		return errNotReady
	}
	h.enterRoomLocked(s, r)
	return nil
}

// enterLobby puts a session that just logged in into the lobby.
func (h *hub) enterLobby(s *session) {
	h.lobby.mu.Lock()
	defer h.lobby.mu.Unlock()
	h.enterRoomLocked(s, h.lobby)
}

// leave takes s out of r, tells the others why, and deletes r when it is
// empty (except the lobby). Loop goroutine of s.
func (h *hub) leave(s *session, r *room, reason codec.Reason) {
	delete(s.rooms, r.name)
	if h.leaveLocked(s, r, reason) {
		h.rooms.remove(r)
		if r.sub != nil {
			_ = r.sub.Unsubscribe() // r is dead: nothing else touches sub
		}
	}
}

// leaveLocked does the part of leave under r.mu; it reports whether r died.
func (h *hub) leaveLocked(s *session, r *room, reason codec.Reason) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := r.count()
	delete(r.members, s.key)
	r.perLoop[s.loop.index]--
	s.loop.push(item{kind: itemRemove, room: r, to: s})
	h.announceLocked(r, before, false, func() []byte { return codec.MustEncode(&codec.Left{Nick: s.nick, Room: r.name, Reason: reason}) }, s)
	if h.cluster != nil {
		h.cluster.publish(h.cluster.subj.roomPres(r.name), &busMsg{Node: h.cluster.id, Key: s.key, Nick: s.nick, Reason: reason})
	}
	// An owned room outlives its members here: it holds the room's seq.
	r.dead = len(r.members) == 0 && r.name != codec.Lobby && !r.owned
	return r.dead
}

// say assigns the next sequence number of r to a message from s and queues
// it for every other member. It returns the sequence number.
func (h *hub) say(s *session, r *room, body string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return h.sequenceLocked(r, s.nick, s.key, body, h.wallMillis(), s)
}

// sequenceLocked gives a message the next seq of r, encodes it once and
// queues it for the local members except one. In a cluster (where only the
// room's owner calls it) it also publishes the frame to the other nodes,
// under the lock, so the bus carries the room's messages in seq order.
// r.mu held.
func (h *hub) sequenceLocked(r *room, nick, key, body string, ts int64, except *session) uint64 {
	r.seq++
	frame := codec.MustEncode(&codec.Msg{From: nick, Room: r.name, Body: body, TS: ts, Seq: r.seq})
	r.publishLocked(h, frame, except)
	if h.cluster != nil {
		h.cluster.publishMsg(r.name, r.seq, key, frame)
	}
	return r.seq
}

// markPresence records that r owes its members a presence frame. r.mu held.
func (h *hub) markPresence(r *room) {
	if r.presDirty {
		return
	}
	r.presDirty = true
	h.presenceMu.Lock()
	h.presenceDue = append(h.presenceDue, r)
	h.presenceMu.Unlock()
}

// flushPresence sends the presence frames that are due: at most one per
// room per PresenceInterval. Safe from any goroutine.
func (h *hub) flushPresence(now int64) {
	h.presenceMu.Lock()
	due := h.presenceDue
	h.presenceDue = nil
	h.presenceMu.Unlock()
	var later []*room
	for _, r := range due {
		if !h.sendPresence(r, now) {
			later = append(later, r)
		}
	}
	if len(later) > 0 {
		h.presenceMu.Lock()
		h.presenceDue = append(h.presenceDue, later...)
		h.presenceMu.Unlock()
	}
}

// sendPresence publishes r's presence frame unless the last one is too
// recent; it reports whether r is done.
func (h *hub) sendPresence(r *room, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead || !r.presDirty {
		r.presDirty = false
		return true
	}
	if now-r.presLast < int64(h.cfg.PresenceInterval) {
		return false
	}
	frame := codec.MustEncode(&codec.Presence{Room: r.name, Count: r.count(), Joined: r.presJoined, Left: r.presLeft})
	r.publishLocked(h, frame, nil)
	r.presJoined, r.presLeft, r.presDirty, r.presLast = 0, 0, false, now
	return true
}

// members returns the members of r whose key sorts after afterKey, and the
// member count.
func (r *room) membersAfter(afterKey string) ([]nickEntry, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]nickEntry, 0, len(r.members))
	for _, s := range r.members {
		if s.order > afterKey {
			out = append(out, nickEntry{s.order, s.nick})
		}
	}
	for _, m := range r.remote {
		if k := codec.SortKey(m.Nick); k > afterKey {
			out = append(out, nickEntry{k, m.Nick})
		}
	}
	return out, r.count()
}
