package hub

import (
	"fmt"
	"hash/maphash"
	"sync"

	"parley/codec"
	"parley/server/broker"
)

// An account's direct messages, sent and received, are kept in its inbox
// (docs/PROTOCOL.md "Direct messages of an account"), numbered by their
// own seq, so that its sessions read them with history dm and catch up
// after a reconnect. A nick login has no inbox: without tokens no direct
// message is stored. Inboxes share HistoryLen, HistoryAge and
// HistoryBytes with the rooms' histories.

// inbox is one account's direct messages.
type inbox struct {
	mu    sync.Mutex
	seq   uint64
	epoch string
	hist  histList
}

// maxInboxes bounds the accounts whose direct messages are kept at once;
// past it, a new account's direct messages are delivered but not kept.
const maxInboxes = 1 << 17

func newInboxes() *shardMap[string, *inbox] {
	seed := maphash.MakeSeed()
	return newShardMap[string, *inbox](func(k string) uint64 { return maphash.String(seed, k) })
}

// inboxFor returns account's inbox, made if needed; nil when direct
// messages are not kept (no history, or too many inboxes).
func (h *Hub) inboxFor(account string) *inbox {
	if account == "" || h.cfg.HistoryLen <= 0 {
		return nil
	}
	var ib *inbox
	full := false
	h.inboxes.with(account, func(m map[string]*inbox) {
		if ib = m[account]; ib == nil {
			if full = h.inboxCount.Load() >= maxInboxes; !full {
				ib = &inbox{epoch: newEpoch()}
				m[account] = ib
				h.inboxCount.Add(1)
			}
		}
	})
	if full {
		h.warn.warn("inboxes-full", "too many accounts' direct messages kept: not keeping a new account's", "kept", maxInboxes)
	}
	return ib
}

// inboxState is the epoch and last seq of account's direct messages, for
// its session's welcome.
func (h *Hub) inboxState(account string) (string, uint64) {
	ib := h.inboxFor(account)
	if ib == nil {
		return "", 0
	}
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return ib.epoch, ib.seq
}

// sendDM delivers a direct message to the sessions of the user key (but
// except) and, when that user is an account, keeps it in its inbox first:
// the frame carries its seq there, which sendDM returns (0 if not kept).
// The sessions are read under the inbox's lock, so a session that logs
// in meanwhile either gets the message or finds it at or below its
// welcome's dm_seq. It returns no_such_user if key is not online here.
// Safe from any goroutine.
func (h *Hub) sendDM(dm broker.DirectMessage, except *Session) (uint64, error) {
	key := dm.ToKey
	var account string
	if u := h.nicks.get(key); u != nil {
		account = u.account // immutable once the user is in the index
	}
	ib := h.inboxFor(account)
	if ib != nil {
		ib.mu.Lock()
		defer ib.mu.Unlock()
	}
	sessions, nick, _ := h.nicks.sessions(key)
	if sessions == nil {
		return 0, codec.NotOnline(codec.ErrNoSuchUser, dm.ToNick)
	}
	var seq uint64
	if ib != nil {
		ib.seq++
		seq = ib.seq
	}
	frame := dmFrame(dm, nick, seq)
	h.count.directMessages.Add(1)
	if ib != nil {
		h.keep(&ib.hist, seq, frame)
	}
	for _, t := range sessions {
		if t != except {
			h.deliverTo(t, frame)
		}
	}
	return seq, nil
}

// behindAny reports whether any session of the user key has more than
// limit bytes waiting: a direct message would then be refused rather
// than lost.
func (h *Hub) behindAny(key string, limit int) (string, bool) {
	sessions, nick, _ := h.nicks.sessions(key)
	for _, t := range sessions {
		if t.behind(limit) {
			return nick, true
		}
	}
	return nick, false
}

// handleDMHistory answers history with dm: a page of the account's
// direct messages, as handleHistory pages a room's.
func (h *Hub) handleDMHistory(s *Session, req *codec.Request) error {
	if s.account == "" {
		return fmt.Errorf("%w: direct messages are kept for accounts only (log in with a token)", codec.ErrBadRequest)
	}
	limit, err := historyLimit(req.Limit)
	if err != nil {
		return err
	}
	page := &codec.Page{DM: true, Ref: req.Ref}
	if ib := h.inboxFor(s.account); ib != nil {
		ib.mu.Lock()
		entries, more := ib.hist.page(req.Since, req.Before, limit)
		page.Epoch, page.More = ib.epoch, more
		for _, e := range entries {
			page.Msgs = append(page.Msgs, e.frame[4:])
		}
		ib.mu.Unlock()
	}
	h.sendPage(s, page, req.Since != nil)
	return nil
}

// expireInboxes forgets direct messages remembered before old, and the
// inboxes left empty: an account's next direct message starts a new
// epoch. Ticker goroutine.
func (h *Hub) expireInboxes(old int64) {
	h.inboxes.each(func(m map[string]*inbox) {
		for account, ib := range m {
			ib.mu.Lock()
			h.expireOld(&ib.hist, old)
			empty := len(ib.hist) == 0
			ib.mu.Unlock()
			if empty {
				delete(m, account)
				h.inboxCount.Add(-1)
			}
		}
	})
}

// trimInboxes pushes out direct messages, oldest first in each inbox,
// while the histories hold more than HistoryBytes and no room's history is
// left to push out. Any goroutine, no lock held.
func (h *Hub) trimInboxes() {
	h.inboxes.each(func(m map[string]*inbox) {
		for _, ib := range m {
			if h.histBytes.Load() <= h.cfg.HistoryBytes {
				return
			}
			ib.mu.Lock()
			for len(ib.hist) > 0 && h.histBytes.Load() > h.cfg.HistoryBytes {
				h.forgetOldest(&ib.hist)
				h.count.historyEvicted.Add(1)
			}
			ib.mu.Unlock()
		}
	})
}
