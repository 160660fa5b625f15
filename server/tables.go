package server

import (
	"hash/maphash"
	"sort"
	"sync"

	"github.com/google/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// numShards is the size of every sharded table: a power of two, so a hash
// picks a shard with a mask.
const numShards = 64

// sessionTable holds the logged-in sessions, sharded by session UUID.
// Safe from any goroutine.
type sessionTable struct {
	shards [numShards]struct {
		sync.Mutex
		m map[uuid.UUID]*session
	}
}

func (t *sessionTable) shard(id uuid.UUID) int { return int(id[15]) & (numShards - 1) }

func (t *sessionTable) add(s *session) {
	sh := &t.shards[t.shard(s.id)]
	sh.Lock()
	if sh.m == nil {
		sh.m = make(map[uuid.UUID]*session)
	}
	sh.m[s.id] = s
	sh.Unlock()
}

func (t *sessionTable) remove(s *session) {
	sh := &t.shards[t.shard(s.id)]
	sh.Lock()
	delete(sh.m, s.id)
	sh.Unlock()
}

func (t *sessionTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.Lock()
		n += len(sh.m)
		sh.Unlock()
	}
	return n
}

// nickIndex maps folded nicks to sessions, sharded by a hash of the nick.
// Safe from any goroutine.
type nickIndex struct {
	seed   maphash.Seed
	shards [numShards]struct {
		sync.Mutex
		m map[string]*session
	}
}

func newNickIndex() *nickIndex { return &nickIndex{seed: maphash.MakeSeed()} }

func (x *nickIndex) shard(key string) int {
	return int(maphash.String(x.seed, key) & (numShards - 1))
}

// claim records s as the holder of key unless another session holds it.
func (x *nickIndex) claim(key string, s *session) bool {
	sh := &x.shards[x.shard(key)]
	sh.Lock()
	defer sh.Unlock()
	if _, taken := sh.m[key]; taken {
		return false
	}
	if sh.m == nil {
		sh.m = make(map[string]*session)
	}
	sh.m[key] = s
	return true
}

// release drops key if s still holds it.
func (x *nickIndex) release(key string, s *session) {
	sh := &x.shards[x.shard(key)]
	sh.Lock()
	if sh.m[key] == s {
		delete(sh.m, key)
	}
	sh.Unlock()
}

func (x *nickIndex) get(key string) *session {
	sh := &x.shards[x.shard(key)]
	sh.Lock()
	defer sh.Unlock()
	return sh.m[key]
}

func (x *nickIndex) len() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.Lock()
		n += len(sh.m)
		sh.Unlock()
	}
	return n
}

// after returns the users whose key sorts after afterKey, copied under each
// shard's lock; the caller sorts and pages them.
func (x *nickIndex) after(afterKey string) []nickEntry {
	var out []nickEntry
	for i := range x.shards {
		sh := &x.shards[i]
		sh.Lock()
		for k, s := range sh.m {
			if k > afterKey {
				out = append(out, nickEntry{k, s.nick})
			}
		}
		sh.Unlock()
	}
	return out
}

// nickEntry is a user in a who listing: its folded key and display nick.
type nickEntry struct{ key, nick string }

// whoPage sorts entries by key and cuts one page: at most limit nicks and at
// most budget bytes of them, so the users frame stays under the frame size.
func whoPage(entries []nickEntry, limit, budget int) (nicks []string, more bool) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	nicks = make([]string, 0, min(len(entries), limit))
	for _, e := range entries {
		// Worst case JSON: quotes, a comma, and every byte escaped as \uXXXX.
		cost := 6*len(e.nick) + 3
		if len(nicks) == limit || cost > budget {
			return nicks, true
		}
		budget -= cost
		nicks = append(nicks, e.nick)
	}
	return nicks, false
}

// foldNick returns the identity key of a nick: Unicode NFC, then full case
// folding, so nicks that differ only in case or in composition are one.
func foldNick(nick string) string {
	return cases.Fold().String(norm.NFC.String(nick))
}

// roomTable finds rooms by name, sharded by a hash of the name. Safe from
// any goroutine.
type roomTable struct {
	seed   maphash.Seed
	shards [numShards]struct {
		sync.Mutex
		m map[string]*room
	}
}

func newRoomTable() *roomTable { return &roomTable{seed: maphash.MakeSeed()} }

func (t *roomTable) shardOf(name string) *struct {
	sync.Mutex
	m map[string]*room
} {
	return &t.shards[maphash.String(t.seed, name)&(numShards-1)]
}

// acquire returns the live room called name, created if needed, with its
// lock held. A room found dead (emptied and on its way out of the table) is
// replaced by a new one.
func (t *roomTable) acquire(name string, create func(string) *room) *room {
	for {
		sh := t.shardOf(name)
		sh.Lock()
		r := sh.m[name]
		if r == nil {
			if sh.m == nil {
				sh.m = make(map[string]*room)
			}
			r = create(name)
			sh.m[name] = r
		}
		sh.Unlock()
		r.mu.Lock()
		if !r.dead {
			return r
		}
		r.mu.Unlock()
		sh.Lock()
		if sh.m[name] == r {
			delete(sh.m, name)
		}
		sh.Unlock()
	}
}

// get returns the room called name, or nil.
func (t *roomTable) get(name string) *room {
	sh := t.shardOf(name)
	sh.Lock()
	defer sh.Unlock()
	return sh.m[name]
}

// remove deletes r if it is still the room under its name.
func (t *roomTable) remove(r *room) {
	sh := t.shardOf(r.name)
	sh.Lock()
	if sh.m[r.name] == r {
		delete(sh.m, r.name)
	}
	sh.Unlock()
}

func (t *roomTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.Lock()
		n += len(sh.m)
		sh.Unlock()
	}
	return n
}

// each calls fn for every room, outside the table's locks.
func (t *roomTable) each(fn func(*room)) {
	var rooms []*room
	for i := range t.shards {
		sh := &t.shards[i]
		sh.Lock()
		for _, r := range sh.m {
			rooms = append(rooms, r)
		}
		sh.Unlock()
	}
	for _, r := range rooms {
		fn(r)
	}
}
