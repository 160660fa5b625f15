package hub

// writeQueue is a loop's sessions with frames to write since the last
// flush, each listed once however many frames it has. Loop goroutine only.
type writeQueue struct {
	touched []*Session // in the order first touched
	spare   []*Session // the previous list's array, emptied
	epoch   uint64     // the current flush, from 1; a Session's queuedIn says whether it is listed
}

// touch lists s for the next flush unless it is listed already.
func (q *writeQueue) touch(s *Session) {
	if s.queuedIn != q.epoch {
		s.queuedIn = q.epoch
		q.touched = append(q.touched, s)
	}
}

// writeAll writes every listed session, and then those listed while it
// wrote (a write can close a connection or find a slow consumer, which
// queues frames for others), until none is left.
func (q *writeQueue) writeAll(l *loop) {
	for len(q.touched) > 0 {
		list := q.touched
		q.epoch++
		q.touched, q.spare = q.spare[:0], nil
		for _, s := range list {
			if len(s.pending) > 0 {
				l.writeSession(s)
			}
		}
		clear(list)
		if cap(list) <= maxKeptTouched {
			q.spare = list[:0]
		}
	}
}

// maxKeptTouched is the largest list array kept once it is empty.
const maxKeptTouched = 4096
