package hub

import "parley/codec"

// A member that falls behind in its rooms loses room messages before it
// loses its connection: while the memory its unsent bytes hold is over
// RoomBudget, the room messages for it are dropped, and when it has caught
// up it receives one gap notice per room for the seqs it missed, before
// that room's next message, and can fill them with history. Everything
// else (direct messages, replies, errors, notices, bye) is always queued;
// a session whose unsent bytes pass MaxOutbound is still closed as a slow
// consumer. Loop goroutine of the session only.

// skip is the range of a room's seqs dropped for one member.
type skip struct{ first, last uint64 }

// queueRoom queues a room item's frame for member s, or drops it if s is
// behind and it is a message with a seq.
func (l *loop) queueRoom(s *Session, it *item) bool {
	// What this drain queued counts too: the flush may leave all of it
	// with the transport at once.
	if budget := l.hub.cfg.RoomBudget; it.seq > 0 && budget > 0 && s.out.mem+s.pendingBytes > budget {
		s.skipRoom(it.room, it.seq)
		l.hub.count.skipped.Add(1)
		return false
	}
	if s.skipped != nil {
		if gap := s.owed(it.room); gap != nil {
			l.hub.count.gaps.Add(1)
			s.queue(gap)
		}
	}
	s.queue(it.frame)
	return true
}

func (s *Session) skipRoom(r *room, seq uint64) {
	if s.skipped == nil {
		s.skipped = make(map[*room]*skip)
	}
	if g := s.skipped[r]; g != nil {
		g.last = seq
		return
	}
	s.skipped[r] = &skip{first: seq, last: seq}
}

// owed returns the gap notice s is owed for r, if any, and forgets it.
func (s *Session) owed(r *room) []byte {
	g := s.skipped[r]
	if g == nil {
		return nil
	}
	delete(s.skipped, r)
	if len(s.skipped) == 0 {
		s.skipped = nil
	}
	return codec.MustEncode(&codec.Gap{Room: r.name, First: g.first, Last: g.last})
}

// oweAll sends every gap notice s is owed once it has caught up, for the
// rooms that have said nothing since. It goes through the outbox (an
// itemOwe per room), so that the notice is flushed, and is given in the
// outbox's order: a room message queued before it takes the notice
// first. Sweep.
func (l *loop) oweAll(s *Session) {
	if s.skipped == nil {
		return
	}
	if l.refresh(s); l.hub.cfg.RoomBudget > 0 && s.out.mem > l.hub.cfg.RoomBudget {
		return
	}
	for r := range s.skipped {
		l.push(item{kind: itemOwe, to: s, room: r})
	}
}

// applyOwe queues the gap notice of an itemOwe, unless a room message
// already took it.
func (l *loop) applyOwe(s *Session, r *room) {
	if gap := s.owed(r); gap != nil {
		l.hub.count.gaps.Add(1)
		s.queue(gap)
	}
}
