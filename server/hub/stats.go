package hub

import (
	"parley/codec"
	"parley/server/broker"
)

// Stats is a snapshot of a hub's tables and counters.
type Stats struct {
	Conns  int // open connections
	Nicks  int // entries in the nick index
	Rooms  int // live rooms, the lobby included
	Online int // logged-in sessions here
	// Closes counts the connections closed since the start, by reason
	// (disconnect for those the peer dropped).
	Closes map[codec.Reason]int64
	// Refused counts connections refused, for any limit.
	Refused int64
	// OutboundBytes is the memory every session's unsent bytes hold now,
	// as the slow-consumer limits count it.
	OutboundBytes int64
	// HeldNicks counts nicks held for their dropped sessions.
	HeldNicks int
	// Gaps counts the gap notices sent since the start: room messages the
	// cluster could not deliver here and no longer had (PROTOCOL.md).
	Gaps int64
	// BadLogins counts logins and refreshes refused for their token.
	BadLogins int64
	// Inboxes counts the accounts whose direct messages are kept.
	Inboxes int
	// HistoryBytes is the memory every room's history and inbox holds, as
	// --history-bytes counts it.
	HistoryBytes int64
	// Cluster is the broker's view of its cluster; nil on a single node.
	Cluster *broker.Stats
}

// Stats returns a snapshot of the hub. Safe from any goroutine.
func (h *Hub) Stats() Stats {
	return Stats{
		Conns:         int(h.conns.Load()),
		Nicks:         h.nicks.len(),
		Rooms:         h.rooms.len(),
		Online:        int(h.online.Load()),
		Closes:        h.count.closes.snapshot(),
		Refused:       h.count.refused.total(),
		OutboundBytes: h.outMem.Load(),
		HeldNicks:     h.holds.len(),
		Gaps:          h.count.gaps.Load(),
		BadLogins:     h.count.badLogins.Load(),
		Inboxes:       int(h.inboxCount.Load()),
		HistoryBytes:  h.histBytes.Load(),
		Cluster:       h.broker.Stats(),
	}
}

// HasRoom reports whether the hub keeps a room called name, for tests and
// diagnostics. Safe from any goroutine.
func (h *Hub) HasRoom(name string) bool { return h.rooms.get(name) != nil }

// RoomSeq is the last seq the hub delivered or sequenced in the room
// called name, for tests and diagnostics: a stored message at or below it
// is dropped as a replay. Safe from any goroutine.
func (h *Hub) RoomSeq(name string) (seq uint64, ok bool) {
	r := h.rooms.get(name)
	if r == nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq, true
}
