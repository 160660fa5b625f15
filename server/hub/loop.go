package hub

import (
	"sync"
	"time"

	"parley/codec"
)

// itemKind says what a queued outbox item does when its loop applies it.
type itemKind uint8

const (
	itemRoom     itemKind = iota // frame to the loop's members of room, except one
	itemOne                      // frame to one session
	itemDM                       // direct message to one session, counted in its incoming
	itemBye                      // last frame to one session, then close it
	itemAdd                      // add a session to the loop's members of room
	itemRemove                   // remove a session from the loop's members of room
	itemOwe                      // send a session the gap notice it is owed for room
	itemPresence                 // frame to the loop's members of room, riding along (Session.queueLazy)
	itemTyping                   // droppable frame: to the loop's members of room but one, or to one session, if nothing of theirs is unsent
)

// item is one unit of work queued for a loop. Room messages, membership
// changes and replies share one queue, so each loop applies them in the
// order they were produced: a member receives exactly the room messages
// accepted while it was a member, and replies never overtake them.
type item struct {
	kind   itemKind
	frame  []byte
	room   *room
	to     *Session // itemOne, itemBye, itemAdd, itemRemove
	except *Session // itemRoom: the sender
	seq    uint64   // itemRoom: the message's seq, 0 for a notice
	at     int64    // itemRoom: when the message was handed to the loops (Hub.mono)
}

// loop is the hub's state for one event loop: its sessions, its share of
// each room's members, and an outbox that other goroutines fill. Fields
// below mu are owned by the loop goroutine.
type loop struct {
	hub   *Hub
	index int
	exec  Loop

	runFunc func() // l.run as a value made once: Execute is called for every wake

	mu        sync.Mutex
	items     []item
	fanout    int  // deliveries the queued room items make, about (the members when queued)
	active    bool // the loop goroutine is inside a callback and drains before leaving
	scheduled bool // an Execute(drain) is pending

	spare    []item
	sessions []*Session
	wq       writeQueue // sessions with frames to write
	lazy     lazyQueue  // sessions the sweep found with frames that may wait (lazy.go)
	iov      [][]byte
	batch    []byte // scratch: a blocked client's frames as one slice
	depth    int    // nesting of enter/leave: a write may close a connection inside a drain

	wakes      []*loop // under mu: loops to wake when this callback ends (wakeLater)
	spareWakes []*loop // wakeOthers' other slice

	count               loopCounters // read by Hub.Metrics
	framesOut, bytesOut uint64       // written since the last flush, for count
}

// push queues it for the loop. Safe from any goroutine; callers may hold a
// room lock (push takes only the outbox locks, and never writes to a
// socket).
func (l *loop) push(it item) { l.pushFanout(it, 0, nil) }

// pushFanout is push for an item that makes about members deliveries on
// the loop, which leaveLater weighs. from is the loop of the session the
// item comes from, if any: while that loop is in a callback, the wake-up
// this loop needs waits until the callback ends (wakeLater). Safe from
// any goroutine.
func (l *loop) pushFanout(it item, members int, from *loop) {
	l.mu.Lock()
	l.items = append(l.items, it)
	l.fanout += members
	wake := !l.active && !l.scheduled
	if wake {
		l.scheduled = true
	}
	l.mu.Unlock()
	if wake && (from == nil || from == l || !from.wakeLater(l)) {
		l.wake()
	}
}

// wake has the loop drain its outbox soon. The caller set scheduled.
func (l *loop) wake() {
	if err := l.exec.Execute(l.runFunc); err != nil {
		// The engine is stopping: nobody will drain again.
		l.mu.Lock()
		l.scheduled = false
		l.mu.Unlock()
	}
}

// wakeLater takes on waking other when this loop's callback ends, and
// reports false if this loop is not in one. A sender's read often holds
// many messages: its loop sequences them all before the other loops
// start on the first, so each of them writes every member the messages
// of the whole read at once, instead of the first alone and then the
// rest. Safe from any goroutine: the wake is taken on under mu, which
// leave and leaveLater hold when they clear active, and they wake what
// was taken on after that.
func (l *loop) wakeLater(other *loop) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active {
		return false
	}
	l.wakes = append(l.wakes, other)
	return true
}

// wakeOthers wakes the loops whose wake-ups waited for this callback.
// Loop goroutine only; mu not held.
func (l *loop) wakeOthers() {
	l.mu.Lock()
	wakes := l.wakes
	l.wakes = l.spareWakes[:0]
	l.mu.Unlock()
	for i, o := range wakes {
		o.wake()
		wakes[i] = nil
	}
	l.spareWakes = wakes[:0]
}

// deferFanout is the number of queued deliveries from which a read
// callback leaves the drain to later (leaveLater). 1,000 deliveries are
// about 2 ms of writes on a 2-core machine, against microseconds for the
// engine to read the other ready connections first.
const deferFanout = 1000

// enter marks the loop goroutine as busy in a callback: items pushed until
// leave are drained by leave (or scheduled by leaveLater), with no extra
// Execute. Loop goroutine only.
func (l *loop) enter() {
	l.depth++
	if l.depth > 1 {
		return
	}
	l.mu.Lock()
	l.active = true
	l.mu.Unlock()
}

// run drains the outbox; push schedules it with Execute. Loop goroutine only.
func (l *loop) run() {
	l.enter()
	l.leave()
}

// leave drains the outbox and clears the busy mark when the outermost enter
// ends. Loop goroutine only.
func (l *loop) leave() {
	if l.depth > 1 {
		l.depth--
		return
	}
	// depth stays 1 while draining, so a close nested in a write sees an
	// outer drain in progress and leaves the items to it. The other
	// loops' wake-ups go first: their members need not wait for this
	// loop's writes.
	l.wakeOthers()
	for {
		l.drain()
		l.mu.Lock()
		if len(l.items) == 0 {
			l.active = false
			l.depth = 0
			wakes := len(l.wakes) > 0
			l.mu.Unlock()
			if wakes {
				l.wakeOthers()
			}
			return
		}
		l.mu.Unlock()
	}
}

// leaveLater is leave for a read callback. While the queued items make
// fewer than deferFanout deliveries it drains at once, as leave does;
// from there the outermost one schedules the drain with Execute instead,
// so that the engine first reads the other connections that are ready
// and one drain writes each member once with the frames of all of them
// (what Redis does by writing its clients before it sleeps). Many senders
// to large rooms then cost fewer writes than messages times members,
// while a read that only reaches a few members is written at once. Loop
// goroutine only.
func (l *loop) leaveLater() {
	if l.depth > 1 {
		l.depth--
		return
	}
	l.mu.Lock()
	if l.fanout < deferFanout {
		l.mu.Unlock()
		l.leave()
		return
	}
	wake := (len(l.items) > 0 || !l.wq.empty()) && !l.scheduled
	l.scheduled = l.scheduled || wake
	l.active = false
	l.depth = 0
	l.mu.Unlock()
	l.wakeOthers()
	if wake && l.exec.Execute(l.runFunc) != nil {
		l.run() // the engine is stopping: drain now, nobody else will
	}
}

// drain applies every queued item, then gives each touched session all its
// new frames in one write. It runs only from the outermost leave. A write
// can close a connection synchronously, which re-enters the hub (inside a
// nested enter/leave that does not drain) and may push more items: the
// outer loop picks them up.
func (l *loop) drain() {
	for {
		l.mu.Lock()
		items := l.items
		if len(items) == 0 {
			l.scheduled = false
			l.mu.Unlock()
			l.flush() // sessions touched without an item: the sweep's pings
			return
		}
		l.items, l.fanout = l.spare[:0], 0
		l.mu.Unlock()
		for i := range items {
			l.apply(&items[i])
			items[i] = item{}
		}
		l.spare = items[:0]
		l.flush()
	}
}

func (l *loop) apply(it *item) {
	switch it.kind {
	case itemRoom, itemPresence:
		l.wq.urgent = len(it.room.local[l.index]) <= smallFanout
	default:
		l.wq.urgent = true
	}
	defer func() { l.wq.urgent = false }()
	switch it.kind {
	case itemRoom:
		queued := 0
		for _, s := range it.room.local[l.index] {
			if s != it.except && l.queueRoom(s, it) {
				queued++
			}
		}
		if it.seq > 0 {
			l.count.deliveries.Add(uint64(queued))
			l.count.broadcast.Observe(l.hub.mono() - it.at)
		}
	case itemPresence:
		for _, s := range it.room.local[l.index] {
			s.queueLazy(it.frame)
		}
	case itemOne:
		it.to.queue(it.frame)
	case itemDM:
		it.to.incoming.Add(-int64(len(it.frame)))
		it.to.queue(it.frame)
	case itemBye:
		it.to.queue(it.frame)
		it.to.closeAfterFlush = true
	case itemAdd:
		it.room.addLocal(l.index, it.to)
	case itemRemove:
		it.room.removeLocal(l.index, it.to)
		delete(it.to.skipped, it.room)
	case itemOwe:
		l.applyOwe(it.to, it.room)
	case itemTyping:
		if it.room == nil {
			it.to.queueDroppable(it.frame)
			break
		}
		for _, s := range it.room.local[l.index] {
			if s != it.except {
				s.queueDroppable(it.frame)
			}
		}
	}
}

// maxKeptPending is the largest pending slice a session keeps between
// flushes; a larger one, grown by a burst, is given back.
const maxKeptPending = 256

// iovMax is the most buffers one writev takes (Linux IOV_MAX).
const iovMax = 1024

// flush writes each session touched since the last flush, then publishes
// the counters: once a flush, not once a write.
func (l *loop) flush() {
	l.wq.writeAll(l)
	if l.framesOut > 0 {
		l.count.framesOut.Add(l.framesOut)
		l.count.bytesOut.Add(l.bytesOut)
		l.framesOut, l.bytesOut = 0, 0
	}
}

// writeSession writes s's pending frames, in one Writev per 1024 frames,
// and enforces the outbound limit.
func (l *loop) writeSession(s *Session) {
	if !s.closed {
		l.writePending(s)
	}
	clear(s.pending)
	s.pending, s.pendingBytes, s.lazyWaiting = s.pending[:0], 0, false
	if cap(s.pending) > maxKeptPending {
		s.pending = nil // a burst's slice is not kept for every session
	}
}

func (l *loop) writePending(s *Session) {
	// gnet appends to a non-empty outbound buffer without trying the
	// socket, and drains it only on the loop's next writable event. Under
	// load that can be a while: hand the socket what it takes first, so a
	// client that keeps up is never mistaken for a slow consumer.
	if s.conn.Buffered() > 0 {
		s.conn.Flush()
	}
	l.refresh(s)
	if s.conn.Buffered() > 0 {
		// If the socket still refuses bytes, all of this batch would be
		// queued: when that passes the limit the client is a slow consumer
		// now, and the batch need not be copied at all.
		if !s.closed && s.conn.Buffered() > 0 && s.out.mem+sliceMem(pendingBytes(s.pending)) > int64(l.hub.cfg.MaxOutbound) {
			l.hub.slowConsumer(s, "max outbound")
			return
		}
	}
	if s.closed {
		return
	}
	if s.conn.Buffered() > 0 && len(s.pending) > 1 {
		// The socket is full, so gnet will keep all of the batch: as one
		// slice it takes one pooled buffer (rounded up to a power of two)
		// instead of one per frame. gnet copies it; the scratch is reused.
		l.batch = l.batch[:0]
		for _, f := range s.pending {
			l.batch = append(l.batch, f...)
		}
		l.iov = append(l.iov[:0], l.batch)
		l.writev(s)
		clear(l.iov)
		l.afterWrite(s)
		return
	}
	for p := s.pending; len(p) > 0 && !s.closed; {
		n := chunkLen(p)
		// Writev may trim the slices it is given; hand it a scratch copy.
		l.iov = append(l.iov[:0], p[:n]...)
		l.writev(s)
		p = p[n:]
		if len(p) > 0 && s.out.mem > int64(l.hub.cfg.MaxOutbound) {
			break // a burst bigger than the limit: the rest is not copied
		}
	}
	clear(l.iov)
	l.afterWrite(s)
}

// writeChunk bounds the bytes of one Writev, so that a burst larger than
// the outbound limit is cut off after one chunk past it rather than
// copied whole before the limit is checked.
const writeChunk = 256 << 10

// chunkLen is how many of frames go in one Writev: at most iovMax, and
// at most writeChunk bytes unless one frame alone is more.
func chunkLen(frames [][]byte) int {
	n, bytes := 0, 0
	for n < len(frames) && n < iovMax && (n == 0 || bytes+len(frames[n]) <= writeChunk) {
		bytes += len(frames[n])
		n++
	}
	return n
}

// writev hands l.iov to s's transport and accounts for what it queued.
func (l *loop) writev(s *Session) {
	before := s.conn.Buffered()
	total := pendingBytes(l.iov)
	l.framesOut += uint64(len(l.iov))
	l.bytesOut += uint64(total)
	s.conn.Writev(l.iov)
	if s.closed {
		return
	}
	// Writev trims the slices it sends; the queued tail is what is left
	// of them, as many bytes as Buffered grew by.
	left := s.conn.Buffered() - before
	s.out.written += int64(total)
	if left > 0 {
		l.queued(s, left)
	}
}

// afterWrite closes s after its bye, or as a slow consumer once its
// queued memory passes the limit, and sheds the largest queues when the
// server is over its outbound budget.
func (l *loop) afterWrite(s *Session) {
	switch {
	case s.closed:
	case s.closeAfterFlush:
		l.closeOrLinger(s)
	case s.out.mem > int64(l.hub.cfg.MaxOutbound):
		l.hub.slowConsumer(s, "max outbound")
	case s.out.mem > 0 && l.hub.overTotal():
		l.shed()
	}
}

// byeLinger is how long a connection stays open after its bye so that a
// client still reading its backlog gets the bye too: gnet's close drops
// what the socket does not take at once.
const byeLinger = 2 * time.Second

// closeOrLinger closes s once its buffered bytes, bye included, are all
// with the socket; until then the sweep checks again. Loop goroutine only.
func (l *loop) closeOrLinger(s *Session) {
	if s.conn.Buffered() == 0 || s.reason == codec.ReasonSlowConsumer {
		s.lingerUntil = 0
		s.conn.Close()
		return
	}
	if s.lingerUntil == 0 {
		s.lingerUntil = l.hub.mono() + int64(byeLinger)
	}
}

func pendingBytes(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// addSession and removeSession keep the loop's session list, which the
// heartbeat sweep walks. Loop goroutine only.
func (l *loop) addSession(s *Session) {
	s.loopPos = int32(len(l.sessions))
	l.sessions = append(l.sessions, s)
}

func (l *loop) removeSession(s *Session) {
	last := len(l.sessions) - 1
	moved := l.sessions[last]
	l.sessions[s.loopPos] = moved
	moved.loopPos = s.loopPos
	l.sessions[last] = nil
	l.sessions = l.sessions[:last]
}

// sweep runs the heartbeat for the loop's sessions: ping those due, close
// those idle or not logged in in time. Loop goroutine only.
func (l *loop) sweep(now int64) {
	cfg := &l.hub.cfg
	l.enter()
	for _, s := range l.sessions {
		if s.lazyWaiting {
			l.noteDue(s) // nothing went out since the last sweep: send it alone
		}
		switch {
		case s.lingerUntil != 0 && !s.closed:
			if now >= s.lingerUntil {
				s.lingerUntil = 0
				s.conn.Close()
			} else {
				l.closeOrLinger(s)
			}
		case s.closing || s.closed:
		case s.partialSince != 0 && now-s.partialSince > int64(cfg.FrameTimeout):
			l.hub.closeSession(s, timeoutReason(s))
		case !s.loggedIn && now-s.openedAt > int64(cfg.LoginTimeout):
			l.hub.closeSession(s, codec.ReasonLoginTimeout)
		case s.expires != 0 && now > s.expires:
			l.hub.closeSession(s, codec.ReasonTokenExpired)
		case s.loggedIn && now-s.lastSeen > int64(cfg.IdleTimeout):
			l.hub.closeSession(s, codec.ReasonTimeout)
		case s.loggedIn && now-s.lastPing >= int64(cfg.Heartbeat):
			s.lastPing = now
			s.queueLazy(pingFrame)
		}
		if !s.closed && !s.closeAfterFlush && len(s.out.chunks) > 0 {
			l.checkDeadline(s, now)
		}
		if !s.closed && !s.closeAfterFlush {
			l.oweAll(s)
		}
	}
	if l.hub.overTotal() {
		l.shed()
	}
	l.writeChunk()
	l.leave()
}

// timeoutReason is the bye for a connection that timed out.
func timeoutReason(s *Session) codec.Reason {
	if s.loggedIn {
		return codec.ReasonTimeout
	}
	return codec.ReasonLoginTimeout
}
