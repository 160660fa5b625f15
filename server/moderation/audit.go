package moderation

import (
	"sync"

	"parley/codec"
)

// DefaultAuditLen is how many moderation actions the audit log keeps by
// default (--audit-len): the newest, in memory and, with --data-dir, on
// disk.
const DefaultAuditLen = 10000

// AuditLog is the newest moderation actions, in the order they were
// taken, each numbered. Safe from any goroutine.
type AuditLog struct {
	mu      sync.Mutex
	keep    int
	entries []codec.AuditEntry // oldest first
	last    uint64
}

// NewAuditLog returns a log keeping keep entries (DefaultAuditLen if not
// positive) that continues after loaded, the entries a store kept,
// oldest first.
func NewAuditLog(keep int, loaded []codec.AuditEntry) *AuditLog {
	if keep <= 0 {
		keep = DefaultAuditLen
	}
	l := &AuditLog{keep: keep}
	if len(loaded) > keep {
		loaded = loaded[len(loaded)-keep:]
	}
	l.entries = append(l.entries, loaded...)
	if n := len(loaded); n > 0 {
		l.last = loaded[n-1].Seq
	}
	return l
}

// Append numbers e, keeps it and returns it; the oldest entry goes once
// the log holds keep.
func (l *AuditLog) Append(e codec.AuditEntry) codec.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = l.last + 1
	l.addLocked(e)
	return e
}

// Add keeps e as the cluster numbered it (its Seq); an entry at or below
// the last kept is one already kept, and is dropped.
func (l *AuditLog) Add(e codec.AuditEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Seq > l.last {
		l.addLocked(e)
	}
}

// addLocked keeps e, numbered; l.mu held.
func (l *AuditLog) addLocked(e codec.AuditEntry) {
	l.last = e.Seq
	if len(l.entries) >= 2*l.keep { // compact now and then, not on every append
		l.entries = append(l.entries[:0:0], l.entries[len(l.entries)-l.keep+1:]...)
	}
	l.entries = append(l.entries, e)
}

// Page returns the newest limit entries before seq before (0: the newest
// of all), oldest first, of room ("" with all: every room's), and
// whether older ones remain. It walks at most the entries the log keeps.
func (l *AuditLog) Page(room string, all bool, before uint64, limit int) ([]codec.AuditEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.entries
	if len(kept) > l.keep {
		kept = kept[len(kept)-l.keep:]
	}
	var out []codec.AuditEntry
	for i := len(kept) - 1; i >= 0; i-- {
		e := kept[i]
		if before != 0 && e.Seq >= before || !all && e.Room != room {
			continue
		}
		if len(out) == limit {
			reverse(out)
			return out, true
		}
		out = append(out, e)
	}
	reverse(out)
	return out, false
}

// Keep is how many entries the log keeps at most.
func (l *AuditLog) Keep() int { return l.keep }

// Len is how many entries the log keeps now.
func (l *AuditLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(len(l.entries), l.keep)
}

func reverse(s []codec.AuditEntry) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
