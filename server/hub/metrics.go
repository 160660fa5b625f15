package hub

import (
	"sync"
	"sync/atomic"

	"parley/codec"
	"parley/server/metric"
)

// What the hub counts for an operator (docs/OPERATIONS.md): atomic
// counters bumped where the work is done, once per frame, write or
// broadcast item and never per recipient, and read by Metrics at scrape
// time. Counting takes no lock and allocates nothing.

// loopCounters are one loop's counters. Written by the loop goroutine,
// read by any.
type loopCounters struct {
	framesIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	deliveries          atomic.Uint64    // room messages queued for members
	broadcast           metric.Histogram // sequencing to hand-off, per room message on this loop
}

// hubCounters are the hub's own counters, the one set Stats, Metrics and
// the periodic log line read. Safe from any goroutine.
type hubCounters struct {
	opened, logins atomic.Int64  // connections opened, sessions logged in
	badLogins      atomic.Int64  // logins and refreshes with a bad, expired or missing token
	gaps           atomic.Int64  // gap notices sent to rooms
	closes         closeCounts   // connections closed, by reason
	roomMessages   atomic.Uint64 // sequenced here
	directMessages atomic.Uint64 // delivered here
	offlineDMs     atomic.Uint64 // left here for an offline account
	floodDrops     atomic.Uint64 // frames dropped by flood control
	skipped        atomic.Uint64 // room messages dropped for a member behind its budget
	historyKept    atomic.Uint64 // messages kept in a room's or an account's history
	historyEvicted atomic.Uint64 // messages pushed out of a history by HistoryBytes
	replaysShed    atomic.Uint64 // resumes not replayed for their cost (recovered false)
	replaysQueued  atomic.Uint64 // resumes that waited for the server's replay budget
	resumes        [2]atomic.Uint64
	errors         errorCounts
	refused        refusals
	moderation     refusals // moderation actions, by action
}

// errorCounts counts error frames sent, by code; the set of codes is
// fixed by codec, so the map is only read after init.
type errorCounts struct {
	m map[codec.Code]*atomic.Uint64
}

func newErrorCounts() errorCounts {
	e := errorCounts{m: map[codec.Code]*atomic.Uint64{}}
	for _, c := range codec.Codes() {
		e.m[c] = new(atomic.Uint64)
	}
	return e
}

func (e errorCounts) add(c codec.Code) {
	if n := e.m[c]; n != nil {
		n.Add(1)
	}
}

// refusals counts refused connections by the limit they were over, and
// moderation actions by action: events by a name from a fixed set.
type refusals struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (r *refusals) add(limit string) {
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]uint64{}
	}
	r.m[limit]++
	r.mu.Unlock()
}

// total is the connections refused for any limit.
func (r *refusals) total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for _, v := range r.m {
		n += v
	}
	return int64(n)
}

func (r *refusals) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// Metrics is what an operator's scrape reads (docs/OPERATIONS.md).
type Metrics struct {
	Stats
	FramesIn, BytesIn, FramesOut, BytesOut uint64
	Deliveries                             uint64
	RoomMessages, DirectMessages           uint64
	OfflineDMs                             uint64 // direct messages left for offline accounts
	FloodDrops, Skipped                    uint64
	HistoryKept, HistoryEvicted            uint64
	ReplaysShed                            uint64 // resumes refused for the cost of their replay
	ReplaysQueued                          uint64 // resumes that waited for the server's replay budget
	Resumed, ResumedLost                   uint64 // resumes that recovered everything, and those that did not
	Errors                                 map[codec.Code]uint64
	RefusedBy                              map[string]uint64
	Moderation                             map[string]uint64 // actions taken, by action (codec.AuditEntry.Action)
	AuditEntries                           int               // entries the audit log keeps
	Broadcast                              metric.Snapshot
}

// Metrics returns the counters now. Safe from any goroutine; it locks
// only what Stats does.
func (h *Hub) Metrics() Metrics {
	m := Metrics{Stats: h.Stats(), Errors: map[codec.Code]uint64{}}
	for _, l := range h.loops {
		c := &l.count
		m.FramesIn += c.framesIn.Load()
		m.BytesIn += c.bytesIn.Load()
		m.FramesOut += c.framesOut.Load()
		m.BytesOut += c.bytesOut.Load()
		m.Deliveries += c.deliveries.Load()
		m.Broadcast.Add(c.broadcast.Snapshot())
	}
	n := &h.count
	m.RoomMessages, m.DirectMessages = n.roomMessages.Load(), n.directMessages.Load()
	m.OfflineDMs = n.offlineDMs.Load()
	m.FloodDrops, m.Skipped, m.HistoryKept = n.floodDrops.Load(), n.skipped.Load(), n.historyKept.Load()
	m.HistoryEvicted, m.ReplaysShed, m.ReplaysQueued = n.historyEvicted.Load(), n.replaysShed.Load(), n.replaysQueued.Load()
	m.Resumed, m.ResumedLost = n.resumes[1].Load(), n.resumes[0].Load()
	for c, v := range n.errors.m {
		m.Errors[c] = v.Load()
	}
	m.RefusedBy = n.refused.snapshot()
	m.Moderation = n.moderation.snapshot()
	m.AuditEntries = h.gov.audit.Len()
	return m
}
