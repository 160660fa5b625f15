package broker

import (
	"sync"

	"github.com/google/btree"

	"parley/codec"
)

// Directory is a set of users online, sorted by codec.SortKey, so that a
// page of `who` costs O(log n + page) instead of a sort of everyone. Safe
// from any goroutine.
type Directory struct {
	mu    sync.RWMutex
	order *btree.BTreeG[entry] // by sort key
	keys  map[string]string    // identity key → sort key
}

type entry struct{ sort, key, nick string }

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{order: btree.NewG(32, func(a, b entry) bool { return a.sort < b.sort }), keys: map[string]string{}}
}

// Add records the user with identity key and display nick, replacing an
// earlier nick for the same key.
func (d *Directory) Add(key, nick string) {
	sk := codec.SortKey(nick)
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.keys[key]; ok {
		d.order.Delete(entry{sort: old})
	}
	d.keys[key] = sk
	d.order.ReplaceOrInsert(entry{sort: sk, key: key, nick: nick})
}

// Remove forgets the user with identity key.
func (d *Directory) Remove(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sk, ok := d.keys[key]; ok {
		d.order.Delete(entry{sort: sk})
		delete(d.keys, key)
	}
}

// Len is the number of users.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.keys)
}

// Page returns up to limit users whose sort key follows afterKey, in
// order, whether more follow, and the count of everyone.
func (d *Directory) Page(afterKey string, limit int) ([]User, bool, int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]User, 0, min(limit, len(d.keys)))
	more := false
	d.order.AscendGreaterOrEqual(entry{sort: afterKey}, func(e entry) bool {
		if e.sort == afterKey {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, User{Key: e.key, Nick: e.nick})
		return true
	})
	return out, more, len(d.keys)
}
