package hub

// writeQueue is a loop's sessions with frames to write since the last
// flush, each listed once however many frames it has. Sessions given a
// frame while urgent is set (a small room's message, a direct message, a
// reply) are written first: a drain that also fans a large room's message
// out to thousands of members would otherwise write them after those,
// some milliseconds later. Their frames stay in order, since a session is
// written once with everything it has. Loop goroutine only.
type writeQueue struct {
	first   []*Session // touched while urgent, in that order
	touched []*Session // the others, in the order first touched
	spare   [2][]*Session
	epoch   uint64 // the current flush, from 1; a Session's queuedIn and firstIn say where it is listed
	urgent  bool   // the frames being queued are for few sessions
}

// smallFanout is the most members of a room on a loop for which its
// messages are urgent (the chat bench's "small rooms" are under 100).
const smallFanout = 100

// touch lists s for the next flush unless it is listed already.
func (q *writeQueue) touch(s *Session) {
	switch {
	case q.urgent:
		if s.firstIn != q.epoch {
			s.firstIn = q.epoch
			q.first = append(q.first, s)
		}
	case s.queuedIn != q.epoch:
		s.queuedIn = q.epoch
		q.touched = append(q.touched, s)
	}
}

// empty reports whether no session is listed.
func (q *writeQueue) empty() bool { return len(q.first) == 0 && len(q.touched) == 0 }

// writeAll writes every listed session, the urgent ones first, and then
// those listed while it wrote (a write can close a connection or find a
// slow consumer, which queues frames for others), until none is left. A
// session in both lists is written once: the second finds nothing
// pending.
func (q *writeQueue) writeAll(l *loop) {
	for !q.empty() {
		lists := [2][]*Session{q.first, q.touched}
		q.epoch++
		q.first, q.touched = q.spare[0][:0], q.spare[1][:0]
		q.spare = [2][]*Session{}
		for i, list := range lists {
			for _, s := range list {
				if len(s.pending) > 0 {
					l.writeSession(s)
				}
			}
			clear(list)
			if cap(list) <= maxKeptTouched {
				q.spare[i] = list[:0]
			}
		}
	}
}

// maxKeptTouched is the largest list array kept once it is empty.
const maxKeptTouched = 4096
