package natsbroker

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/server/broker"
)

// Every room has a log: the JetStream stream <cluster>_rooms keeps its
// messages on <cluster>.log.<hex>.msg and its owners' fencing records on
// <cluster>.log.<hex>.own (docs/CLUSTER.md, "The room log"). The owner
// appends a message with the expectation that the room's last fencing
// record is its own, so a deposed owner's append fails; the stream then
// republishes each stored message on <cluster>.room.<hex>.msg, with the
// stream sequence of the room's previous message, and every node delivers
// from there.

// Stream defaults (Config.LogLen, Config.LogBytes).
const (
	DefaultLogLen   = 1000
	DefaultLogBytes = 1 << 30
)

// logStream returns the configuration of the rooms' log stream.
func (n *Broker) logStream() jetstream.StreamConfig {
	c := n.subj.cluster
	return jetstream.StreamConfig{
		Name:              c + "_rooms",
		Subjects:          []string{n.subj.logMsgs(), n.subj.logOwns()},
		MaxMsgsPerSubject: int64(n.cfg.LogLen),
		MaxBytes:          n.cfg.LogBytes,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		RePublish:         &jetstream.RePublish{Source: n.subj.logMsgs(), Destination: c + ".room.{{wildcard(1)}}.msg"},
	}
}

// entry is one room message as the log stores it: the seq, the sender's
// nick key and the token of its say (which node and say it answers, so the
// sender's node acknowledges exactly that say), then the frame as members
// receive it, so no node encodes it again.
type entry struct {
	seq   uint64
	key   string
	token string
	frame []byte
}

func (e *entry) encode() []byte {
	b := make([]byte, 8, 8+2*binary.MaxVarintLen16+len(e.key)+len(e.token)+len(e.frame))
	binary.BigEndian.PutUint64(b, e.seq)
	b = binary.AppendUvarint(b, uint64(len(e.key)))
	b = append(b, e.key...)
	b = binary.AppendUvarint(b, uint64(len(e.token)))
	b = append(b, e.token...)
	return append(b, e.frame...)
}

func decodeEntry(b []byte) (entry, bool) {
	if len(b) < 8 {
		return entry{}, false
	}
	e := entry{seq: binary.BigEndian.Uint64(b)}
	rest := b[8:]
	var ok bool
	if e.key, rest, ok = cutString(rest); !ok {
		return entry{}, false
	}
	if e.token, rest, ok = cutString(rest); !ok {
		return entry{}, false
	}
	e.frame = rest
	return e, true
}

// cutString takes one length-prefixed string off b.
func cutString(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

// Append queues a message this node sequenced for the room's log, fenced
// by this node's ownership record: it is stored only if no other node
// claimed the room since. It is delivered here, like everywhere, when
// the stream republishes it. The room's lock is held: it only enqueues.
func (n *Broker) Append(m broker.Message, seq uint64, frame []byte) bool {
	n.mu.Lock()
	fence, owned := n.owned[m.Room]
	n.mu.Unlock()
	if !owned {
		return false // disowned since Sequence was called: the say expires
	}
	e := entry{seq: seq, key: m.Key, token: m.Token, frame: frame}
	msg := &nats.Msg{Subject: n.subj.logMsg(m.Room), Data: e.encode(), Header: nats.Header{}}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(fence, 10))
	msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, n.subj.logOwn(m.Room))
	if !n.enqueue(outMsg{stored: msg, room: m.Room, fence: fence, link: n.link.Load()}) {
		n.goRun(func() { n.storeFailed(msg, errors.New("the queue to the bus is full")) })
	}
	return false
}

// appendNow hands a queued log message to JetStream without waiting for
// its acknowledgement: the stream's answers come back asynchronously, and
// only failures are handled (storeFailed). A message is dropped if it was
// queued before the link to NATS was remade, or under a fence this node no
// longer holds (a failure disowned the room since): what went out before
// is stored or lost, a prefix, and storing this one after a lost one would
// leave a hole in the room's seqs. Writer goroutine.
func (n *Broker) appendNow(m outMsg) {
	n.mu.Lock()
	current := n.owned[m.room] == m.fence
	n.mu.Unlock()
	if !current || n.observeLink() != m.link {
		n.storeFailed(m.stored, errors.New("queued before the room was disowned or the link to NATS remade"))
		return
	}
	if _, err := n.js.PublishMsgAsync(m.stored, jetstream.WithRetryAttempts(0)); err != nil {
		n.storeFailed(m.stored, err)
	}
}

// observeLink returns how many times nats.go has reconnected, and records
// it in n.link, which Append reads without waiting. Never on an event loop
// or under a room lock: it takes nats.go's connection lock, which a write
// stalled on a slow link holds.
func (n *Broker) observeLink() uint64 {
	rc := n.nc.Stats().Reconnects
	for {
		seen := n.link.Load()
		if rc <= seen || n.link.CompareAndSwap(seen, rc) {
			return max(rc, seen)
		}
	}
}

// storeFailed handles a log message the stream did not store, or did not
// confirm in time: the room is disowned, so that the next say claims it
// again, which fences off whatever this node still has in flight and
// reads the log's true end. A failure from an earlier ownership (another
// fence) changes nothing. The say itself expires, answered unavailable.
// Any goroutine.
func (n *Broker) storeFailed(msg *nats.Msg, err error) {
	room, ok := n.subj.logRoom(msg.Subject)
	if !ok {
		return
	}
	fence, _ := strconv.ParseUint(msg.Header.Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64)
	if wrongLast(err) {
		n.fenced.Add(1) // whether or not this node has learnt of the new owner yet
	}
	n.mu.Lock()
	cur, owned := n.owned[room]
	if !owned || cur != fence {
		n.mu.Unlock()
		return
	}
	delete(n.owned, room)
	n.mu.Unlock()
	n.log.Warn("room message not stored: the room will be claimed again", "room", room, "err", err)
	n.h.Disown(room)
}

// wrongLast reports whether err is the stream refusing a write because the
// subject's last message is not the expected one.
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// logRoom returns the room of a log subject.
func (s subjects) logRoom(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.cluster+".log.")
	if !ok {
		return "", false
	}
	hexName, _, ok := strings.Cut(rest, ".")
	return unkey(hexName), ok
}

// Dump returns up to limit of the messages a room's log still has, oldest
// first, for tests and diagnostics. Safe from any goroutine.
func (n *Broker) Dump(ctx context.Context, room string, limit int) ([]broker.Logged, error) {
	return n.readAfter(ctx, room, 0, limit)
}

// ReadLog reads the messages of room's log after seq after, on a
// goroutine of its own.
func (n *Broker) ReadLog(room string, after uint64, limit int, done func([]broker.Logged, error)) {
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 2*opTimeout)
		defer cancel()
		done(n.readAfter(ctx, room, after, limit))
	})
}

// readAfter reads up to limit messages of room's log with a seq after
// after: it finds the first one's stream sequence and the log's last, then
// reads in batches up to that last one. A batch may bring fewer messages
// than the log holds (a fetch gives what the server has ready), so a
// short batch is no sign of the end: the last stream sequence is.
func (n *Broker) readAfter(ctx context.Context, room string, after uint64, limit int) ([]broker.Logged, error) {
	from, err := n.streamSeqAfter(ctx, room, after)
	if err != nil || from == 0 {
		return nil, err
	}
	end, _, err := n.tail(ctx, room)
	if err != nil {
		return nil, err
	}
	var out []broker.Logged
	for len(out) < limit && from <= end {
		res := n.readLog(room, from)
		if res.err != nil {
			return out, res.err
		}
		for _, lm := range res.msgs {
			if lm.seq > after && len(out) < limit {
				out = append(out, broker.Logged{Seq: lm.seq, Frame: lm.frame})
			}
			from = lm.sseq + 1
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if len(res.msgs) == 0 {
			select { // nothing ready yet below the end: ask again shortly
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
	}
	return out, nil
}

// streamSeqAfter returns the stream sequence of the first message in
// room's log whose seq is after after, or 0 if there is none. Seqs grow
// with stream sequences, so a binary search over the stream finds it in
// a few reads.
func (n *Broker) streamSeqAfter(ctx context.Context, room string, after uint64) (uint64, error) {
	at := func(pos uint64) (uint64, uint64, error) { // the room's first message at pos or later
		raw, err := n.stream.GetMsg(ctx, pos, jetstream.WithGetMsgSubject(n.subj.logMsg(room)))
		if err != nil {
			return 0, 0, err
		}
		e, _ := decodeEntry(raw.Data)
		return raw.Sequence, e.seq, nil
	}
	lastS, lastSeq, err := n.tail(ctx, room)
	if err != nil || lastSeq <= after {
		return 0, err
	}
	lo, seq, err := at(1)
	if err != nil || seq > after {
		return lo, err
	}
	hi := lastS // at(lo) is at or before after, at(hi) past it
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		pos, seq, err := at(mid)
		if err != nil {
			return 0, err
		}
		if seq <= after {
			lo = pos
		} else {
			hi = mid
		}
	}
	pos, _, err := at(hi)
	return pos, err
}

// LastSeq returns the seq of the last message in a room's log (0 if it has
// none), for tests and diagnostics. Safe from any goroutine.
func (n *Broker) LastSeq(ctx context.Context, room string) (uint64, error) {
	_, seq, err := n.tail(ctx, room)
	return seq, err
}

// Epoch names the rooms' log: the stream's creation time, which changes
// only if the stream is made anew (and every room's sequence with it).
func (n *Broker) Epoch(string) string {
	if n.stream == nil {
		return ""
	}
	return strconv.FormatInt(n.stream.CachedInfo().Created.UnixNano(), 36)
}
