package hub

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"

	"parley/codec"
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

// user is a nick online here: one session, or with tokens (Config.Auth)
// up to MaxSessionsPerUser sessions of one account, which share the nick,
// its direct messages and its presence.
type user struct {
	nick, key string
	account   string     // the account's identity key; "" for a nick login
	sessions  []*Session // under the nick index shard's lock
}

// nickIndex maps nick keys (codec.Name.Key) to users, sharded by a hash
// of the nick. Safe from any goroutine.
type nickIndex struct {
	*shardMap[string, *user]
}

func newNickIndex() nickIndex {
	seed := maphash.MakeSeed()
	return nickIndex{newShardMap[string, *user](func(k string) uint64 { return maphash.String(seed, k) })}
}

// claim makes s the first session of the user key unless the nick is
// online already.
func (x nickIndex) claim(key string, s *Session) (ok bool) {
	x.with(key, func(m map[string]*user) {
		if _, taken := m[key]; !taken {
			m[key], ok = &user{nick: s.nick, key: key, account: s.account, sessions: []*Session{s}}, true
		}
	})
	return ok
}

// errNotShared is addSession's answer when no user of the account holds
// the nick: the login must claim it.
var errNotShared = errors.New("hub: the nick is not held by the account")

// addSession adds s to the online user key of s's account, up to limit
// sessions with elsewhere on other nodes. It returns how many sessions
// the user has here then; errNotShared if key is free, nick_taken if
// another account or a nick login holds it.
func (x nickIndex) addSession(key string, s *Session, limit, elsewhere int) (n int, err error) {
	x.with(key, func(m map[string]*user) {
		u := m[key]
		switch {
		case u == nil:
			err = errNotShared
		case u.account == "" || u.account != s.account:
			err = codec.NotOnline(codec.ErrNickTaken, u.nick)
		case len(u.sessions)+elsewhere >= limit:
			err = fmt.Errorf("%w: this account has %d sessions, the most allowed", codec.ErrTooManySessions, len(u.sessions)+elsewhere)
		default:
			u.sessions = append(u.sessions, s)
			n = len(u.sessions)
		}
	})
	return n, err
}

// release takes s out of its user; it returns how many sessions the user
// has left: 0 when s was its last, whose nick is now free here, and -1
// when s was not one of them.
func (x nickIndex) release(key string, s *Session) (left int) {
	left = -1
	x.with(key, func(m map[string]*user) {
		u := m[key]
		if u == nil {
			return
		}
		found := false
		for i, o := range u.sessions {
			if o == s {
				u.sessions = append(u.sessions[:i], u.sessions[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			return
		}
		if left = len(u.sessions); left == 0 {
			delete(m, key)
		}
	})
	return left
}

// sessions returns a copy of the sessions of the user key, nil if it is
// not online here, and the user's nick.
func (x nickIndex) sessions(key string) (out []*Session, nick, account string) {
	x.with(key, func(m map[string]*user) {
		if u := m[key]; u != nil {
			out, nick, account = append([]*Session(nil), u.sessions...), u.nick, u.account
		}
	})
	return out, nick, account
}

// online reports whether the nick key is online here.
func (x nickIndex) online(key string) bool { return x.get(key) != nil }

// nickEntry is a user in a who listing: its sort key (codec.SortKey),
// display nick, and account when known here (for its role in the room).
type nickEntry struct{ key, nick, account string }

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
	n *atomic.Int64 // rooms in the table, for MaxRooms
}

func newRoomTable() roomTable {
	seed := maphash.MakeSeed()
	return roomTable{newShardMap[string, *room](func(k string) uint64 { return maphash.String(seed, k) }), new(atomic.Int64)}
}

// count is how many rooms the table holds. Safe from any goroutine.
func (t roomTable) count() int { return int(t.n.Load()) }

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
				t.n.Add(1)
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
			t.n.Add(-1)
		}
	})
}
