package server

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"parley/codec"
)

// hub holds the sessions, the nick index and the rooms, and implements the
// protocol on top of the Conn and Loop interfaces. Methods named for a
// transport event (open, closed, handleFrame, frameError) run on the loop
// goroutine of the connection they concern.
type hub struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	loops []*loop

	sessions sessionTable
	nicks    nickIndex
	rooms    roomTable
	lobby    *room

	online   atomic.Int64 // logged-in sessions
	conns    atomic.Int64 // open connections
	draining atomic.Bool  // shutting down: no new connections
	idleOnce sync.Once
	idle     chan struct{} // closed when draining and no connection is left

	perIP   ipCounter
	closes  closeCounts
	refused atomic.Int64
	stats   connStats
	warn    *rateLog
	outMem  atomic.Int64 // memory held by every session's unsent bytes (outq.mem)
	queues  atomic.Int64 // sessions with unsent bytes
	holds   nickHolds
	who     *userIndex

	presenceMu  sync.Mutex
	presenceDue []*room

	bindMu sync.Mutex // guards loop.exec while loops are discovered

	cluster *node // nil on a single node

	// beforeHandle, when set by tests, runs before each request is handled.
	beforeHandle func(*session, *codec.Request)
}

func newHub(cfg Config) *hub {
	h := &hub{
		cfg:      cfg,
		log:      cfg.Logger,
		start:    time.Now(),
		sessions: newSessionTable(),
		nicks:    newNickIndex(),
		rooms:    newRoomTable(),
		idle:     make(chan struct{}),
		warn:     newRateLog(cfg.Logger),
		holds:    newNickHolds(),
		who:      newUserIndex(),
	}
	for i := 0; i < cfg.Loops; i++ {
		h.loops = append(h.loops, &loop{hub: h, index: i})
	}
	h.lobby = h.rooms.acquire(codec.Lobby, h.newRoom)
	h.lobby.mu.Unlock()
	if cfg.NATS != "" {
		h.cluster = newNode(h)
	}
	return h
}

func (h *hub) newRoom(name string) *room { return newRoom(name, len(h.loops)) }

// mono is monotonic time since the hub started, in nanoseconds.
func (h *hub) mono() int64 { return int64(time.Since(h.start)) }

func (h *hub) wallMillis() int64 { return time.Now().UnixMilli() }

// bind returns the hub's loop for a transport loop, assigning the next free
// slot the first time the transport loop is seen. Safe from any goroutine.
func (h *hub) bind(exec Loop) *loop {
	h.bindMu.Lock()
	defer h.bindMu.Unlock()
	for _, l := range h.loops {
		if l.exec == exec {
			return l
		}
	}
	for _, l := range h.loops {
		if l.exec == nil {
			l.exec = exec
			return l
		}
	}
	panic("server: more transport loops than Config.Loops")
}

// boundLoops returns the loops seen so far. Safe from any goroutine.
func (h *hub) boundLoops() []*loop {
	h.bindMu.Lock()
	defer h.bindMu.Unlock()
	var out []*loop
	for _, l := range h.loops {
		if l.exec != nil {
			out = append(out, l)
		}
	}
	return out
}

// reserve counts a new connection from ip against the connection limits
// before it reaches a loop. It returns the limit it is over, or "" when it
// was counted; unreserve takes a counted connection back. Safe from any
// goroutine.
func (h *hub) reserve(ip string) string {
	if n := h.conns.Add(1); h.cfg.MaxConns > 0 && n > int64(h.cfg.MaxConns) {
		h.connClosed()
		return "max-conns"
	}
	if !h.perIP.add(ip, h.cfg.MaxConnsPerIP) {
		h.connClosed()
		return "max-conns-per-ip"
	}
	h.stats.opened.Add(1)
	return ""
}

func (h *hub) unreserve(ip string) {
	h.perIP.remove(ip)
	h.connClosed()
}

// open makes a session of a connection that reserve counted, or returns
// the bye to close it with when the server is shutting down.
func (h *hub) open(l *loop, conn Conn, remote string) (*session, []byte) {
	ip := ipKey(remote)
	if h.draining.Load() {
		h.unreserve(ip)
		return nil, byeFrames[codec.ReasonShutdown]
	}
	now := h.mono()
	s := &session{id: uuid.New(), conn: conn, loop: l, remote: remote, ip: ip, openedAt: now, lastSeen: now, limiter: h.newLimiter(), joins: h.newJoinLimiter()}
	l.addSession(s)
	h.log.Debug("connection opened", s.logAttrs()...)
	return s, nil
}

// refuse counts and logs a refused connection and returns its bye.
func (h *hub) refuse(remote, limit string) []byte {
	h.refused.Add(1)
	h.warn.warn("refused-"+limit, "connection refused", "remote", remote, "reason", codec.ReasonServerFull, "limit", limit)
	return byeFrames[codec.ReasonServerFull]
}

// closed removes a session whose connection the transport closed: from its
// rooms (telling the members why), the nick index and the session table.
// After closed returns nothing writes to the connection again.
func (h *hub) closed(s *session, cause error) {
	if s.closed {
		return
	}
	s.closed = true
	l := s.loop
	l.enter()
	defer l.leave()
	l.removeSession(s)
	l.forget(s)
	reason := s.reason
	if reason == "" {
		reason = codec.ReasonDisconnect
	}
	if s.loggedIn {
		h.logout(s, reason)
	}
	h.log.Debug("connection closed", append(s.logAttrs(), "reason", reason, "cause", closeCause(cause))...)
	h.closes.add(reason)
	h.perIP.remove(s.ip)
	h.connClosed()
}

// logout takes a logged-in session out of its rooms and the nick tables.
// Unless it quit, its nick stays held for NickHold, for its resume token.
func (h *hub) logout(s *session, reason codec.Reason) {
	for _, r := range s.rooms {
		h.leave(s, r, leftReason(reason))
	}
	h.nicks.release(s.key, s)
	h.who.remove(s.order)
	if reason != codec.ReasonQuit && h.cfg.NickHold > 0 {
		h.holdNick(s)
	} else if h.cluster != nil {
		h.cluster.releaseNick(s.key)
	}
	h.sessions.remove(s)
	h.online.Add(-1)
}

// closeCause words the transport's error for the debug log: an EOF, a
// reset, or a read or write error.
func closeCause(err error) string {
	switch {
	case err == nil:
		return "closed by the server"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return err.Error()
}

func (h *hub) connClosed() {
	if h.conns.Add(-1) == 0 && h.draining.Load() {
		h.idleOnce.Do(func() { close(h.idle) })
	}
}

// leftReason maps why a session ended to the reason its rooms are told.
func leftReason(r codec.Reason) codec.Reason {
	switch r {
	case codec.ReasonQuit, codec.ReasonTimeout, codec.ReasonSlowConsumer, codec.ReasonShutdown:
		return r
	}
	return codec.ReasonDisconnect
}

// closeSession sends bye with reason, then closes the connection once the
// frames queued before the bye are written. Loop goroutine of s.
func (h *hub) closeSession(s *session, reason codec.Reason) {
	if s.closing || s.closed {
		return
	}
	s.closing = true
	s.reason = reason
	s.loop.push(item{kind: itemBye, to: s, frame: byeFrames[reason]})
}

// slowConsumer closes s at once: its outbound queue passed a limit, the
// cause. Loop goroutine of s.
func (h *hub) slowConsumer(s *session, cause string) {
	s.closing, s.closeAfterFlush = true, true
	s.reason = codec.ReasonSlowConsumer
	h.warn.warn("slow-consumer", "slow consumer", append(s.logAttrs(), "cause", cause, "queued_bytes", s.out.mem, "buffered", s.conn.Buffered())...)
	s.conn.Writev([][]byte{byeFrames[codec.ReasonSlowConsumer]})
	if !s.closed {
		s.conn.Close()
	}
}

// tick runs the heartbeat sweep on every loop and sends due presence
// frames. Safe from any goroutine.
func (h *hub) tick() {
	now := h.mono()
	for _, l := range h.boundLoops() {
		_ = l.exec.Execute(func() { l.sweep(now) })
	}
	h.flushPresence(now)
	h.expireHolds(now)
	h.logStats(time.Now())
}

// shutdown refuses new connections and sends every session bye shutdown.
// The returned channel closes when no connection is left. Safe from any
// goroutine.
func (h *hub) shutdown() <-chan struct{} {
	if h.draining.Swap(true) {
		return h.idle
	}
	if h.conns.Load() == 0 {
		h.idleOnce.Do(func() { close(h.idle) })
	}
	for _, l := range h.boundLoops() {
		_ = l.exec.Execute(func() {
			l.enter()
			for _, s := range l.sessions {
				h.closeSession(s, codec.ReasonShutdown)
			}
			l.leave()
		})
	}
	return h.idle
}

// Frames that never change are encoded once.
var (
	pingFrame = codec.MustEncode(&codec.Ping{})
	pongFrame = codec.MustEncode(&codec.Pong{})
	byeFrames = map[codec.Reason][]byte{}
)

func init() {
	for _, r := range []codec.Reason{
		codec.ReasonQuit, codec.ReasonTimeout, codec.ReasonLoginTimeout, codec.ReasonShutdown,
		codec.ReasonProtocolError, codec.ReasonServerFull, codec.ReasonSlowConsumer, codec.ReasonInternalError,
		codec.ReasonFlood,
	} {
		byeFrames[r] = codec.MustEncode(&codec.Bye{Reason: r})
	}
}
