// Package hub is Parley's chat logic: sessions, nicks, rooms, presence,
// direct messages, flood control and fan-out through one outbox per event
// loop. It implements docs/PROTOCOL.md on top of two boundaries: the
// transport interfaces (Conn, Loop, Inbound), which parley/server/transport
// implements with gnet's loops and its own stream loops (TLS, WebSocket),
// and a broker.Broker, which is broker.Local on a
// single node and natsbroker's in a cluster. It imports no network code.
package hub

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"parley/codec"
	"parley/server/broker"
)

// Hub holds the sessions, the nick index and the rooms, and implements the
// protocol on top of the Conn and Loop interfaces and a broker. Exported
// methods say which goroutine may call them: the transport events (Open,
// Traffic, Closed) run on the loop goroutine of their connection.
type Hub struct {
	cfg     Config
	durable bool // the store keeps messages beyond the process: acks wait for it
	hooked  bool // the application's pre-send hook sees every say and dm (hook.go)
	log     *slog.Logger
	start   time.Time
	loops   []*loop
	broker  broker.Broker

	nicks    nickIndex
	claiming claimSet // nick keys of logins waiting for the broker
	rooms    roomTable
	lobby    *room

	online   atomic.Int64 // logged-in sessions
	conns    atomic.Int64 // open connections
	draining atomic.Bool  // shutting down: no new connections
	idleOnce sync.Once
	idle     chan struct{} // closed when draining and no connection is left

	perIP    ipCounter
	statsLog statsLog
	warn     *rateLog
	outMem   atomic.Int64 // memory held by every session's unsent bytes (outq.mem)

	histBytes  atomic.Int64  // memory every room's history holds (history.go)
	ages       roomAges      // rooms with a history, oldest message first (ages.go)
	replays    *rate.Limiter // the server's replay budget, in bytes (history.go)
	histSwept  int64         // when expireHistory last ran; ticker goroutine only
	brokerLog  bool          // the broker keeps each room's log: a room need not outlive its members for its history
	queues     atomic.Int64  // sessions with unsent bytes
	holds      nickHolds
	inboxes    *shardMap[string, *inbox] // accounts' direct messages, by account key (inbox.go)
	inboxCount atomic.Int64

	gov        *governance   // rooms' rules and the audit log (govern.go)
	accts      *accountTable // read markers and remembered nicks (accounts.go)
	loginFails loginFailures
	count      hubCounters // read by Metrics

	presenceMu  sync.Mutex
	presenceDue []*room

	bindMu sync.Mutex // guards loop.exec while loops are discovered
}

// New returns a hub for cfg (defaults applied) on broker b. Call Start
// before the transport delivers connections.
func New(cfg Config, b broker.Broker) *Hub {
	cfg = cfg.withDefaults()
	_, memory := cfg.Store.(MemoryHistory)
	_, unhooked := cfg.Hook.(NoHook)
	h := &Hub{
		durable:  !memory,
		hooked:   !unhooked,
		cfg:      cfg,
		log:      cfg.Logger,
		start:    time.Now(),
		broker:   b,
		nicks:    newNickIndex(),
		claiming: claimSet{m: map[string]bool{}},
		rooms:    newRoomTable(),
		idle:     make(chan struct{}),
		warn:     newRateLog(cfg.Logger),
		holds:    newNickHolds(),
		gov:      newGovernance(cfg.AuditLen),
		accts:    newAccountTable(cfg.Accounts),
		inboxes:  newInboxes(),
		count:    hubCounters{errors: newErrorCounts()},
		replays:  rate.NewLimiter(replayBytesPerSecond, replayBytesPerSecond),
	}
	for i := 0; i < cfg.Loops; i++ {
		l := &loop{hub: h, index: i, wq: writeQueue{epoch: 1}}
		l.runFunc = l.run
		l.lazy.writeFunc, l.lazy.after = l.writeDue, afterFunc
		h.loops = append(h.loops, l)
	}
	h.lobby = h.rooms.acquire(codec.Lobby, h.newRoom)
	h.lobby.mu.Unlock()
	return h
}

// Start starts the broker and follows the lobby, which every node follows
// from the start. Call it once, before any connection.
func (h *Hub) Start() error {
	if err := h.broker.Start(handler{h}); err != nil {
		return err
	}
	if epoch := h.broker.Epoch(codec.Lobby); epoch != "" {
		h.brokerLog = true
		h.lobby.mu.Lock()
		h.lobby.epoch = epoch
		h.lobby.mu.Unlock()
	}
	done := make(chan error, 1)
	h.broker.Follow(codec.Lobby, func(remote []broker.User, last uint64, err error) {
		if err == nil {
			h.followed(h.lobby, remote, last)
			h.preload(h.lobby, last)
		}
		done <- err
	})
	if err := <-done; err != nil {
		h.broker.Stop()
		return err
	}
	return nil
}

// Stop stops the broker; call it once the sessions are gone.
func (h *Hub) Stop() { h.broker.Stop() }

// Broker returns the hub's broker.
func (h *Hub) Broker() broker.Broker { return h.broker }

// WarnLimited writes a warning at most once per 10 s for each kind, with
// the count of those it left out. Safe from any goroutine.
func (h *Hub) WarnLimited(kind, msg string, attrs ...any) { h.warn.warn(kind, msg, attrs...) }

// newRoom makes a room, whose epoch is the broker's log's, or a fresh one
// when the broker keeps no log.
func (h *Hub) newRoom(name string) *room {
	r := newRoom(name, len(h.loops))
	if r.epoch = h.broker.Epoch(name); r.epoch == "" {
		r.epoch = newEpoch()
	}
	return r
}

// mono is monotonic time since the hub started, in nanoseconds.
func (h *Hub) mono() int64 { return int64(time.Since(h.start)) }

func (h *Hub) wallMillis() int64 { return time.Now().UnixMilli() }

// bind returns the hub's loop for a transport loop, assigning the next free
// slot the first time the transport loop is seen. Safe from any goroutine.
func (h *Hub) bind(exec Loop) *loop {
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
	panic("hub: more transport loops than Config.Loops")
}

// boundLoops returns the loops seen so far. Safe from any goroutine.
func (h *Hub) boundLoops() []*loop {
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

// Reserve counts a new connection from ip (see IPKey) against the
// connection limits before it reaches a loop. It returns the limit it is
// over, or "" when it was counted; Unreserve takes a counted connection
// back. Safe from any goroutine.
func (h *Hub) Reserve(ip string) string {
	if n := h.conns.Add(1); h.cfg.MaxConns > 0 && n > int64(h.cfg.MaxConns) {
		h.connClosed()
		return "max-conns"
	}
	if !h.perIP.add(ip, h.cfg.MaxConnsPerIP) {
		h.connClosed()
		return "max-conns-per-ip"
	}
	h.count.opened.Add(1)
	return ""
}

// Unreserve takes back a connection Reserve counted that never opened.
func (h *Hub) Unreserve(ip string) {
	h.perIP.remove(ip)
	h.connClosed()
}

// Open makes a session of a connection that Reserve counted, on the
// transport loop exec, or returns the bye to close it with when the hub
// is shutting down. Loop goroutine of the connection.
func (h *Hub) Open(exec Loop, conn Conn, remote string) (*Session, []byte) {
	ip := IPKey(remote)
	if h.draining.Load() {
		h.Unreserve(ip)
		return nil, byeFrames[codec.ReasonShutdown]
	}
	l := h.bind(exec)
	now := h.mono()
	s := &Session{id: uuid.New(), conn: conn, loop: l, remote: remote, ip: ip, openedAt: now, lastSeen: now,
		sessionFlood: sessionFlood{limiter: h.newLimiter(), joins: h.newJoinLimiter()}}
	setFrameLimit(conn, h.maxFrame(s))
	l.addSession(s)
	h.debug(s, "connection opened")
	return s, nil
}

// Refuse counts and logs a connection refused over limit and returns the
// bye to send it. Safe from any goroutine.
func (h *Hub) Refuse(remote, limit string) []byte {
	reason := codec.ReasonServerFull
	switch limit {
	case LimitConnRate:
		reason = codec.ReasonConnRate
	case LimitBanned:
		reason = codec.ReasonBanned
	}
	h.count.refused.add(limit)
	h.warn.warn("refused-"+limit, "connection refused", "remote", remote, "reason", reason, "limit", limit)
	return byeFrames[reason]
}

// LimitConnRate is the limit of new connections per address and second
// (--max-conn-rate-per-ip): a refusal over it is bye conn_rate, over any
// other limit bye server_full.
const LimitConnRate = "conn-rate-per-ip"

// LimitBanned refuses a connection from an address an admin banned from
// the server: bye banned.
const LimitBanned = "banned"

// Closed removes a session whose connection the transport closed, for the
// cause the transport gives (nil when the hub closed it): from its rooms,
// telling the members why, and from the nick index. After Closed returns
// nothing writes to the connection again. Loop goroutine of s.
func (h *Hub) Closed(s *Session, cause error) {
	if s.closed {
		return
	}
	s.closed = true
	l := s.loop
	l.enter()
	defer l.leave()
	l.removeSession(s)
	l.forget(s)
	h.abandonLogin(s) // if it closed with a login under way
	reason := s.reason
	if reason == "" {
		reason = codec.ReasonDisconnect
	}
	if s.loggedIn {
		h.logout(s, reason)
	}
	h.debug(s, "connection closed", "reason", reason, "cause", closeCause(cause))
	h.count.closes.add(reason)
	h.perIP.remove(s.ip)
	h.connClosed()
}

// logout takes a logged-in session out of its rooms and the nick tables.
// Unless it quit or was banned, its nick stays held for NickHold, for its
// resume token.
func (h *Hub) logout(s *Session, reason codec.Reason) {
	for len(s.rooms) > 0 { // leave takes the room out of s.rooms
		h.leave(s, s.rooms[len(s.rooms)-1], leftReason(reason))
	}
	h.online.Add(-1)
	h.sessionEvent(s, false, reason)
	if left := h.nicks.release(s.key, s); left != 0 {
		if left > 0 {
			h.broker.NickSessions(s.key, left) // the account's other sessions keep the nick
		}
		return
	}
	resume := ""
	if heldAfter(reason) && h.cfg.NickHold > 0 && h.holdNick(s) {
		resume = s.resume
	}
	h.broker.ReleaseNick(s.key, resume)
}

// closeCause words the transport's error for the debug log: closed by
// the server, an EOF, a reset, or another read or write error, with the
// call that failed when the transport says (gnet wraps them in an
// os.SyscallError named read, write or writev).
func closeCause(err error) string {
	var sys *os.SyscallError
	op := ""
	if errors.As(err, &sys) {
		op = " in " + sys.Syscall
	}
	switch {
	case err == nil:
		return "closed by the server"
	case errors.Is(err, io.EOF):
		return "eof" + op
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset" + op
	}
	return "error" + op + ": " + err.Error()
}

func (h *Hub) connClosed() {
	if h.conns.Add(-1) == 0 && h.draining.Load() {
		h.idleOnce.Do(func() { close(h.idle) })
	}
}

// heldAfter reports whether a session that ended for reason keeps its
// nick held for a resume: not after quit, nor after a ban or a revoked
// token, which its resume could not get past.
func heldAfter(reason codec.Reason) bool {
	switch reason {
	case codec.ReasonQuit, codec.ReasonBanned, codec.ReasonTokenRevoked, codec.ReasonDisconnected:
		return false
	}
	return true
}

// leftReason maps why a session ended to the reason its rooms are told.
func leftReason(r codec.Reason) codec.Reason {
	switch r {
	case codec.ReasonQuit, codec.ReasonTimeout, codec.ReasonSlowConsumer, codec.ReasonShutdown, codec.ReasonBanned:
		return r
	}
	return codec.ReasonDisconnect
}

// closeSession sends bye with reason, then closes the connection once the
// frames queued before the bye are written. Loop goroutine of s.
func (h *Hub) closeSession(s *Session, reason codec.Reason) {
	h.closeSessionWith(s, reason, byeFrames[reason])
}

// closeSessionWith is closeSession with its own bye frame, which says
// more than the reason. Loop goroutine of s.
func (h *Hub) closeSessionWith(s *Session, reason codec.Reason, bye []byte) {
	if s.closing || s.closed {
		return
	}
	s.closing = true
	s.reason = reason
	s.loop.push(item{kind: itemBye, to: s, frame: bye})
}

// slowConsumer closes s at once: its outbound queue passed a limit, the
// cause. Loop goroutine of s.
func (h *Hub) slowConsumer(s *Session, cause string) {
	s.closing, s.closeAfterFlush = true, true
	s.reason = codec.ReasonSlowConsumer
	h.warn.warn("slow-consumer", "slow consumer", append(s.logAttrs(), "cause", cause, "queued_bytes", s.out.mem, "buffered", s.conn.Buffered())...)
	s.conn.Writev([][]byte{byeFrames[codec.ReasonSlowConsumer]})
	if !s.closed {
		s.conn.Close()
	}
}

// Tick runs the heartbeat sweep on every loop, sends due presence frames,
// ends due nick holds and writes the counters line when due. The transport
// calls it every Config.TickInterval (faster while Draining). Safe from any
// goroutine.
func (h *Hub) Tick() {
	now := h.mono()
	for _, l := range h.boundLoops() {
		_ = l.exec.Execute(func() { l.sweep(now) })
	}
	h.flushPresence(now)
	h.expireHolds(now)
	h.expireHistory(now)
	h.expireLimits(time.Now())
	h.loginFails.expire(now)
	h.logStats(time.Now())
}

// Draining reports whether Shutdown has begun.
func (h *Hub) Draining() bool { return h.draining.Load() }

// Shutdown refuses new connections and sends every session bye shutdown.
// The returned channel closes when no connection is left. Safe from any
// goroutine.
func (h *Hub) Shutdown() <-chan struct{} {
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

// ByeShutdown is the frame that tells a client the server is stopping.
var ByeShutdown = codec.MustEncode(&codec.Bye{Reason: codec.ReasonShutdown})

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
		codec.ReasonFlood, codec.ReasonTokenExpired, codec.ReasonConnRate, codec.ReasonBanned, codec.ReasonTokenRevoked,
	} {
		byeFrames[r] = codec.MustEncode(&codec.Bye{Reason: r})
	}
}

// TransportError ends s for a violation the transport found below the
// protocol's frames (a WebSocket frame that is binary, unmasked or too
// large): s gets err as an error frame, then bye protocol_error, as for a
// framing error. Loop goroutine of s.
func (h *Hub) TransportError(s *Session, err error) {
	if s.closing || s.closed {
		return
	}
	l := s.loop
	l.enter()
	defer l.leave()
	h.protocolError(s, err)
}

// Probe has every event loop run a task and reports an error naming the
// first that did not within timeout: a loop stuck in a callback. Safe
// from any goroutine.
func (h *Hub) Probe(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, l := range h.boundLoops() {
		done := make(chan struct{})
		if err := l.exec.Execute(func() { close(done) }); err != nil {
			return fmt.Errorf("event loop %d: %w", l.index, err)
		}
		select {
		case <-done:
		case <-deadline.C:
			return fmt.Errorf("event loop %d did not answer within %s", l.index, timeout)
		}
	}
	return nil
}
