package hub

import (
	"fmt"

	"parley/codec"
	"parley/server/broker"
)

// Typing: relayed, never stored, at most once per codec.TypingEvery per
// session and target, not in rooms whose presence is counted (a notice
// to thousands is a burst of writes), and dropped first: a recipient
// with bytes still unsent does not get it (itemTyping).

// maxTypingTargets bounds a session's table of when it last typed where;
// past it the table starts over, which at worst relays one notice early.
const maxTypingTargets = 256

func (h *Hub) handleTyping(s *Session, req *codec.Request) error {
	if (req.Room == "") == (req.To == "") {
		return fmt.Errorf("%w: typing names a room or a user (to), one of them", codec.ErrBadRequest)
	}
	if req.Room != "" {
		r, err := h.memberRoom(s, req.Room)
		if err != nil {
			return err
		}
		if h.typedLately(s, "#"+r.name) {
			h.ack(s, req.Ref, 0)
			return nil
		}
		frame := codec.MustEncode(&codec.Typing{Room: r.name, Nick: s.nick})
		r.mu.Lock()
		counted := r.counted
		if !counted {
			r.publishDroppableLocked(h, frame, s)
		}
		r.mu.Unlock()
		if !counted {
			h.broker.Notice(broker.RoomNotice{Room: r.name, Frame: frame, Droppable: true})
		}
		h.ack(s, req.Ref, 0)
		return nil
	}
	to, err := codec.ParseNick(req.To)
	if err != nil {
		return err
	}
	if !h.typedLately(s, "@"+to.Key) {
		frame := codec.MustEncode(&codec.Typing{To: to.Display, Nick: s.nick})
		if !(handler{h}).tellUser(to.Key, frame) {
			h.broker.NoticeUser(to.Key, frame)
		}
	}
	h.ack(s, req.Ref, 0)
	return nil
}

// typedLately reports whether s typed to target within TypingEvery, and
// notes now as its last time if not.
func (h *Hub) typedLately(s *Session, target string) bool {
	now, pt := h.mono(), s.targets()
	if last, ok := pt.typedAt[target]; ok && now-last < int64(codec.TypingEvery) {
		return true
	}
	if pt.typedAt == nil || len(pt.typedAt) >= maxTypingTargets {
		pt.typedAt = make(map[string]int64)
	}
	pt.typedAt[target] = now
	return false
}

// publishDroppableLocked queues frame for r's members here but except,
// each of them only if it has nothing unsent. r.mu held.
func (r *room) publishDroppableLocked(h *Hub, frame []byte, except *Session) {
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].push(item{kind: itemTyping, room: r, frame: frame, except: except})
		}
	}
}

// queueDroppable queues frame for s unless s has bytes unsent: what
// keeps a member behind is never made worse by a typing notice. Loop
// goroutine of s.
func (s *Session) queueDroppable(frame []byte) {
	if s.out.mem == 0 {
		s.queue(frame)
	}
}

// tellUser gives the sessions of the user with key here a droppable
// frame; false if the user is not here.
func (x handler) tellUser(key string, frame []byte) bool {
	sessions, _, _ := x.h.nicks.sessions(key)
	for _, s := range sessions {
		s.loop.push(item{kind: itemTyping, to: s, frame: frame})
	}
	return len(sessions) > 0
}

// NoticedUser gives a user here a droppable frame from another node.
func (x handler) NoticedUser(key string, frame []byte) { x.tellUser(key, frame) }
