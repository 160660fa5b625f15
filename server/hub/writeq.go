package hub

// A loop writes its sessions in passes of at most passBudget sessions, and
// lets its engine read between passes. One message to a room of
// thousands costs thousands of write system calls, tens of milliseconds
// on one core; written in one go, a message to a room of three that
// arrives meanwhile would wait for all of them. In passes, the sessions
// touched since the last pass began (fresh) take up to half a pass, then
// the oldest of those left over (backlog) the rest, so a small room's
// message waits for at most one pass of a large one, and the backlog,
// first in first out, moves by at least half a pass each time: a member
// late in a large room's list is not passed over while messages keep
// coming.
//
// Only the writing is paced: every item is applied when it is drained,
// in order, and a session's frames are written in the order queued, so
// each member still receives each room's messages in seq order and
// membership changes take effect where they were produced. A session
// that gets a frame while it waits in the backlog moves to the fresh
// list with everything it has pending.

// passBudget is how many sessions one pass writes when more are waiting:
// one to a few milliseconds of write system calls on loopback, depending
// on what else the cores are doing.
const passBudget = 256

// maxWriteBacklog bounds the backlog: past it, a pass writes every waiting
// session before the engine reads more, so a flood into large rooms is
// held back by its own sockets as it is without passes.
const maxWriteBacklog = 1 << 14

// writeQueue is a loop's sessions with frames to write. Loop goroutine
// only.
type writeQueue struct {
	fresh   []*Session // touched in the current epoch, in order
	backlog []*Session // left over from earlier passes; may hold sessions already written
	head    int        // backlog[:head] is done
	spare   []*Session // the previous fresh list's array, emptied
	epoch   uint64     // the current epoch, from 1; a Session's queuedIn says whether it is in fresh
}

// touch lists s for the next pass unless it is already in fresh.
func (q *writeQueue) touch(s *Session) {
	if s.queuedIn != q.epoch {
		s.queuedIn = q.epoch
		q.fresh = append(q.fresh, s)
	}
}

// waiting is how many backlog entries are left.
func (q *writeQueue) waiting() int { return len(q.backlog) - q.head }

// pass writes fresh sessions (half a pass while there is a backlog), then
// backlog ones, at most passBudget of them unless the backlog is past
// maxWriteBacklog, and keeps the rest for the next pass. It reports
// whether sessions are left.
func (l *loop) pass() bool {
	q := &l.wq
	fresh := q.fresh
	q.epoch++ // frames queued from here on make a new fresh list
	q.fresh, q.spare = q.spare[:0], nil
	budget, freshBudget := passBudget, passBudget
	if q.waiting() > 0 {
		freshBudget = passBudget / 2
	}
	if q.waiting()+len(fresh) > maxWriteBacklog {
		budget, freshBudget = int(^uint(0)>>1), int(^uint(0)>>1)
	}
	budget -= freshBudget
	done := l.writeSome(fresh, &freshBudget)
	budget += freshBudget // what fresh left over
	q.backlog = append(q.backlog, fresh[done:]...)
	clear(fresh)
	if cap(fresh) <= maxKeptBacklog {
		q.spare = fresh[:0]
	}
	q.head += l.writeSome(q.backlog[q.head:], &budget)
	q.compact()
	return q.waiting() > 0
}

// writeSome writes the sessions of list in order while budget lasts and
// returns how many entries it took. Entries already written (nothing
// pending) cost no budget.
func (l *loop) writeSome(list []*Session, budget *int) int {
	for i, s := range list {
		if len(s.pending) == 0 {
			continue
		}
		if *budget == 0 {
			return i
		}
		*budget--
		l.writeSession(s)
	}
	return len(list)
}

// compact drops the backlog's done entries once they are most of it.
func (q *writeQueue) compact() {
	switch {
	case q.head == len(q.backlog):
		clear(q.backlog)
		q.backlog, q.head = q.backlog[:0], 0
		if cap(q.backlog) > maxKeptBacklog {
			q.backlog = nil
		}
	case q.head > len(q.backlog)/2:
		n := copy(q.backlog, q.backlog[q.head:])
		clear(q.backlog[n:])
		q.backlog, q.head = q.backlog[:n], 0
	}
}

// maxKeptBacklog is the largest list array kept once it is empty.
const maxKeptBacklog = 4096
