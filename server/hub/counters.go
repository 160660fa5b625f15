package hub

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
)

// closeCounts counts closed connections by reason. Safe from any goroutine.
type closeCounts struct {
	mu sync.Mutex
	m  map[codec.Reason]*atomic.Int64
}

func (c *closeCounts) add(r codec.Reason) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[codec.Reason]*atomic.Int64)
	}
	n := c.m[r]
	if n == nil {
		n = new(atomic.Int64)
		c.m[r] = n
	}
	c.mu.Unlock()
	n.Add(1)
}

func (c *closeCounts) snapshot() map[codec.Reason]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[codec.Reason]int64, len(c.m))
	for r, n := range c.m {
		out[r] = n.Load()
	}
	return out
}

// rateLog writes a warning at most once per interval for each kind of
// event, with the number of events it did not write, so that an attack
// that repeats one event cannot flood the log. Safe from any goroutine.
type rateLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	kinds    map[string]*logKind
}

type logKind struct {
	last       time.Time
	suppressed int64
}

// warnInterval is the shortest time between two warnings of one kind.
const warnInterval = 10 * time.Second

func newRateLog(l *slog.Logger) *rateLog {
	return &rateLog{log: l, interval: warnInterval, kinds: make(map[string]*logKind)}
}

// warn logs msg with attrs unless a warning of kind was logged within the
// interval; then it only counts it.
func (r *rateLog) warn(kind, msg string, attrs ...any) {
	now := time.Now()
	r.mu.Lock()
	k := r.kinds[kind]
	if k == nil {
		k = &logKind{}
		r.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < r.interval {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	r.log.Warn(msg, attrs...)
}

// statsLog is where the periodic log line of the connection counters
// (hubCounters) was last written. Ticker goroutine only.
type statsLog struct {
	lastAt time.Time
	last   statsSnapshot
}

type statsSnapshot struct {
	opened, logins, refused int64
	closes                  map[codec.Reason]int64
}

// logStats writes the info line of connection counters when it is due:
// what changed since the last line, and what is open now. Ticker
// goroutine only.
func (h *Hub) logStats(now time.Time) {
	if h.cfg.StatsInterval <= 0 || now.Sub(h.statsLog.lastAt) < h.cfg.StatsInterval {
		return
	}
	n := &h.count
	cur := statsSnapshot{opened: n.opened.Load(), logins: n.logins.Load(), refused: n.refused.total(), closes: n.closes.snapshot()}
	prev := h.statsLog.last
	h.statsLog.lastAt, h.statsLog.last = now, cur
	attrs := []any{
		"opened", cur.opened - prev.opened, "logins", cur.logins - prev.logins, "refused", cur.refused - prev.refused,
		"conns", h.conns.Load(), "online", h.online.Load(), "outbound_bytes", h.outMem.Load(),
	}
	for r, n := range cur.closes {
		if d := n - prev.closes[r]; d > 0 {
			attrs = append(attrs, "closed_"+string(r), d)
		}
	}
	h.log.Info("connections", attrs...)
}
