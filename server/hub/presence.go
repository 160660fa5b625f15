package hub

import (
	"time"

	"parley/codec"
)

// Presence: past --presence-limit members a room's joins and leaves are
// counted and announced as one presence notice per interval instead of
// one frame per member per change.

// individualLocked reports whether a change of r to after members is
// announced one by one rather than counted into presence. A room that
// passed the presence limit goes on counting until it is a tenth below
// it, so a room at the limit cannot be toggled between the two at the
// price of a frame to every member each time. r.mu held.
func (h *Hub) individualLocked(r *room, after int) bool {
	limit := h.cfg.PresenceLimit
	switch {
	case limit < 0:
		return true
	case after > limit:
		r.counted = true
	case r.counted && after <= limit-max(limit/10, 1):
		r.counted = false
	}
	return !r.counted
}

// markPresence records that r owes its members a presence frame. r.mu held.
func (h *Hub) markPresence(r *room) {
	if r.presDirty {
		return
	}
	r.presDirty = true
	h.presenceMu.Lock()
	h.presenceDue = append(h.presenceDue, r)
	h.presenceMu.Unlock()
}

// flushPresence sends the presence frames that are due: at most one per
// room per PresenceInterval. Safe from any goroutine.
func (h *Hub) flushPresence(now int64) {
	h.presenceMu.Lock()
	due := h.presenceDue
	h.presenceDue = nil
	h.presenceMu.Unlock()
	var later []*room
	for _, r := range due {
		if !h.sendPresence(r, now) {
			later = append(later, r)
		}
	}
	if len(later) > 0 {
		h.presenceMu.Lock()
		h.presenceDue = append(h.presenceDue, later...)
		h.presenceMu.Unlock()
	}
}

// presenceGap is the least time between two presence frames in a room of
// members, in nanoseconds.
func presenceGap(interval time.Duration, members int) int64 {
	return int64(interval) * int64(max(1, (members+presenceMembers-1)/presenceMembers))
}

// sendPresence publishes r's presence frame unless the last one is too
// recent; it reports whether r is done.
func (h *Hub) sendPresence(r *room, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead || !r.presDirty {
		r.presDirty = false
		return true
	}
	if now-r.presLast < presenceGap(h.cfg.PresenceInterval, r.count()) {
		return false
	}
	frame := codec.MustEncode(&codec.Presence{Room: r.name, Count: r.count(), Joined: r.presJoined, Left: r.presLeft})
	for i, n := range r.perLoop {
		if n > 0 {
			h.loops[i].push(item{kind: itemPresence, room: r, frame: frame})
		}
	}
	r.presJoined, r.presLeft, r.presDirty, r.presLast = 0, 0, false, now
	return true
}
