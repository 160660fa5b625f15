package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"parley/codec"
)

// The account table (docs/PROTOCOL.md "Read markers", "Direct messages
// that wait"): each account's read markers, and the nick each account
// last used, by which a direct message finds an account that is offline
// and a mention an account that is away. Each entry is one record in
// the AccountStore: a single node's --data-dir, or a cluster's key-value
// bucket, whose changes every node applies (broker.Handler
// AccountChanged), so every node knows every marker.

// AccountStore keeps the account table's records beyond the process:
// key names one record (accountRecord.key), data is its JSON. Called
// under the table's lock: it must not block.
type AccountStore interface {
	SaveAccount(key string, data []byte)
}

// MemoryAccounts is the AccountStore of a hub without a store.
type MemoryAccounts struct{}

// SaveAccount keeps nothing: the hub's table is all there is.
func (MemoryAccounts) SaveAccount(string, []byte) {}

// Bounds of the account table (docs/PROTOCOL.md "Limits").
const (
	maxMarksTotal  = 1 << 18 // read markers of all accounts together
	nickMemory     = codec.RememberedNickDays * 24 * time.Hour
	nickRefreshGap = 24 * time.Hour // a login re-saves a remembered nick at most this often
)

// accountRecord is one entry of the table: a read marker (Conv set) or a
// remembered nick (Nick set).
type accountRecord struct {
	Account string `json:"account"`
	Conv    string `json:"conv,omitempty"` // "#" and a room, or dmConv
	Seq     uint64 `json:"seq,omitempty"`
	Nick    string `json:"nick,omitempty"`
	At      int64  `json:"at"` // Unix ms
}

// dmConv names the account's direct messages among its conversations.
const dmConv = "@dm"

func roomConv(room string) string { return "#" + room }

// key names the record in the store: a hash, so that any account, nick
// or room fits a key-value bucket's key alphabet.
func (a accountRecord) key() string {
	var sum [32]byte
	if a.Conv != "" {
		sum = sha256.Sum256([]byte("mark\x00" + a.Account + "\x00" + a.Conv))
		return "m." + hex.EncodeToString(sum[:16])
	}
	n, _ := codec.ParseNick(a.Nick)
	sum = sha256.Sum256([]byte("nick\x00" + n.Key))
	return "n." + hex.EncodeToString(sum[:16])
}

type marker struct {
	seq uint64
	at  int64 // Unix ms it last moved
}

type rememberedNick struct {
	nick, account string
	at            int64 // Unix ms
}

// accountTable is the table. Safe from any goroutine; nothing else is
// locked while its lock is held.
type accountTable struct {
	mu    sync.Mutex
	store AccountStore
	// maxMarks and maxNicks bound the markers of all accounts and the
	// nicks remembered: maxMarksTotal and codec.MaxRememberedNicks.
	maxMarks, maxNicks int
	marks              map[string]map[string]marker // account, conversation
	nmarks             int
	nicks              map[string]rememberedNick // by nick key
	last               map[string]string         // account: the key of its last nick
}

func newAccountTable(store AccountStore) *accountTable {
	return &accountTable{store: store, maxMarks: maxMarksTotal, maxNicks: codec.MaxRememberedNicks,
		marks: map[string]map[string]marker{}, nicks: map[string]rememberedNick{}, last: map[string]string{}}
}

func (t *accountTable) save(rec accountRecord) {
	data, err := json.Marshal(rec)
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	t.store.SaveAccount(rec.key(), data)
}

// mark moves account's marker in conv forward to seq; it reports the
// marker as it is, and whether it moved.
func (t *accountTable) mark(account, conv string, seq uint64, now int64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	got, moved := t.markLocked(account, conv, seq, now)
	if moved {
		t.save(accountRecord{Account: account, Conv: conv, Seq: got, At: now})
	}
	return got, moved
}

// markLocked is mark without the store. Past MaxMarks an account's
// least recently moved marker goes; past maxMarksTotal a marker of an
// account without one is not kept. t.mu held.
func (t *accountTable) markLocked(account, conv string, seq uint64, now int64) (uint64, bool) {
	ms := t.marks[account]
	if old, ok := ms[conv]; ok && old.seq >= seq {
		return old.seq, false
	}
	if ms == nil {
		if t.nmarks >= t.maxMarks {
			return 0, false
		}
		ms = map[string]marker{}
		t.marks[account] = ms
	}
	if _, ok := ms[conv]; !ok {
		if len(ms) >= codec.MaxMarks {
			oldest, at := "", int64(0)
			for c, m := range ms {
				if oldest == "" || m.at < at {
					oldest, at = c, m.at
				}
			}
			delete(ms, oldest)
			t.nmarks--
		}
		t.nmarks++
	}
	ms[conv] = marker{seq: seq, at: now}
	return seq, true
}

// marksOf returns account's markers.
func (t *accountTable) marksOf(account string) map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.marks[account]))
	for c, m := range t.marks[account] {
		out[c] = m.seq
	}
	return out
}

// remember notes that account logged in as nick (key: its nick key).
func (t *accountTable) remember(account, nick, key string, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.nicks[key]; ok && old.account == account && old.nick == nick && now-old.at < nickRefreshGap.Milliseconds() {
		return
	}
	if t.rememberLocked(account, nick, key, now) {
		t.save(accountRecord{Account: account, Nick: nick, At: now})
	}
}

// rememberLocked keeps a nick, unless the table is full of nicks still
// remembered. t.mu held.
func (t *accountTable) rememberLocked(account, nick, key string, now int64) bool {
	if old, ok := t.nicks[key]; ok && old.at > now {
		return false // a newer record arrived first
	}
	if _, ok := t.nicks[key]; !ok && len(t.nicks) >= t.maxNicks {
		t.forgetNicksLocked(now)
		if len(t.nicks) >= t.maxNicks {
			return false
		}
	}
	t.nicks[key] = rememberedNick{nick: nick, account: account, at: now}
	t.last[account] = key
	return true
}

// forgetNicksLocked drops the nicks not used within nickMemory.
func (t *accountTable) forgetNicksLocked(now int64) {
	for k, n := range t.nicks {
		if now-n.at > nickMemory.Milliseconds() {
			delete(t.nicks, k)
			if t.last[n.account] == k {
				delete(t.last, n.account)
			}
		}
	}
}

// byNick returns the account that last used the nick with key, within
// nickMemory, and that nick.
func (t *accountTable) byNick(key string, now int64) (account, nick string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nicks[key]
	if !ok || now-n.at > nickMemory.Milliseconds() {
		return "", "", false
	}
	return n.account, n.nick, true
}

// lastKey returns the key of the nick account last used.
func (t *accountTable) lastKey(account string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, ok := t.last[account]
	return k, ok
}

// markedNick returns the nick with key when the account that last used
// it keeps a marker in conv: an account away from a room it reads.
func (t *accountTable) markedNick(key, conv string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nicks[key]
	if !ok {
		return "", false
	}
	_, marked := t.marks[n.account][conv]
	return n.nick, marked
}

// apply merges a record from the store or another node; for a marker
// that moved it returns the record.
func (t *accountTable) apply(data []byte) (accountRecord, bool) {
	var rec accountRecord
	if json.Unmarshal(data, &rec) != nil || rec.Account == "" {
		return rec, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case rec.Conv != "":
		seq, moved := t.markLocked(rec.Account, rec.Conv, rec.Seq, rec.At)
		rec.Seq = seq
		return rec, moved
	case rec.Nick != "":
		if n, err := codec.ParseNick(rec.Nick); err == nil {
			t.rememberLocked(rec.Account, n.Display, n.Key, rec.At)
		}
	}
	return rec, false
}
