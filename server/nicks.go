package server

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"sync"

	"github.com/google/btree"
)

// nickHold keeps the nick of a session that dropped without quit for its
// resume token.
type nickHold struct {
	token string
	until int64  // monotonic nanoseconds
	rev   uint64 // in a cluster: the nick claim's revision, released at expiry
}

// nickHolds are the held nicks by identity key. Safe from any goroutine.
type nickHolds struct {
	*shardMap[string, nickHold]
}

func newNickHolds() nickHolds {
	seed := maphash.MakeSeed()
	return nickHolds{newShardMap[string, nickHold](func(k string) uint64 { return maphash.String(seed, k) })}
}

// blocks reports whether a hold keeps a login with token from taking key
// now. A matching token consumes the hold; an expired one is dropped.
func (x nickHolds) blocks(key, token string, now int64) (blocked bool) {
	x.with(key, func(m map[string]nickHold) {
		hold, ok := m[key]
		switch {
		case !ok:
		case now >= hold.until || (token != "" && token == hold.token):
			delete(m, key)
		default:
			blocked = true
		}
	})
	return blocked
}

// expired removes and returns the holds that ended by now.
func (x nickHolds) expired(now int64) map[string]nickHold {
	var out map[string]nickHold
	x.each(func(m map[string]nickHold) {
		for k, hold := range m {
			if now >= hold.until {
				if out == nil {
					out = make(map[string]nickHold)
				}
				out[k] = hold
				delete(m, k)
			}
		}
	})
	return out
}

// holdNick reserves a dropped session's nick for its resume token. In a
// cluster the nick's claim stays with this node until the hold ends, so
// no other node hands the nick out meanwhile.
func (h *hub) holdNick(s *session) {
	hold := nickHold{token: s.resume, until: h.mono() + int64(h.cfg.NickHold)}
	if h.cluster != nil {
		hold.rev = h.cluster.claimRevision(s.key)
	}
	h.holds.with(s.key, func(m map[string]nickHold) { m[s.key] = hold })
}

// expireHolds ends the holds that are due. Safe from any goroutine.
func (h *hub) expireHolds(now int64) {
	for key, hold := range h.holds.expired(now) {
		if h.cluster != nil {
			h.cluster.releaseNickRevision(key, hold.rev)
		}
	}
}

// newResumeToken returns 128 random bits, base64url: a session's proof,
// on its next login, that it is the one whose nick is held.
func newResumeToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// userIndex is every user online here, sorted by codec.SortKey, so that a
// page of `who` costs O(log n + page) instead of a sort of everyone. Safe
// from any goroutine.
type userIndex struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[nickEntry]
}

func newUserIndex() *userIndex {
	return &userIndex{tree: btree.NewG(32, func(a, b nickEntry) bool { return a.key < b.key })}
}

func (x *userIndex) add(key, nick string) {
	x.mu.Lock()
	x.tree.ReplaceOrInsert(nickEntry{key, nick})
	x.mu.Unlock()
}

func (x *userIndex) remove(key string) {
	x.mu.Lock()
	x.tree.Delete(nickEntry{key: key})
	x.mu.Unlock()
}

// page returns up to limit users whose key sorts after afterKey, in
// order, whether more follow, and the count of everyone.
func (x *userIndex) page(afterKey string, limit int) ([]nickEntry, bool, int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]nickEntry, 0, min(limit, x.tree.Len()))
	more := false
	x.tree.AscendGreaterOrEqual(nickEntry{key: afterKey}, func(e nickEntry) bool {
		if e.key == afterKey {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, e)
		return true
	})
	return out, more, x.tree.Len()
}
