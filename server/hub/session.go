package hub

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"parley/codec"
	"parley/server/auth"
)

// Session is one client connection and, after login, one user. Its fields
// are owned by its loop's goroutine, except the ones marked immutable,
// which other goroutines may read once the session is in the hub's tables.
type Session struct {
	id     uuid.UUID // immutable
	conn   Conn      // immutable
	loop   *loop     // immutable
	remote string    // immutable
	ip     string    // immutable: the host of remote

	// Set once at login, before the session enters any shared table;
	// immutable afterwards.
	nick   string
	key    string // the nick's identity key (codec.Name.Key)
	order  string // the nick's sort key in who listings (codec.SortKey)
	resume string // the token that takes the nick back after a drop

	// Set at login with a token (Config.Auth), before the session enters
	// any shared table; account is immutable afterwards.
	account string         // the account's identity key (auth.AccountKey); "" for a nick login
	ident   *auth.Identity // what the token said; nil for a nick login
	expires int64          // monotonic nanoseconds past which the token no longer holds, grace included; 0: never

	loggedIn bool
	waiting  bool  // a request is out on the cluster bus: hold further frames
	loopPos  int32 // index in loop.sessions
	openedAt int64 // monotonic nanoseconds
	lastSeen int64
	lastPing int64

	rooms roomSet  // the rooms it is in
	slots slotList // its index in each room's local member list

	backlog [][]byte // frames that arrived while waiting, in order

	sessionOut
	sessionClose
	sessionFlood
}

// sessionOut is what waits to be written to a session, and what it
// holds. Loop goroutine, but the atomics.
type sessionOut struct {
	pending      [][]byte        // frames queued since the last flush
	pendingBytes int64           // their length
	skipped      map[*room]*skip // room messages dropped while behind, owed a gap notice (skip.go)
	out          outq            // what the transport holds unsent
	queuedIn     uint64          // the write queue's epoch it was last listed in (writeq.go)
	firstIn      uint64          // the epoch it was last listed in among the urgent
	lazyWaiting  bool            // a ping or presence frame is pending that no write has been listed for (queueLazy)
	queuedMem    atomic.Int64    // out.mem, read by senders of direct messages on other loops
	incoming     atomic.Int64    // bytes of direct messages on their way to the loop
}

// sessionClose is how far a session is in closing. Loop goroutine.
type sessionClose struct {
	closing         bool  // a bye is queued or the close has started: read no more
	closeAfterFlush bool  // close once pending frames are written
	closed          bool  // the transport reported the close: never write again
	lingerUntil     int64 // bye written but not all taken by the socket: close by then
	reason          codec.Reason
}

// sessionFlood is what flood control and the request limits keep for a
// session (flood.go, control.go). Loop goroutine.
type sessionFlood struct {
	limiter      *rate.Limiter // flood control; nil when off
	joins        *rate.Limiter // joins and leaves; nil when off
	creates      *rate.Limiter // rooms created; nil until the first
	perTarget    *perTarget    // limits per recipient and room; nil until the first
	flooded      int64         // time spent over the rate limit, draining while quiet (flood.go)
	lastDrop     int64         // when a frame was last dropped
	controls     int           // control frames before login (control.go)
	lastLimitErr int64         // when rate_limited was last sent
	partialSince int64         // when an incomplete frame began waiting, 0 if none
}

// perTarget is what a session keeps per recipient or room, allocated on
// first use: most sessions never send a DM or type, and a field each
// would have taken Session past a size class.
type perTarget struct {
	dmLimits map[string]*rate.Limiter // direct messages per recipient key
	typedAt  map[string]int64         // when it last typed to each room (#name) and user (@key), for TypingEvery
}

// targets returns s's perTarget, allocating it the first time.
func (s *Session) targets() *perTarget {
	if s.perTarget == nil {
		s.perTarget = &perTarget{}
	}
	return s.perTarget
}

// queue appends a frame for the next flush. Loop goroutine only.
func (s *Session) queue(frame []byte) {
	if s.closed || s.closeAfterFlush {
		return
	}
	s.pending = append(s.pending, frame)
	s.pendingBytes += int64(len(frame))
	s.loop.wq.touch(s)
}

// send queues a reply or notice for this session through its loop's outbox,
// in order with everything else queued for the loop.
func (s *Session) send(frame []byte) {
	s.loop.push(item{kind: itemOne, to: s, frame: frame})
}

// debug logs a session's event at debug level. The session's attributes
// are built only when that level is on: at the default level, building
// them cost every connection a few hundred bytes of garbage.
func (h *Hub) debug(s *Session, msg string, extra ...any) {
	if !h.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	h.log.Debug(msg, append(s.logAttrs(), extra...)...)
}

func (s *Session) logAttrs() []any {
	attrs := []any{"session", s.id.String(), "remote", s.remote}
	if s.nick != "" {
		attrs = append(attrs, "nick", s.nick)
	}
	return attrs
}
