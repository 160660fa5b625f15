package hub

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// room is a chat room. Fields under mu are shared; local is split by loop,
// and each loop's part is touched only by that loop's goroutine, through
// itemAdd and itemRemove applied in order with the room's messages.
type room struct {
	name string

	mu      sync.Mutex
	seq     uint64             // last seq delivered to the local members
	issued  uint64             // last seq given out here, as the room's sequencer; at least seq
	epoch   string             // names the room's sequence (docs/PROTOCOL.md)
	hist    histList           // its last messages, oldest first (history.go)
	ageIdx  int                // its place in Hub.ages + 1, 0 when absent; under Hub.ages.mu
	members map[string]*member // by nick key (codec.Name.Key)
	perLoop []int              // members on each loop: which loops a broadcast visits
	dead    bool               // emptied and leaving the room table

	counted              bool  // over the presence limit: changes are counted
	presJoined, presLeft int   // changes counted since the last presence frame
	presDirty            bool  // a presence frame is due
	presLast             int64 // when the last presence frame went out

	local [][]*Session // per loop: that loop's members

	// What the broker told, under mu. On a single node the room is
	// followed at once and never owned or given remote members.
	remote    map[string]broker.User // members on other nodes, by nick key
	owned     bool                   // the broker sequences it here: keep it while empty
	followed  bool                   // the broker delivers its traffic here
	following []func()               // joins waiting for Follow to finish; nil when none
	departed  map[string]bool        // remote members who left while Follow ran: its list of them is stale
}

// member is a user in a room here: the nick once, however many of its
// account's sessions are in the room.
type member struct {
	nick, order string
	sessions    int
}

// count is the room's size across the cluster. r.mu held.
func (r *room) count() int { return len(r.members) + len(r.remote) }

func newRoom(name string, loops int) *room {
	return &room{
		name:    name,
		members: make(map[string]*member),
		perLoop: make([]int, loops),
		local:   make([][]*Session, loops),
	}
}

// publishLocked queues frame for every member except one, one outbox item
// per loop that has members. Callers hold r.mu, which orders the room's
// frames identically on every loop.
func (r *room) publishLocked(h *Hub, frame []byte, except *Session) {
	r.publishSeqLocked(h, frame, except, 0)
}

// publishSeqLocked is publishLocked for a message with its seq: a member
// that has fallen behind may have it dropped, and be told with a gap
// (skip.go).
func (r *room) publishSeqLocked(h *Hub, frame []byte, except *Session, seq uint64) {
	var at int64
	if seq > 0 {
		at = h.mono()
	}
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].pushFanout(item{kind: itemRoom, room: r, frame: frame, except: except, seq: seq, at: at}, n)
		}
	}
}

// addLocal and removeLocal maintain one loop's member list. Loop goroutine
// of index only.
func (r *room) addLocal(index int, s *Session) {
	if s.slots == nil {
		s.slots = make(map[*room]int)
	}
	s.slots[r] = len(r.local[index])
	r.local[index] = append(r.local[index], s)
}

func (r *room) removeLocal(index int, s *Session) {
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
func (h *Hub) individualLocked(r *room, after int) bool {
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

// enterRoomLocked adds s to r and announces it, unless another session
// of its account is a member already. Loop goroutine of s; r.mu held.
func (h *Hub) enterRoomLocked(s *Session, r *room) {
	before := r.count()
	r.perLoop[s.loop.index]++
	s.loop.push(item{kind: itemAdd, room: r, to: s})
	s.rooms[r.name] = r
	if m := r.members[s.key]; m != nil {
		m.sessions++
		return
	}
	r.members[s.key] = &member{nick: s.nick, order: s.order, sessions: 1}
	h.announceLocked(r, before, true, func() []byte { return joinedFrame(s.nick, r.name) }, s)
	h.broker.Joined(r.name, broker.User{Key: s.key, Nick: s.nick})
}

// The frames of joins, leaves and direct messages, built in one place for
// local and remote members alike.
func joinedFrame(nick, room string) []byte {
	return codec.MustEncode(&codec.Joined{Nick: nick, Room: room})
}

func leftFrame(nick, room string, reason codec.Reason) []byte {
	return codec.MustEncode(&codec.Left{Nick: nick, Room: room, Reason: reason})
}

func dmFrame(from, to, body string, ts int64, seq uint64) []byte {
	return codec.MustEncode(&codec.Msg{From: from, To: to, Body: body, TS: ts, Seq: seq})
}

// announceLocked tells r's members here of a join or a leave: one by one
// while the room is small, else counted into the next presence frame.
// r.mu held.
func (h *Hub) announceLocked(r *room, before int, joined bool, frame func() []byte, except *Session) {
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

// join puts s in the room called name, creating it if needed, and acks
// ref. A room the broker does not follow yet is followed first: s is held
// until then, and joins of other sessions meanwhile wait with it.
func (h *Hub) join(s *Session, name, ref string, rs *resume) error {
	if _, in := s.rooms[name]; in {
		h.ack(s, ref, 0)
		return nil
	}
	if len(s.rooms) >= h.cfg.RoomsPerSession {
		return codec.ErrTooManyRooms
	}
	r := h.rooms.acquire(name, h.newRoom)
	if wait := h.replayWaitLocked(s, r, rs); wait > 0 {
		r.mu.Unlock()
		return h.after(s, wait, func() { h.retryJoin(s, name, ref, rs) })
	}
	if r.followed && h.needsLog(r, rs) {
		r.mu.Unlock()
		return h.readForResume(s, name, rs, func() { h.retryJoin(s, name, ref, rs) })
	}
	if r.followed {
		h.enterRoomLocked(s, r)
		if ref != "" {
			s.send(codec.MustEncode(&codec.Ack{Ref: ref, Seq: r.seq, Epoch: r.epoch}))
		}
		if rs != nil {
			h.resumeLocked(s, r, rs)
		}
		r.mu.Unlock()
		return nil
	}
	return h.call(s, func(done func(func())) {
		first := r.following == nil
		r.following = append(r.following, func() { done(func() { h.retryJoin(s, name, ref, rs) }) })
		r.mu.Unlock()
		if first {
			h.broker.Follow(name, func(remote []broker.User, last uint64, err error) { h.followDone(r, remote, last, err) })
		}
	})
}

// retryJoin joins again once the broker's Follow finished; if it failed,
// the join fails with unavailable. Loop goroutine of s.
func (h *Hub) retryJoin(s *Session, name, ref string, rs *resume) {
	r := h.rooms.get(name)
	if s.closing || s.closed || r == nil || !r.isFollowed() {
		if r != nil {
			h.dropIfUnused(r)
		}
		if !s.closing && !s.closed {
			h.replyError(s, fmt.Errorf("%w: the room could not be followed", codec.ErrUnavailable), ref)
		}
		return
	}
	if err := h.join(s, name, ref, rs); err != nil && !errors.Is(err, errHeld) {
		h.replyError(s, err, ref)
	}
}

// followDone records the outcome of the broker's Follow and wakes the
// joins that waited for it. Any goroutine.
func (h *Hub) followDone(r *room, remote []broker.User, last uint64, err error) {
	r.mu.Lock()
	waiting := r.following
	r.following = nil
	if err == nil && !r.dead {
		h.followedLocked(r, remote, last)
	}
	r.mu.Unlock()
	for _, wake := range waiting {
		wake()
	}
}

// followed marks the room followed, with its members elsewhere and the
// last seq in its log.
func (h *Hub) followed(r *room, remote []broker.User, last uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.followedLocked(r, remote, last)
}

// followedLocked: members who join now start after last, so a later seq
// beyond the next is a gap they are told of. r.mu held.
func (h *Hub) followedLocked(r *room, remote []broker.User, last uint64) {
	r.followed = true
	r.seq = max(r.seq, last)
	for _, u := range remote {
		if !r.departed[u.Key] {
			r.addRemote(u)
		}
	}
	r.departed = nil
}

// isFollowed reports whether the broker delivers the room's traffic here.
func (r *room) isFollowed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.followed
}

// enterLobby puts a session that just logged in into the lobby, after
// its welcome, which carries the lobby's epoch and last seq, and replays
// what it missed there if it resumes.
func (h *Hub) enterLobby(s *Session, welcome *codec.Welcome, rs *resume) {
	h.lobby.mu.Lock()
	defer h.lobby.mu.Unlock()
	welcome.Epoch, welcome.Seq = h.lobby.epoch, h.lobby.seq
	s.send(codec.MustEncode(welcome))
	h.enterRoomLocked(s, h.lobby)
	if rs != nil {
		h.resumeLocked(s, h.lobby, rs)
	}
}

// leave takes s out of r, tells the others why, and drops r when nothing
// needs it any more. Loop goroutine of s.
func (h *Hub) leave(s *Session, r *room, reason codec.Reason) {
	delete(s.rooms, r.name)
	if h.leaveLocked(s, r, reason) {
		h.dropRoom(r)
	}
}

// mayDieLocked decides a room's life, in one place: a room with no local
// member dies unless it is the lobby, the broker owns it here (it holds
// the room's seq), or a follow is in progress. r.mu held.
func (h *Hub) mayDieLocked(r *room) bool {
	r.dead = len(r.members) == 0 && r.name != codec.Lobby && !r.owned && r.following == nil &&
		(len(r.hist) == 0 || h.brokerLog)
	if r.dead {
		h.forgetRoomLocked(r)
	}
	return r.dead
}

// dropIfUnused drops r if nothing needs it.
func (h *Hub) dropIfUnused(r *room) {
	r.mu.Lock()
	dead := !r.dead && h.mayDieLocked(r)
	r.mu.Unlock()
	if dead {
		h.dropRoom(r)
	}
}

// dropRoom removes a dead room from the table and stops its traffic; its
// memory goes with the last reference.
func (h *Hub) dropRoom(r *room) {
	h.rooms.remove(r)
	if r.followed {
		h.broker.Unfollow(r.name)
	}
}

// leaveLocked does the part of leave under r.mu; it reports whether r died.
func (h *Hub) leaveLocked(s *Session, r *room, reason codec.Reason) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := r.count()
	r.perLoop[s.loop.index]--
	s.loop.push(item{kind: itemRemove, room: r, to: s})
	if m := r.members[s.key]; m != nil && m.sessions > 1 {
		m.sessions-- // the account's other sessions are still here
		return false
	}
	delete(r.members, s.key)
	h.announceLocked(r, before, false, func() []byte { return leftFrame(s.nick, r.name, reason) }, s)
	h.broker.Left(r.name, s.key, s.nick, reason)
	return h.mayDieLocked(r)
}

// sequenceLocked gives a message the next seq of r, encodes it once and
// hands it to the broker under the lock, so that the room's log gets its
// messages in seq order. Stored at once (a single node), it is queued for
// the local members except one; otherwise it comes back through Deliver
// once stored. r.mu held.
func (h *Hub) sequenceLocked(r *room, m broker.Message, except *Session) uint64 {
	r.issued = max(r.issued, r.seq) + 1
	seq := r.issued
	frame := codec.MustEncode(&codec.Msg{From: m.Nick, Room: r.name, Body: m.Body, TS: m.TS, Seq: seq, ID: m.ID})
	h.count.roomMessages.Add(1)
	if h.broker.Append(m, seq, frame) {
		r.seq = seq
		r.publishSeqLocked(h, frame, except, seq)
		var stored func(error)
		if except != nil && h.storeAcks(m.Ref) {
			stored = h.ackWhenStored(except, m.Ref, seq)
		}
		h.rememberLocked(r, seq, frame, stored)
	}
	return seq
}

// storeAcks reports whether a local say with ref is acked by the history
// store once the disk has it (--data-dir), so that an ack means the
// message survives the process, rather than at once.
func (h *Hub) storeAcks(ref string) bool {
	return ref != "" && h.durable && h.cfg.HistoryLen > 0
}

// ackWhenStored is the store's callback that acks sender's say, or
// answers not_stored.
func (h *Hub) ackWhenStored(sender *Session, ref string, seq uint64) func(error) {
	return func(err error) {
		if err != nil {
			err = fmt.Errorf("%w: delivered to the room as seq %d, but not written to disk: %v", codec.ErrNotStored, seq, err)
		}
		sender.SayDone(ref, seq, err)
	}
}

// sayUnsequenced delivers a message to the local members only, without a
// seq: the broker cannot reach the room's sequence. Loop goroutine of s.
func (h *Hub) sayUnsequenced(s *Session, r *room, m broker.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(h, codec.MustEncode(&codec.Msg{From: m.Nick, Room: r.name, Body: m.Body, TS: m.TS, ID: m.ID}), s)
}

// markPresence records that r owes its members a presence frame. r.mu held.
func (h *Hub) markPresence(r *room) {
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
func (h *Hub) flushPresence(now int64) {
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

// presenceMembers bounds what a room's presence frames cost: a room of n
// members gets one at most every ⌈n/presenceMembers⌉ intervals, so that
// presence in one room is at most about presenceMembers deliveries an
// interval. A presence frame to a room of thousands is a burst of as many
// writes as a message, and, sent every second while sessions come and go,
// it delayed the messages behind it: the chat benchmark's small-room p99
// went from 11 to 46-90 ms with 20 sessions a second coming and going.
const presenceMembers = 1000

// presenceGap is the least time between two presence frames in a room of
// members, in nanoseconds.
func presenceGap(interval time.Duration, members int) int64 {
	return int64(interval) * int64(max(1, (members+presenceMembers-1)/presenceMembers))
}

// sendPresence publishes r's presence frame unless the last one is too
// recent; it reports whether r is done.
func (h *Hub) sendPresence(r *room, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead || !r.presDirty {
		r.presDirty = false
		return true
	}
	if now-r.presLast < presenceGap(h.cfg.PresenceInterval, r.count()) {
		return false
	}
	frame := codec.MustEncode(&codec.Presence{Room: r.name, Count: r.count(), Joined: r.presJoined, Left: r.presLeft})
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].push(item{kind: itemPresence, room: r, frame: frame})
		}
	}
	r.presJoined, r.presLeft, r.presDirty, r.presLast = 0, 0, false, now
	return true
}

// membersAfter returns the members of r whose sort key follows afterKey,
// and the member count.
func (r *room) membersAfter(afterKey string) ([]nickEntry, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]nickEntry, 0, len(r.members))
	for _, m := range r.members {
		if m.order > afterKey {
			out = append(out, nickEntry{m.order, m.nick})
		}
	}
	for _, m := range r.remote {
		if k := codec.SortKey(m.Nick); k > afterKey {
			out = append(out, nickEntry{k, m.Nick})
		}
	}
	return out, r.count()
}
