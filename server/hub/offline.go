package hub

import (
	"fmt"
	"sync"
	"time"

	"parley/codec"
	"parley/server/broker"
)

// Direct messages that wait (docs/PROTOCOL.md "Direct messages that
// wait"): a dm from an account to an account with no session online,
// named by the nick it last used or by its account, is kept in an
// OfflineStore and acked; the account's next login collects it, on any
// node, and gets it like any direct message, kept in its inbox.

// OfflineStore keeps the direct messages that wait for offline accounts:
// in memory (MemoryOffline), in --data-dir's store, or on the cluster's
// log. Safe from any goroutine; neither method blocks.
type OfflineStore interface {
	// Leave keeps dm for dm.Account, then calls done once: nil when
	// stored, else why not (rate_limited when the account's inbox or
	// the server's is full, unavailable when the store failed).
	Leave(dm broker.OfflineDM, done func(error))
	// Collect hands over the direct messages waiting for account, oldest
	// first, and forgets them; done is called once.
	Collect(account string, done func([]broker.OfflineDM, error))
}

// offlineCost is the flood budget, in frames, of a direct message left
// for an offline account: it holds storage for up to offlineAge, so one
// connection cannot fill the server's bound at the rate of messages.
const offlineCost = 10

// offlineAge is how long a direct message waits.
const offlineAge = codec.DefaultOfflineDMDays * 24 * time.Hour

// MemoryOffline keeps waiting messages in memory: Maxbroker.OfflineDMs per
// account, MaxOfflineBytes of bodies in all, for offlineAge.
type MemoryOffline struct {
	mu    sync.Mutex
	byAcc map[string][]broker.OfflineDM
	bytes int
}

// NewMemoryOffline returns an empty MemoryOffline.
func NewMemoryOffline() *MemoryOffline { return &MemoryOffline{byAcc: map[string][]broker.OfflineDM{}} }

// Leave keeps dm, or refuses it when full.
func (m *MemoryOffline) Leave(dm broker.OfflineDM, done func(error)) {
	m.mu.Lock()
	m.expireLocked(dm.Account)
	q := m.byAcc[dm.Account]
	if len(q) >= codec.MaxOfflineDMs || m.bytes+len(dm.Body) > codec.MaxOfflineBytes {
		m.mu.Unlock()
		done(broker.ErrInboxFull(dm.To))
		return
	}
	m.byAcc[dm.Account] = append(q, dm)
	m.bytes += len(dm.Body)
	m.mu.Unlock()
	done(nil)
}

// Collect hands over and forgets account's messages.
func (m *MemoryOffline) Collect(account string, done func([]broker.OfflineDM, error)) {
	m.mu.Lock()
	m.expireLocked(account)
	q := m.byAcc[account]
	delete(m.byAcc, account)
	for _, dm := range q {
		m.bytes -= len(dm.Body)
	}
	m.mu.Unlock()
	done(q, nil)
}

// expireLocked drops account's messages older than offlineAge.
func (m *MemoryOffline) expireLocked(account string) {
	q := m.byAcc[account]
	old := time.Now().Add(-offlineAge).UnixMilli()
	i := 0
	for i < len(q) && q[i].TS < old {
		m.bytes -= len(q[i].Body)
		i++
	}
	if i > 0 {
		m.byAcc[account] = q[i:]
	}
}

// leaveOffline keeps a direct message from s for the account that the
// nick to names (or, with byAccount, for that account) when it has no
// session online; no_such_user when there is no such account, or s has
// none. Loop goroutine of s.
func (h *Hub) leaveOffline(s *Session, ref, account string, dm broker.DirectMessage) error {
	if s.account == "" {
		return fmt.Errorf("%w: %q is not online, and only an account (a token login) leaves a message for later", codec.ErrNoSuchUser, dm.ToNick)
	}
	if !h.charge(s, offlineCost) {
		return fmt.Errorf("%w: a message left for later costs %d frames of the rate limit; send again later", codec.ErrRateLimited, offlineCost)
	}
	left := broker.OfflineDM{Account: account, From: dm.From, To: dm.ToNick, Body: dm.Body, TS: dm.TS, ID: dm.ID, Sender: dm.Account}
	return h.call(s, func(done func(func())) {
		h.cfg.Offline.Leave(left, func(err error) {
			done(func() {
				if err != nil {
					h.answer(s, ref, err)
					return
				}
				h.count.offlineDMs.Add(1)
				h.ack(s, ref, h.echoDM(s, dm))
				h.dmEvent(dm, account, true)
				if key, ok := h.accts.lastKey(account); ok && h.nicks.online(key) {
					h.collectOffline(account, key, nil) // it logged in meanwhile
				}
			})
		})
	})
}

// collectOffline delivers the messages waiting for account to its
// sessions here (under the nick key key), then runs then, if not nil, on
// nobody's goroutine in particular.
func (h *Hub) collectOffline(account, key string, then func()) {
	h.cfg.Offline.Collect(account, func(dms []broker.OfflineDM, err error) {
		if err != nil {
			h.warn.warn("offline-collect", "direct messages waiting for an account could not be read", "err", err)
		}
		for _, dm := range dms {
			_, _ = h.sendDM(broker.DirectMessage{ToKey: key, ToNick: dm.To, From: dm.From, Body: dm.Body, TS: dm.TS, ID: dm.ID, Account: dm.Sender, API: dm.API}, nil)
		}
		h.trimHistory()
		if then != nil {
			then()
		}
	})
}

// afterLogin runs once s, an account, is logged in: it remembers the
// nick, delivers what waited for the account, then sends its read
// markers. Loop goroutine of s.
func (h *Hub) afterLogin(s *Session) {
	h.accts.remember(s.account, s.nick, s.key, h.wallMillis())
	_ = h.call(s, func(done func(func())) {
		h.collectOffline(s.account, s.key, func() {
			done(func() { h.sendMarks(s) })
		})
	})
}
