package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"parley/codec"
)

// floodEnd is how long a connection must go without a dropped frame before
// its flood counts as over.
const floodEnd = time.Second

// newLimiter returns the flood control of one connection, or nil when it
// is off.
func (h *hub) newLimiter() *rate.Limiter {
	if h.cfg.RateLimit < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(h.cfg.RateLimit), h.cfg.RateBurst)
}

// admit applies flood control to one frame from s: it reports whether the
// frame may be handled. A dropped frame is answered with rate_limited at
// most once a second; a flood that outlasts FloodGrace closes the session
// with bye flood. Loop goroutine of s.
func (h *hub) admit(s *session) bool {
	if s.limiter == nil || s.limiter.Allow() {
		return true
	}
	now := h.mono()
	if s.floodSince == 0 || now-s.lastDrop > int64(floodEnd) {
		s.floodSince = now
	}
	s.lastDrop = now
	if now-s.floodSince >= int64(h.cfg.FloodGrace) {
		h.log.Warn("flood", s.logAttrs()...)
		h.closeSession(s, codec.ReasonFlood)
		return false
	}
	if now-s.lastLimitErr >= int64(time.Second) || s.lastLimitErr == 0 {
		s.lastLimitErr = now
		h.replyError(s, codec.ErrRateLimited, "")
	}
	return false
}

// ipCounter counts connections per IP address. Safe from any goroutine.
type ipCounter struct {
	mu sync.Mutex
	m  map[string]int
}

// add counts a connection from ip unless ip has max already (max 0: no
// limit); it reports whether it did.
func (c *ipCounter) add(ip string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.m[ip] >= max {
		return false
	}
	if c.m == nil {
		c.m = make(map[string]int)
	}
	c.m[ip]++
	return true
}

func (c *ipCounter) remove(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ip]--; c.m[ip] <= 0 {
		delete(c.m, ip)
	}
}

// hostOf returns the IP of a "host:port" remote address.
func hostOf(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

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
