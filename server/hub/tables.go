package hub

import (
	"hash/maphash"
	"sort"
	"sync"
)

// numShards is the size of every sharded table: a power of two, so a hash
// picks a shard with a mask.
const numShards = 64

// shardMap is a map split into numShards shards, each with its own lock,
// so goroutines on different loops rarely wait for each other. Safe from
// any goroutine.
type shardMap[K comparable, V any] struct {
	hash   func(K) uint64
	shards [numShards]struct {
		sync.Mutex
		m map[K]V
	}
}

func newShardMap[K comparable, V any](hash func(K) uint64) *shardMap[K, V] {
	return &shardMap[K, V]{hash: hash}
}

// with runs fn on k's shard, locked, its map created if needed.
func (sm *shardMap[K, V]) with(k K, fn func(m map[K]V)) {
	sh := &sm.shards[sm.hash(k)&(numShards-1)]
	sh.Lock()
	defer sh.Unlock()
	if sh.m == nil {
		sh.m = make(map[K]V)
	}
	fn(sh.m)
}

func (sm *shardMap[K, V]) get(k K) (v V) {
	sm.with(k, func(m map[K]V) { v = m[k] })
	return v
}

func (sm *shardMap[K, V]) len() int {
	n := 0
	sm.each(func(m map[K]V) { n += len(m) })
	return n
}

// each runs fn on every shard's map in turn, each under its lock.
func (sm *shardMap[K, V]) each(fn func(m map[K]V)) {
	for i := range sm.shards {
		sh := &sm.shards[i]
		sh.Lock()
		fn(sh.m)
		sh.Unlock()
	}
}

// nickIndex maps nick keys (codec.Name.Key) to sessions, sharded by a hash of the nick.
type nickIndex struct {
	*shardMap[string, *Session]
}

func newNickIndex() nickIndex {
	seed := maphash.MakeSeed()
	return nickIndex{newShardMap[string, *Session](func(k string) uint64 { return maphash.String(seed, k) })}
}

// claim records s as the holder of key unless another session holds it.
func (x nickIndex) claim(key string, s *Session) (ok bool) {
	x.with(key, func(m map[string]*Session) {
		if _, taken := m[key]; !taken {
			m[key], ok = s, true
		}
	})
	return ok
}

// release drops key if s still holds it.
func (x nickIndex) release(key string, s *Session) {
	x.with(key, func(m map[string]*Session) {
		if m[key] == s {
			delete(m, key)
		}
	})
}

// nickEntry is a user in a who listing: its sort key (codec.SortKey) and
// display nick.
type nickEntry struct{ key, nick string }

// whoPage sorts entries by key and cuts one page: at most limit nicks and at
// most budget bytes of them, so the users frame stays under the frame size.
func whoPage(entries []nickEntry, limit, budget int) (nicks []string, more bool) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	return cutPage(len(entries), func(i int) string { return entries[i].nick }, limit, budget)
}

// cutPage takes the first of n sorted nicks, at most limit of them and at
// most budget bytes, and reports whether it left any out.
func cutPage(n int, nick func(int) string, limit, budget int) (nicks []string, more bool) {
	nicks = make([]string, 0, min(n, limit))
	for i := 0; i < n; i++ {
		// Worst case JSON: quotes, a comma, and every byte escaped as \uXXXX.
		cost := 6*len(nick(i)) + 3
		if len(nicks) == limit || cost > budget {
			return nicks, true
		}
		budget -= cost
		nicks = append(nicks, nick(i))
	}
	return nicks, false
}

// roomTable finds rooms by name, sharded by a hash of the name.
type roomTable struct {
	*shardMap[string, *room]
}

func newRoomTable() roomTable {
	seed := maphash.MakeSeed()
	return roomTable{newShardMap[string, *room](func(k string) uint64 { return maphash.String(seed, k) })}
}

// acquire returns the live room called name, created if needed, with its
// lock held. A room found dead (emptied and on its way out of the table) is
// replaced by a new one.
func (t roomTable) acquire(name string, create func(string) *room) *room {
	for {
		var r *room
		t.with(name, func(m map[string]*room) {
			if r = m[name]; r == nil {
				r = create(name)
				m[name] = r
			}
		})
		r.mu.Lock()
		if !r.dead {
			return r
		}
		r.mu.Unlock()
		t.remove(r)
	}
}

// remove deletes r if it is still the room under its name.
func (t roomTable) remove(r *room) {
	t.with(r.name, func(m map[string]*room) {
		if m[r.name] == r {
			delete(m, r.name)
		}
	})
}
