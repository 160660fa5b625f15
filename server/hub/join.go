package hub

import (
	"errors"
	"fmt"

	"parley/codec"
	"parley/server/broker"
)

// Joining and leaving rooms: membership under the room's lock, the
// broker followed for rooms shared with other nodes, joined and left
// announced (or counted, presence.go), and a room that empties dies when
// its history does.

func (h *Hub) handleJoin(s *Session, req *codec.Request) error {
	name, err := h.requireRoom(req.Room)
	if err != nil {
		return err
	}
	if s.rooms.get(name) == nil {
		if !h.allowJoin(s) {
			return fmt.Errorf("%w: joining and leaving rooms too fast", codec.ErrRateLimited)
		}
		if err := h.mayEnter(s, name); err != nil {
			return err
		}
		if err := h.allowCreate(s, name); err != nil {
			return err
		}
	}
	return h.join(s, name, req.Ref, resumeOf(req), false)
}

func (h *Hub) handleLeave(s *Session, req *codec.Request) error {
	if req.Room == "" {
		return fmt.Errorf("%w: room is required", codec.ErrBadRequest)
	}
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	if !h.allowJoin(s) {
		return fmt.Errorf("%w: joining and leaving rooms too fast", codec.ErrRateLimited)
	}
	h.leave(s, r, codec.ReasonLeave)
	h.ack(s, req.Ref, 0)
	return nil
}

// allowJoin takes a join or a leave out of s's budget for them.
func (h *Hub) allowJoin(s *Session) bool {
	return s.joins == nil || s.joins.Allow()
}

// enterRoomLocked adds s to r and announces it, unless another session
// of its account is a member already, here or on another node. Loop
// goroutine of s; r.mu held.
func (h *Hub) enterRoomLocked(s *Session, r *room) {
	before := r.count()
	if before == 0 && r.seq == 0 && len(r.hist) == 0 { // the room did not exist, here or elsewhere
		h.claimRoom(s, r.name)
	}
	r.perLoop[s.loop.index]++
	s.loop.push(item{kind: itemAdd, room: r, to: s})
	s.rooms.add(r)
	if m := r.members[s.key]; m != nil {
		m.sessions++
		return
	}
	r.members[s.key] = &member{nick: s.nick, order: s.order, account: s.account, sessions: 1}
	h.broker.Joined(r.name, broker.User{Key: s.key, Nick: s.nick, Account: s.account})
	if _, elsewhere := r.remote[s.key]; elsewhere {
		r.both++ // its account's sessions on another node are members already
		return
	}
	h.announceLocked(r, before, true, func() []byte { return joinedFrame(s.nick, r.name) }, s)
	h.memberEvent(r, s, true, "")
}

// The frames of joins, leaves and direct messages, built in one place for
// local and remote members alike.
func joinedFrame(nick, room string) []byte {
	return codec.MustEncode(&codec.Joined{Nick: nick, Room: room})
}

func leftFrame(nick, room string, reason codec.Reason) []byte {
	return codec.MustEncode(&codec.Left{Nick: nick, Room: room, Reason: reason})
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
//
// A join that waits (for the follow, for a replay, for the log) is
// retried by retryJoin, and counts in the room's joining until then, so
// that the room, still without members, does not die under it; retried
// says this is that retry, which takes its count back once it holds the
// room's lock again.
func (h *Hub) join(s *Session, name, ref string, rs *resume, retried bool) error {
	if s.rooms.get(name) != nil {
		h.unjoin(name, retried)
		h.ack(s, ref, 0)
		return nil
	}
	if len(s.rooms) >= h.cfg.RoomsPerSession {
		h.unjoin(name, retried)
		return codec.ErrTooManyRooms
	}
	r := h.rooms.acquire(name, h.newRoom)
	if retried {
		r.joining--
	}
	h.refreshLimitedLocked(r)
	if wait := h.replayWaitLocked(s, r, rs); wait > 0 {
		r.joining++
		r.mu.Unlock()
		return h.after(s, wait, func() { h.retryJoin(s, name, ref, rs) })
	}
	if r.followed && h.needsLog(r, rs) {
		r.joining++
		r.mu.Unlock()
		return h.readForResume(s, name, rs, func() { h.retryJoin(s, name, ref, rs) })
	}
	if r.followed {
		h.enterRoomLocked(s, r)
		if ref != "" {
			s.send(codec.MustEncode(&codec.Ack{Ref: ref, Seq: r.seq, Epoch: r.epoch}))
		}
		if topic := h.topicOf(name); topic != nil {
			s.send(topic)
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
		r.joining++
		r.mu.Unlock()
		if first {
			h.broker.Follow(name, func(remote []broker.User, last uint64, err error) { h.followDone(r, remote, last, err) })
		}
	})
}

// retryJoin joins again once the broker's Follow finished (or a replay or
// the log it waited for); if the follow failed, the join fails with
// unavailable. Loop goroutine of s.
func (h *Hub) retryJoin(s *Session, name, ref string, rs *resume) {
	r := h.rooms.get(name)
	if s.closing || s.closed || r == nil || !r.isFollowed() {
		h.unjoin(name, true)
		if r != nil {
			h.dropIfUnused(r)
		}
		if !s.closing && !s.closed {
			h.replyError(s, fmt.Errorf("%w: the room could not be followed", codec.ErrUnavailable), ref)
		}
		return
	}
	if err := h.join(s, name, ref, rs, true); err != nil && !errors.Is(err, errHeld) {
		h.replyError(s, err, ref)
	}
}

// unjoin takes back a retried join's count of the room called name
// without joining it.
func (h *Hub) unjoin(name string, retried bool) {
	if !retried {
		return
	}
	if r := h.rooms.get(name); r != nil {
		r.mu.Lock()
		r.joining--
		r.mu.Unlock()
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
	if err == nil {
		h.preload(r, last)
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
		if !r.departed[departure(u.Key, u.Node)] && !r.addRemote(u) && r.members[u.Key] != nil {
			r.both++
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
	s.rooms.remove(r)
	if h.leaveLocked(s, r, reason) {
		h.dropRoom(r)
	}
}

// mayDieLocked decides a room's life, in one place: a room with no local
// member dies unless it is the lobby, the broker owns it here (it holds
// the room's seq), or a follow or a join that waited is in progress. r.mu held.
func (h *Hub) mayDieLocked(r *room) bool {
	r.dead = len(r.members) == 0 && r.name != codec.Lobby && !r.owned && r.following == nil && r.joining == 0 && r.pins == 0 &&
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
	h.broker.Left(r.name, s.key, s.nick, reason)
	if _, elsewhere := r.remote[s.key]; elsewhere {
		r.both-- // still a member through its account's sessions on another node
		return h.mayDieLocked(r)
	}
	h.announceLocked(r, before, false, func() []byte { return leftFrame(s.nick, r.name, reason) }, s)
	h.memberEvent(r, s, false, reason)
	return h.mayDieLocked(r)
}
