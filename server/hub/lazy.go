package hub

import "time"

// Frames that may wait, a ping or a presence count, are appended to a
// session's pending frames without listing it for a write: they go out
// with its next frame, or at the next sweep. The sweep writes the
// sessions still waiting lazyChunk at a time, lazyPause apart, so that
// the engine reads between: after a presence frame to a room of
// thousands, the sweep had 2,000 to 6,700 such sessions to write at once
// in the chat benchmark, 11 to 34 ms of writes in front of every message
// that arrived meanwhile. Loop goroutine only.

const (
	lazyChunk = 256
	lazyPause = time.Millisecond
)

// lazyQueue is a loop's sessions that the sweep found waiting, in order.
type lazyQueue struct {
	due       []*Session
	next      int    // the first of due not yet written
	scheduled bool   // a write of the next chunk is on a timer
	writeFunc func() // l.writeDue as a value made once
	// after runs f on another goroutine d from now: time.AfterFunc, or
	// a test's hand-fired timer.
	after func(d time.Duration, f func())
}

// afterFunc is lazyQueue.after outside tests.
func afterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// queueLazy appends a frame that may wait to s's pending frames. A
// session that is sent messages then costs no system call for its
// heartbeat, and a presence frame to a room of thousands is not a burst
// of as many writes in front of the messages behind it.
func (s *Session) queueLazy(frame []byte) {
	if s.closed || s.closeAfterFlush {
		return
	}
	s.pending = append(s.pending, frame)
	s.pendingBytes += int64(len(frame))
	s.lazyWaiting = true
}

// noteDue lists s, found waiting by the sweep, for writeChunk.
func (l *loop) noteDue(s *Session) {
	l.lazy.due = append(l.lazy.due, s)
}

// writeChunk lists the next lazyChunk due sessions that still wait for
// the flush, and puts the next chunk on a timer if more are due. Inside
// enter and leave.
func (l *loop) writeChunk() {
	q := &l.lazy
	for n := 0; q.next < len(q.due) && n < lazyChunk; q.next++ {
		s := q.due[q.next]
		q.due[q.next] = nil
		if s.lazyWaiting && !s.closed {
			l.wq.touch(s)
			n++
		}
	}
	if q.next == len(q.due) {
		q.due, q.next = q.due[:0], 0
		if cap(q.due) > maxKeptTouched {
			q.due = nil
		}
		return
	}
	if !q.scheduled {
		q.scheduled = true
		// An error means the engine is stopping, and no sweep follows.
		q.after(lazyPause, func() { _ = l.exec.Execute(q.writeFunc) })
	}
}

// writeDue is writeChunk from the timer, on the loop.
func (l *loop) writeDue() {
	l.enter()
	l.lazy.scheduled = false
	l.writeChunk()
	l.leave()
}
