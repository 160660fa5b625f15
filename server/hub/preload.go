package hub

import (
	"bytes"

	"parley/codec"
	"parley/server/broker"
)

// A node that starts following a room holds only what it delivers from
// then on; the messages before are in the cluster's log. preload reads
// the room's last messages, up to HistoryLen, from the log into the
// room's history, in front of what was delivered meanwhile, and applies
// every amendment among them and among those delivered (amendLocked is
// idempotent: an edit sets the same text, a reaction already held or
// already gone changes nothing), so the node can edit, delete, react to
// and reply to every message of the room's history window, and its pages
// show them as they are now, like the room's owner. One read of the log
// per room a node starts following; meanwhile history pages come from
// the log as before.

// preload fills r's history from the log up to last, the last seq the
// log held when the node began following r. Any goroutine, no lock held.
func (h *Hub) preload(r *room, last uint64) {
	if !h.brokerLog || h.cfg.HistoryLen <= 0 || last == 0 {
		return
	}
	after := last - min(last, uint64(h.cfg.HistoryLen))
	h.broker.ReadLog(r.name, after, int(last-after), func(logged []broker.Logged, err error) {
		if err != nil || len(logged) == 0 {
			return
		}
		defer h.trimHistory()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.dead {
			return
		}
		first := r.seq + 1
		if len(r.hist) > 0 {
			first = r.hist[0].seq
		}
		var older histList
		for _, l := range logged {
			if l.Seq < first {
				older = append(older, histEntry{seq: l.Seq, frame: l.Frame, at: h.mono()})
				h.histBytes.Add(int64(cap(l.Frame) + histOverhead))
			}
		}
		if len(older) == 0 {
			return
		}
		r.hist = append(older, r.hist...)
		for len(r.hist) > h.cfg.HistoryLen {
			h.forgetOldest(&r.hist)
		}
		for i := 0; i < len(r.hist); i++ {
			if f := r.hist[i].frame; !bytes.HasPrefix(f[codec.HeaderSize:], msgStart) {
				h.amendLocked(r, f, false)
			}
		}
		h.ages.update(r)
	})
}
