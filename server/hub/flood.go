package hub

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"parley/codec"
)

// floodEnd is the longest gap between two dropped frames that still
// counts as flooding.
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
// most once a second. Time over the limit accumulates in s.flooded: the
// gap since the last dropped frame, up to floodEnd (and, for frames
// dropped together, the time they would take at the rate: overLimit); and
// the quiet time beyond floodEnd drains it at half speed. Once it reaches
// FloodGrace the session is closed with bye flood, so a client that floods
// in bursts with pauses just over a second is closed too, a little later
// than a continuous flood, while an occasional burst is forgiven. Loop
// goroutine of s.
func (h *Hub) admit(s *Session) bool {
	if s.limiter == nil || s.limiter.Allow() {
		return true
	}
	h.count.floodDrops.Add(1)
	now := h.mono()
	var gap int64
	if s.lastDrop != 0 {
		gap = now - s.lastDrop
		s.flooded = max(s.flooded-max(gap-int64(floodEnd), 0)/2, 0) // quiet time drains it
	}
	s.lastDrop = now
	if h.addFlood(s, min(gap, int64(floodEnd))) {
		return false
	}
	if now-s.lastLimitErr >= int64(time.Second) || s.lastLimitErr == 0 {
		s.lastLimitErr = now
		h.replyError(s, codec.ErrRateLimited, "")
	}
	return false
}

// overLimit adds to s's flood time the time n more frames, dropped at
// once, would have taken at the rate limit: a client that writes far past
// its budget is that far over it, and reaches FloodGrace (bye flood)
// sooner than one a little over it. Loop goroutine of s.
func (h *Hub) overLimit(s *Session, n uint64) {
	if n > 0 && h.cfg.RateLimit > 0 && !s.closing && !s.closed {
		h.addFlood(s, int64(float64(n)/h.cfg.RateLimit*float64(time.Second)))
	}
}

// addFlood adds d to s's time over the limit and closes s with bye flood
// once it reaches FloodGrace; it reports whether it closed s.
func (h *Hub) addFlood(s *Session, d int64) bool {
	s.flooded += d
	if s.flooded < int64(h.cfg.FloodGrace) {
		return false
	}
	h.log.Warn("flood", s.logAttrs()...)
	h.closeSession(s, codec.ReasonFlood)
	return true
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
	pt := s.targets()
	l := pt.dmLimits[key]
	if l == nil {
		if pt.dmLimits == nil || len(pt.dmLimits) >= maxDMLimits {
			pt.dmLimits = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Limit(h.cfg.DMRate), h.cfg.DMBurst)
		pt.dmLimits[key] = l
	}
	return l.Allow()
}

// Requests whose answer costs more than a frame's take more of the
// session's flood budget than the one frame their arrival took: a who
// reads a page of a table (whoCost), a refresh checks a signature (about
// 100 µs of CPU, refreshCost), and a history page or a resume's replay
// sends bytes (one frame per costUnit bytes, byteCost). A request the
// budget cannot pay for now is refused with rate_limited (a replay: with
// recovered false), so a session that pages or refreshes flat out gets
// what its rate limit covers and no more.
const (
	whoCost     = 10
	refreshCost = 10
	costUnit    = 2 << 10
)

// byteCost is the flood budget, in frames, of sending n bytes.
func byteCost(n int) int { return max((n+costUnit-1)/costUnit, 1) }

// charge takes frames more of s's flood budget than the frame of the
// request, which admit charged on arrival; it reports false, taking
// nothing, when the budget does not hold that many now. Loop goroutine of
// s.
func (h *Hub) charge(s *Session, frames int) bool {
	return s.limiter == nil || frames <= 1 || s.limiter.AllowN(time.Now(), frames-1)
}

// chargeWho takes the cost of a who from s's flood budget.
func (h *Hub) chargeWho(s *Session) bool { return h.charge(s, whoCost) }

// allowCreate checks a join of the room called name against the limits on
// rooms, if the room does not exist here: the server's MaxRooms, and s's
// budget for creating rooms. Loop goroutine of s.
func (h *Hub) allowCreate(s *Session, name string) error {
	if h.rooms.get(name) != nil {
		return nil
	}
	if h.cfg.MaxRooms > 0 && h.rooms.count() >= h.cfg.MaxRooms {
		h.warn.warn("max-rooms", "a join that would create a room was refused: the server keeps its most rooms", "max_rooms", h.cfg.MaxRooms)
		return fmt.Errorf("%w: the server keeps as many rooms as it may (%d); join a room that exists", codec.ErrTooManyRooms, h.cfg.MaxRooms)
	}
	if h.cfg.RoomCreateRate < 0 {
		return nil
	}
	if s.creates == nil {
		s.creates = rate.NewLimiter(rate.Limit(h.cfg.RoomCreateRate), h.cfg.RoomCreateBurst)
	}
	if !s.creates.Allow() {
		return fmt.Errorf("%w: creating rooms too fast", codec.ErrRateLimited)
	}
	return nil
}
