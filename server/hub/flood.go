package hub

import (
	"time"

	"golang.org/x/time/rate"

	"parley/codec"
)

// floodEnd is how long a connection must go without a dropped frame before
// its flood counts as over.
const floodEnd = time.Second

// newLimiter returns the flood control of one connection, or nil when it
// is off.
func (h *Hub) newLimiter() *rate.Limiter {
	if h.cfg.RateLimit < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(h.cfg.RateLimit), h.cfg.RateBurst)
}

// admit applies flood control to one frame from s: it reports whether the
// frame may be handled. A dropped frame is answered with rate_limited at
// most once a second; a flood that outlasts FloodGrace closes the session
// with bye flood. Loop goroutine of s.
func (h *Hub) admit(s *Session) bool {
	if s.limiter == nil || s.limiter.Allow() {
		return true
	}
	h.count.floodDrops.Add(1)
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

// newJoinLimiter returns the budget of joins and leaves of one session,
// or nil when it is off.
func (h *Hub) newJoinLimiter() *rate.Limiter {
	if h.cfg.JoinRate < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(h.cfg.JoinRate), h.cfg.JoinBurst)
}

// maxDMLimits bounds the per-recipient limiters one session keeps; past
// it they start over, which the frame rate limit still bounds.
const maxDMLimits = 64

// allowDM takes one direct message from s to the user with key out of
// that pair's budget. Loop goroutine of s.
func (h *Hub) allowDM(s *Session, key string) bool {
	if h.cfg.DMRate < 0 {
		return true
	}
	l := s.dmLimits[key]
	if l == nil {
		if s.dmLimits == nil || len(s.dmLimits) >= maxDMLimits {
			s.dmLimits = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Limit(h.cfg.DMRate), h.cfg.DMBurst)
		s.dmLimits[key] = l
	}
	return l.Allow()
}

// whoCost is how many frames of flood budget one who costs: it reads a
// whole page of a table.
const whoCost = 10

// chargeWho takes the extra cost of a who from s's flood budget (the
// frame itself was charged on arrival).
func (h *Hub) chargeWho(s *Session) bool {
	return s.limiter == nil || s.limiter.AllowN(time.Now(), whoCost-1)
}
