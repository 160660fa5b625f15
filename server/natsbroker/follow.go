package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/codec"
)

// A node delivers a followed room's messages in the order of the room's
// log. The stream republishes each stored message with the stream
// sequence of the room's previous one, so a node that missed one (its bus
// link dropped, NATS restarted, its subscription fell behind) sees the
// break at the next message and catches up from the stream, holding the
// live messages meanwhile. A break with no next message is found by
// asking the stream after each of those events (resync). Every delivery
// happens on the dispatcher goroutine, in log order.

// cursor is where this node is in a followed room's log. n.mu guards it;
// only the dispatcher delivers.
type cursor struct {
	last     uint64   // stream sequence of the last message delivered here
	known    bool     // last is set: Follow read the log's end
	fetching bool     // a catch-up is under way: live messages wait in held
	held     []logMsg // live messages that arrived during the catch-up, in order
	// again: messages may be missing past the end this catch-up reads
	// (held overflowed, or a resync was asked for while it ran, after
	// messages that no held one follows may have been lost): read the log
	// once more when it gets there.
	again bool
}

// logMsg is one stored room message, as the stream republished it or a
// catch-up read it.
type logMsg struct {
	sseq, prev uint64 // its stream sequence, and the room's previous one
	entry
}

// maxHeld bounds the live messages a catch-up holds; the stream keeps
// the rest, so the catch-up reads them too.
const maxHeld = 4096

// fetchBatch is how many messages one catch-up step reads.
const fetchBatch = 512

// fetchResult is one catch-up step, for the dispatcher.
type fetchResult struct {
	room string
	msgs []logMsg
	end  bool // the step reached the end of the log
	err  error
}

// republished parses a room message the stream republished.
func republished(m *nats.Msg) (logMsg, bool) {
	sseq, err1 := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
	e, ok := decodeEntry(m.Data)
	if err1 != nil || err2 != nil || !ok {
		return logMsg{}, false
	}
	return logMsg{sseq: sseq, prev: prev, entry: e}, true
}

// received handles a live room message. Dispatcher goroutine.
func (n *Broker) received(room string, lm logMsg) {
	n.mu.Lock()
	l := n.cursors[room]
	var deliver bool
	var from uint64
	switch {
	case l == nil: // no longer followed
	case l.fetching:
		l.hold(lm)
	case lm.sseq <= l.last: // delivered already
	case !l.known || lm.prev <= l.last:
		l.last, deliver = lm.sseq, true
	default: // a message is missing before this one
		l.fetching = true
		l.hold(lm)
		from = l.last + 1
	}
	n.mu.Unlock()
	if deliver {
		n.deliver(room, lm.entry)
	}
	if from > 0 {
		n.fetch(room, from, false)
	}
}

func (l *cursor) hold(lm logMsg) {
	if len(l.held) >= maxHeld {
		l.held, l.again = nil, true
		return
	}
	l.held = append(l.held, lm)
}

// deliver hands one stored message to the hub and answers its say if it
// came from this node: stored, it is acknowledged even if the hub had
// nobody to give it to. Dispatcher goroutine.
func (n *Broker) deliver(room string, e entry) {
	n.h.Deliver(room, e.seq, n.sayer(e.token), e.frame)
	n.settle(e.token, e.seq, nil)
}

// resync catches a followed room up with its log from the last message
// delivered here, if a catch-up is not already under way: after this
// node's bus link came back, after its subscription fell behind, and
// after the room's owner died. Any goroutine.
func (n *Broker) resync(room string) {
	n.mu.Lock()
	var from uint64
	if l := n.cursors[room]; l != nil {
		from = l.resync()
	}
	n.mu.Unlock()
	if from > 0 {
		n.fetch(room, from, false)
	}
}

// resync starts a catch-up and returns where to read the log from, or 0
// if it cannot start one. A catch-up under way reads the log once more at
// its end instead: the loss this resync is for may lie past what it reads,
// with no live message after it to show the break. n.mu held.
func (l *cursor) resync() uint64 {
	switch {
	case !l.known:
		return 0
	case l.fetching:
		l.again = true
		return 0
	}
	l.fetching = true
	return l.last + 1
}

// fetch reads one batch of a room's log from stream sequence from on, on
// a goroutine of its own (after fetchPause if pause), and hands it to the
// dispatcher.
func (n *Broker) fetch(room string, from uint64, pause bool) {
	n.goRun(func() {
		if pause {
			select {
			case <-time.After(fetchPause):
			case <-n.ctx.Done():
				return
			}
		}
		res := n.readLog(room, from)
		select {
		case n.fetched <- res:
		case <-n.ctx.Done():
		}
	})
}

// readLog reads up to fetchBatch messages of a room's log from stream
// sequence from on: a consumer of its own, filtered to the room, unacked
// and in memory, gets them in one request, and goes once it has.
func (n *Broker) readLog(room string, from uint64) fetchResult {
	res := fetchResult{room: room}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	cons, err := n.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: n.subj.logMsg(room),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1,
		InactiveThreshold: opTimeout, // the server drops it if the delete below is lost
	})
	if err != nil {
		res.err = err
		return res
	}
	defer func() { _ = n.stream.DeleteConsumer(ctx, cons.CachedInfo().Name) }()
	batch, err := cons.FetchNoWait(fetchBatch)
	if err != nil {
		res.err = err
		return res
	}
	prev := from - 1
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		if e, ok := decodeEntry(m.Data()); ok {
			res.msgs = append(res.msgs, logMsg{sseq: md.Sequence.Stream, prev: prev, entry: e})
		}
		prev = md.Sequence.Stream
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		res.err = err
		return res
	}
	res.end = len(res.msgs) < fetchBatch
	return res
}

// caughtUp delivers a catch-up step, then the held live messages that
// follow on from it, and decides whether to read on. Dispatcher goroutine.
func (n *Broker) caughtUp(res fetchResult) {
	n.mu.Lock()
	l := n.cursors[res.room]
	if l == nil {
		n.mu.Unlock()
		return
	}
	out, from, failed := l.step(res, n.connectedLocked())
	over := from == 0 && res.err == nil
	n.mu.Unlock()
	for _, e := range out {
		n.deliver(res.room, e)
	}
	if over {
		n.failOrphans(res.room)
	}
	if failed {
		n.log.Warn("room catch-up failed", "room", res.room, "err", res.err, "again", from > 0)
	}
	if from > 0 {
		n.fetch(res.room, from, failed)
	}
}

// step takes a catch-up step's messages past the last delivered, and
// returns them with the held ones that follow on once the log's end is
// reached; from is where to read the log next, 0 when the catch-up is
// over; failed says the step failed. n.mu held.
func (l *cursor) step(res fetchResult, connected bool) (out []entry, from uint64, failed bool) {
	for _, lm := range res.msgs {
		if lm.sseq > l.last {
			l.last = lm.sseq
			out = append(out, lm.entry)
		}
	}
	switch {
	case res.err != nil && connected:
		return out, l.last + 1, true // try again in a moment
	case res.err != nil:
		// The bus is down: stop here; the reconnection starts over from
		// l.last.
		l.fetching, l.held, l.again = false, nil, false
		return out, 0, true
	case !res.end:
		return out, l.last + 1, false
	case l.again:
		l.again = false
		return out, l.last + 1, false
	}
	out, from = l.releaseHeld(out)
	return out, from, false
}

// releaseHeld appends to out the held messages that follow on from
// l.last; it returns where to read the log again if one is missing, or 0
// once the catch-up is over. n.mu held.
func (l *cursor) releaseHeld(out []entry) ([]entry, uint64) {
	for i, lm := range l.held {
		switch {
		case lm.sseq <= l.last:
		case lm.prev <= l.last:
			l.last = lm.sseq
			out = append(out, lm.entry)
		default:
			l.held = append(l.held[:0], l.held[i:]...)
			return out, l.last + 1
		}
	}
	l.held, l.fetching = nil, false
	return out, 0
}

// tail reads the end of a room's log: the stream sequence and the room
// seq of its last message (zero for an empty log).
func (n *Broker) tail(ctx context.Context, room string) (sseq, seq uint64, err error) {
	raw, err := n.stream.GetLastMsgForSubject(ctx, n.subj.logMsg(room))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	e, _ := decodeEntry(raw.Data)
	return raw.Sequence, e.seq, nil
}

// startFollowing records that this node follows room from the log's end
// at stream sequence sseq.
func (n *Broker) startFollowing(room string, sseq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.cursors[room]
	if l == nil {
		l = &cursor{}
		n.cursors[room] = l
	}
	l.last, l.known = max(l.last, sseq), true
}

// resyncAll resyncs every followed room, after the bus link came back.
func (n *Broker) resyncAll() {
	n.mu.Lock()
	rooms := make([]string, 0, len(n.cursors))
	for room := range n.cursors {
		rooms = append(rooms, room)
	}
	n.mu.Unlock()
	for _, room := range rooms {
		n.resync(room)
	}
}

// fetchPause is how long a failed catch-up waits before it is tried again
// while the bus is up.
const fetchPause = 100 * time.Millisecond

// failOrphans fails the says this node sent to a room's owner that died:
// once the room has caught up with its log, what the owner stored has
// come back, and the rest never will.
func (n *Broker) failOrphans(room string) {
	var orphans []string
	n.mu.Lock()
	now := time.Now()
	for token, p := range n.pending {
		if p.room == room && p.owner != n.id && !n.aliveLocked(p.owner, now) {
			orphans = append(orphans, token)
		}
	}
	n.mu.Unlock()
	for _, token := range orphans {
		n.settle(token, 0, fmt.Errorf("%w: the room's node died before storing the message; send again", codec.ErrUnavailable))
	}
}
