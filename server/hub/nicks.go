package hub

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"sync"
)

// nickHold keeps the nick of a session that dropped without quit for its
// resume token.
type nickHold struct {
	token   string
	account string // the session's account, which may always take its nick back
	until   int64  // monotonic nanoseconds
}

// nickHolds are the held nicks by identity key. Safe from any goroutine.
type nickHolds struct {
	*shardMap[string, nickHold]
}

func newNickHolds() nickHolds {
	seed := maphash.MakeSeed()
	return nickHolds{newShardMap[string, nickHold](func(k string) uint64 { return maphash.String(seed, k) })}
}

// blocks reports whether a hold keeps a login with token, of account (""
// for a nick login), from taking key now. A matching token or account
// consumes the hold; an expired one is dropped.
func (x nickHolds) blocks(key, token, account string, now int64) (blocked bool) {
	x.with(key, func(m map[string]nickHold) {
		hold, ok := m[key]
		switch {
		case !ok:
		case now >= hold.until || (token != "" && token == hold.token) || (account != "" && account == hold.account):
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

// maxHolds bounds the nicks held at once (about 100 bytes each): past it
// a dropped session's nick is released at once, so that a flood of
// connections that log in and drop cannot grow the table without bound.
const maxHolds = 1 << 17

// holdNick reserves a dropped session's nick for its resume token, and
// reports whether it did.
func (h *Hub) holdNick(s *Session) bool {
	if h.holds.len() >= maxHolds {
		h.warn.warn("holds-full", "too many held nicks: releasing a dropped session's nick at once", "held", maxHolds)
		return false
	}
	hold := nickHold{token: s.resume, account: s.account, until: h.mono() + int64(h.cfg.NickHold)}
	h.holds.with(s.key, func(m map[string]nickHold) { m[s.key] = hold })
	return true
}

// expireHolds ends the holds that are due, and releases their nicks for
// good unless a login took them back. Safe from any goroutine.
func (h *Hub) expireHolds(now int64) {
	for key := range h.holds.expired(now) {
		if h.nicks.get(key) == nil && !h.claiming.has(key) {
			h.broker.ReleaseNick(key, "")
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

// claimSet is the nick keys of logins waiting for the broker's claim, so
// that two local logins never claim one nick at once. Safe from any
// goroutine.
type claimSet struct {
	mu sync.Mutex
	m  map[string]bool
}

// add marks key as being claimed; it fails if it is already.
func (c *claimSet) add(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[key] {
		return false
	}
	c.m[key] = true
	return true
}

func (c *claimSet) remove(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *claimSet) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}
