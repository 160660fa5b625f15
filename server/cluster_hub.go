package server

import (
	"errors"
	"fmt"

	"parley/codec"
)

// A request that needs the bus (a nick claim, a say sequenced by another
// node, a direct message to another node, a who across nodes) holds its
// session: the request runs on a goroutine, frames that arrive meanwhile
// wait in the session's backlog, and resume answers and then handles them
// in order. The event loop never blocks on the bus.

var (
	// errHeld tells handleFrame that the answer comes later, from resume.
	errHeld = errors.New("server: request held for the cluster")
	// errNotReady: the node is not yet subscribed to the room.
	errNotReady = errors.New("server: room not ready on this node")
)

// maxBacklog bounds the frames one held session may send before its
// request completes; beyond it the session is flooding.
const maxBacklog = 1024

// hold keeps frames from s until resume. Loop goroutine of s.
func (h *hub) hold(s *session) { s.waiting = true }

// backlogFrame keeps a frame that arrived while s was held. Loop goroutine.
func (h *hub) backlogFrame(s *session, body []byte) {
	if len(s.backlog) >= maxBacklog {
		h.closeSession(s, codec.ReasonFlood)
		return
	}
	s.backlog = append(s.backlog, append([]byte(nil), body...))
}

// resume runs fn on the loop of s, then handles the frames s sent while it
// was held. fn runs even if s closed meanwhile, to undo what it must.
// Safe from any goroutine.
func (h *hub) resume(s *session, fn func()) {
	l := s.loop
	_ = l.exec.Execute(func() {
		l.enter()
		defer l.leave()
		s.waiting = false
		func() {
			defer h.recoverPanic(s)
			fn()
		}()
		for !s.waiting && len(s.backlog) > 0 && !s.closing && !s.closed {
			body := s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			h.handleBody(s, body)
		}
		if s.closing || s.closed {
			s.backlog = nil
		}
	})
}

// await holds s while prepare runs on a goroutine, then dispatches req
// again: prepare readies what the request needs (a subscription, a room
// owner), so the second pass completes or holds for the next step.
func (h *hub) await(s *session, req *codec.Request, prepare func() error) error {
	h.hold(s)
	again := *req
	h.cluster.goRun(func() {
		err := prepare()
		h.resume(s, func() {
			if s.closing || s.closed {
				return
			}
			if err == nil {
				err = h.dispatch(s, &again)
			}
			if err != nil && !errors.Is(err, errHeld) {
				h.replyError(s, unavailable(err), again.Ref)
			}
		})
	})
	return errHeld
}

// unavailable gives an error from the bus the protocol code unavailable.
func unavailable(err error) error {
	if codec.CodeOf(err) == "" {
		return fmt.Errorf("%w: %v", codec.ErrUnavailable, err)
	}
	return err
}

// clusterLogin claims the nick in the cluster before the session logs in.
func (h *hub) clusterLogin(s *session, nick, key, ref string) error {
	n := h.cluster
	if !n.reserve(key) {
		return fmt.Errorf("%w: %q is online already", codec.ErrNickTaken, nick)
	}
	h.hold(s)
	n.goRun(func() {
		_, err := n.claimNick(key, nick)
		h.resume(s, func() {
			n.unreserve(key)
			switch {
			case err != nil:
				if !s.closed && !s.closing {
					h.replyError(s, err, ref)
				}
			case s.closed || s.closing:
				n.releaseNick(key)
			default:
				s.nick, s.key, s.order = nick, key, codec.SortKey(nick)
				h.nicks.claim(key, s) // reserve kept it free here
				h.finishLogin(s, ref)
			}
		})
	})
	return errHeld
}

// reserve marks a nick as being claimed by a local login; it fails if a
// local session has the nick or is claiming it.
func (n *node) reserve(key string) bool {
	if n.h.nicks.get(key) != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.joining[key] {
		return false
	}
	n.joining[key] = true
	return true
}

func (n *node) unreserve(key string) {
	n.mu.Lock()
	delete(n.joining, key)
	n.mu.Unlock()
}

// online is the number of users online in the cluster.
func (n *node) online() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.dir)
}

// usersAfter returns one page of the cluster's users whose key sorts
// after afterKey, whether more follow, and the count of all of them.
func (n *node) usersAfter(afterKey string, limit int) ([]nickEntry, bool, int) {
	return n.users.page(afterKey, limit)
}

// setDirLocked and dropDirLocked change the directory and its sorted
// index together. n.mu held.
func (n *node) setDirLocked(key string, d dirEntry) {
	if old, ok := n.dir[key]; ok && old.Nick != d.Nick {
		n.users.remove(codec.SortKey(old.Nick))
	}
	n.dir[key] = d
	n.users.add(codec.SortKey(d.Nick), d.Nick)
}

func (n *node) dropDirLocked(key string) {
	if old, ok := n.dir[key]; ok {
		n.users.remove(codec.SortKey(old.Nick))
	}
	delete(n.dir, key)
}

// claimRevision is the revision of this node's claim on a nick, 0 if none.
func (n *node) claimRevision(key string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mine[key]
}

// releaseNickRevision releases a held nick's claim at the end of its hold,
// unless the nick was claimed again since (its revision changed).
func (n *node) releaseNickRevision(key string, rev uint64) {
	n.mu.Lock()
	same := rev != 0 && n.mine[key] == rev
	n.mu.Unlock()
	if same {
		n.releaseNick(key)
	}
}

// clusterSay sends a room message: sequenced here if this node owns the
// room, by the owner otherwise, and to local members only, without a seq,
// while the bus is down. Loop goroutine of s.
func (h *hub) clusterSay(s *session, r *room, req *codec.Request) error {
	n := h.cluster
	if !n.connected() {
		h.sayUnsequenced(s, r, req.Body)
		h.ack(s, req.Ref, 0)
		return nil
	}
	r.mu.Lock()
	if r.owned {
		seq := h.sequenceLocked(r, s.nick, s.key, req.Body, h.wallMillis(), s)
		r.mu.Unlock()
		h.ack(s, req.Ref, seq)
		return nil
	}
	r.mu.Unlock()
	owner, ok := n.ownerOf(r.name)
	if !ok || owner == n.id {
		return h.await(s, req, func() error {
			_, err := n.claimRoom(r.name)
			return err
		})
	}
	n.forwardSay(s, owner, r.name, req.Ref, req.Body, h.wallMillis())
	return nil
}

// sayUnsequenced delivers a message to the local members only: the bus is
// down, so the room's sequence cannot be reached.
func (h *hub) sayUnsequenced(s *session, r *room, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(h, codec.MustEncode(&codec.Msg{From: s.nick, Room: r.name, Body: body, TS: h.wallMillis()}), s)
}

// sayForwarded sequences a message sent on another node, if this node owns
// the room. Dispatcher goroutine.
func (h *hub) sayForwarded(name, key, nick, body string, ts int64) (uint64, error) {
	r := h.rooms.get(name)
	if r == nil || !h.cluster.connected() {
		return 0, errNotOwner
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.owned || r.dead {
		return 0, errNotOwner
	}
	return h.sequenceLocked(r, nick, key, body, ts, r.members[key]), nil
}

// remoteMsg hands a room message from the bus to the local members, except
// its sender, and reports whether it was delivered. A seq at or below
// the last one seen is a replay or a deposed owner's and is dropped, so
// members never see a seq twice or out of order. Dispatcher goroutine.
func (h *hub) remoteMsg(name string, seq uint64, key string, frame []byte) bool {
	r := h.rooms.get(name)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.seq {
		return false
	}
	r.seq = seq
	r.publishLocked(h, frame, r.members[key])
	return true
}

// remotePresence applies a join, a leave or a full member list from another
// node. Dispatcher goroutine.
func (h *hub) remotePresence(name string, in *busMsg) {
	r := h.rooms.get(name)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.Sync {
		for _, m := range in.Members {
			m.Node = in.Node
			if _, known := r.remote[m.Key]; !known {
				h.remoteJoinLocked(r, m)
			}
		}
		return
	}
	if in.Join {
		h.remoteJoinLocked(r, member{Key: in.Key, Nick: in.Nick, Node: in.Node})
		return
	}
	h.remoteLeaveLocked(r, in.Key, in.Reason)
}

func (h *hub) remoteJoinLocked(r *room, m member) {
	if _, in := r.remote[m.Key]; in {
		return
	}
	before := r.count()
	r.addRemote(m)
	h.announceLocked(r, before, true, func() []byte { return codec.MustEncode(&codec.Joined{Nick: m.Nick, Room: r.name}) }, nil)
}

func (h *hub) remoteLeaveLocked(r *room, key string, reason codec.Reason) {
	m, in := r.remote[key]
	if !in {
		return
	}
	before := r.count()
	delete(r.remote, key)
	h.announceLocked(r, before, false, func() []byte {
		return codec.MustEncode(&codec.Left{Nick: m.Nick, Room: r.name, Reason: reason})
	}, nil)
}

// addRemote records a member on another node. r.mu held.
func (r *room) addRemote(m member) {
	if r.remote == nil {
		r.remote = make(map[string]member)
	}
	r.remote[m.Key] = m
}

// dropRemoteMembers removes a dead node's users from every room here,
// telling the members they left with reason disconnect. It returns how
// many memberships ended.
func (h *hub) dropRemoteMembers(id string) int {
	dropped := 0
	for _, r := range h.rooms.all() {
		r.mu.Lock()
		for k, m := range r.remote {
			if m.Node == id {
				h.remoteLeaveLocked(r, k, codec.ReasonDisconnect)
				dropped++
			}
		}
		r.mu.Unlock()
	}
	return dropped
}

// localMembers lists a room's members on this node. Safe from any goroutine.
func (h *hub) localMembers(name string) []member {
	r := h.rooms.get(name)
	if r == nil {
		return nil
	}
	return r.localMembers()
}

func (r *room) localMembers() []member {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]member, 0, len(r.members))
	for k, s := range r.members {
		out = append(out, member{Key: k, Nick: s.nick})
	}
	return out
}

// all returns every room. Safe from any goroutine.
func (t roomTable) all() []*room {
	var out []*room
	t.each(func(m map[string]*room) {
		for _, r := range m {
			out = append(out, r)
		}
	})
	return out
}

// isReady reports whether this node follows the room's traffic.
func (r *room) isReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// remoteDM sends a direct message to a user who is not on this node.
func (h *hub) remoteDM(s *session, req *codec.Request, toKey string) error {
	n := h.cluster
	h.hold(s)
	again := *req
	nick, ts := s.nick, h.wallMillis()
	n.goRun(func() {
		var err error
		switch to, ok := n.lookupNick(toKey); {
		case ok && to.Node == n.id:
			err = notOnline(codec.ErrNoSuchUser, again.To, "is not online")
		case ok:
			err = n.forwardDM(to, toKey, nick, again.Body, ts)
		case !n.connected():
			err = fmt.Errorf("%w: the cluster bus is down", codec.ErrUnavailable)
		default:
			err = notOnline(codec.ErrNoSuchUser, again.To, "is not online")
		}
		h.resume(s, func() {
			switch {
			case s.closing || s.closed:
			case err != nil:
				h.replyError(s, err, again.Ref)
			default:
				h.ack(s, again.Ref, 0)
			}
		})
	})
	return errHeld
}

// remoteWho lists a room this node does not follow by asking every node.
func (h *hub) remoteWho(s *session, req *codec.Request, afterKey string) error {
	n := h.cluster
	h.hold(s)
	again := *req
	n.goRun(func() {
		members := n.gather(again.Room)
		h.resume(s, func() {
			if s.closing || s.closed {
				return
			}
			var entries []nickEntry
			if local := h.rooms.get(again.Room); local != nil {
				members = append(members, local.localMembers()...)
			}
			for _, m := range members {
				if k := codec.SortKey(m.Nick); k > afterKey {
					entries = append(entries, nickEntry{k, m.Nick})
				}
			}
			h.sendUsers(s, &again, entries, len(members))
		})
	})
	return errHeld
}
