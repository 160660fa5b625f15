package hub

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"parley/api"
	"parley/codec"
	"parley/server/auth"
	"parley/server/broker"
)

// Direct messages: delivered to every session of the recipient, kept in
// an account's inbox when it has one (inbox.go), and echoed to the
// sender's other sessions. DMs from other nodes arrive through remote.go.

func (h *Hub) handleDM(s *Session, req *codec.Request) error {
	defer h.trimHistory() // once the inboxes' locks are let go
	if (req.To == "") == (req.Account == "") {
		return fmt.Errorf("%w: a dm names a nick (to) or an account, one of them", codec.ErrBadRequest)
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	if h.hooked {
		rq := *req
		hr := api.HookRequest{Type: codec.TypeDM, Account: s.account, Nick: s.nick, To: rq.To, Body: rq.Body}
		if rq.Account != "" {
			hr.To = "@" + rq.Account
		}
		return h.askHook(s, rq.Ref, hr, func(body string) error {
			rq.Body = body
			return h.routeDM(s, &rq)
		})
	}
	return h.routeDM(s, req)
}

// routeDM sends a direct message the hook (if any) let through: to a
// nick online here, through the broker to one elsewhere, or left for an
// account that is offline. Loop goroutine of s.
func (h *Hub) routeDM(s *Session, req *codec.Request) error {
	if req.Account != "" {
		return h.dmAccount(s, req)
	}
	to, err := codec.ParseNick(req.To)
	if err != nil {
		return err
	}
	if !h.allowDM(s, to.Key) {
		return fmt.Errorf("%w: too many direct messages to %q", codec.ErrRateLimited, to.Display)
	}
	dm := broker.DirectMessage{ToKey: to.Key, ToNick: to.Display, From: s.nick, Body: req.Body, TS: h.wallMillis(), Account: s.account}
	if s.account != "" {
		dm.ID = newEpoch() // names both copies, for an edit or a delete
	}
	if !h.nicks.online(to.Key) {
		ref := req.Ref
		return h.call(s, func(done func(func())) {
			h.broker.SendDM(dm, func(err error) {
				done(func() {
					if err == nil {
						h.ack(s, ref, h.echoDM(s, dm))
						h.dmEvent(dm, "", false)
						return
					}
					if err := h.dmOffline(s, ref, dm, err); !errors.Is(err, errHeld) {
						h.answer(s, ref, err)
					}
				})
			})
		})
	}
	if nick, behind := h.behindAny(to.Key, h.cfg.MaxOutbound/4); behind {
		return fmt.Errorf("%w: %q is not keeping up with its messages; try again later", codec.ErrRateLimited, nick)
	}
	except := s
	if to.Key == s.key {
		except = nil // a dm to oneself reaches every session of the user, the sender's too
	}
	seq, err := h.sendDM(dm, except)
	if err != nil {
		return h.dmOffline(s, req.Ref, dm, err) // its nick is held, its sessions gone
	}
	if h.broker.Elsewhere(to.Key) > 0 {
		h.broker.SendDM(dm, func(error) {}) // its account's sessions on other nodes; delivered here already
	}
	if to.Key != s.key {
		seq = h.echoDM(s, dm)
	}
	h.ack(s, req.Ref, seq)
	_, _, account := h.nicks.sessions(to.Key)
	h.dmEvent(dm, account, false)
	return nil
}

// echoDM keeps a direct message s sent in its account's inbox and hands
// it to the account's other sessions, here and on other nodes; it
// returns its seq here (0 for a nick login, which keeps nothing).
func (h *Hub) echoDM(s *Session, dm broker.DirectMessage) uint64 {
	if s.account == "" {
		return 0
	}
	if h.broker.Elsewhere(s.key) > 0 {
		cp := dm
		cp.ToKey, cp.Copy = s.key, true
		h.broker.SendDM(cp, func(error) {})
	}
	return h.keepSent(s.key, s.account, dm, s)
}

// keepCopy keeps the sender's copy of a direct message sent through
// another node, for its account's sessions here.
func (h *Hub) keepCopy(dm broker.DirectMessage) {
	if u := h.nicks.get(dm.ToKey); u != nil && u.account != "" {
		h.keepSent(dm.ToKey, u.account, dm, nil)
	}
}

// keepSent keeps a direct message the user key of account sent in its
// inbox and hands it to its sessions but except.
func (h *Hub) keepSent(key, account string, dm broker.DirectMessage, except *Session) uint64 {
	ib := h.inboxFor(account)
	if ib == nil {
		return 0
	}
	ib.mu.Lock()
	defer ib.mu.Unlock()
	ib.seq++
	frame := dmFrame(dm, dm.ToNick, ib.seq)
	h.keep(&ib.hist, ib.seq, frame)
	sessions, _, _ := h.nicks.sessions(key)
	for _, t := range sessions {
		if t != except {
			h.deliverTo(t, frame)
		}
	}
	return ib.seq
}

// behind reports whether more than limit bytes wait for s: queued with
// the transport, or direct messages on their way to its loop (counted
// when sent, so that many senders at once cannot overtake the count).
// Safe from any goroutine.
func (s *Session) behind(limit int) bool {
	return s.queuedMem.Load()+s.incoming.Load() > int64(limit)
}

// deliverTo queues a frame that must not be dropped (a direct message,
// a read marker) for to. Safe from any goroutine.
func (h *Hub) deliverTo(to *Session, frame []byte) {
	to.incoming.Add(int64(len(frame)))
	to.loop.push(item{kind: itemDM, to: to, frame: frame})
}

// dmFrame encodes a direct message for a copy numbered seq (0: not
// kept), to as the recipient is shown.
func dmFrame(dm broker.DirectMessage, to string, seq uint64) []byte {
	return codec.MustEncode(&codec.Msg{From: dm.From, To: to, Body: dm.Body, TS: dm.TS, Seq: seq, ID: dm.ID, Account: dm.Account, API: dm.API})
}

// dmOffline leaves a direct message for the account that last used the
// nick to, when err says that nobody is online as it; else it returns
// err.
func (h *Hub) dmOffline(s *Session, ref string, dm broker.DirectMessage, err error) error {
	if errors.Is(err, codec.ErrNoSuchUser) {
		if account, nick, ok := h.accts.byNick(dm.ToKey, h.wallMillis()); ok {
			dm.ToNick = nick
			return h.leaveOffline(s, ref, account, dm)
		}
	}
	return err
}

// dmAccount sends a direct message to the account req.Account: as to
// the nick it last used, online or not, or, when this server has not
// seen it log in within codec.RememberedNickDays, left for its next
// login.
func (h *Hub) dmAccount(s *Session, req *codec.Request) error {
	account := req.Account
	if len(account) > auth.MaxSubject || !utf8.ValidString(account) {
		return fmt.Errorf("%w: account is over %d bytes", codec.ErrBadRequest, auth.MaxSubject)
	}
	if key, ok := h.accts.lastKey(account); ok {
		if _, nick, ok := h.accts.byNick(key, h.wallMillis()); ok {
			req.To, req.Account = nick, ""
			return h.routeDM(s, req)
		}
	}
	if !h.allowDM(s, "@"+account) {
		return fmt.Errorf("%w: too many direct messages to %q", codec.ErrRateLimited, account)
	}
	dm := broker.DirectMessage{ToNick: account, From: s.nick, Body: req.Body, TS: h.wallMillis(), ID: newEpoch(), Account: s.account}
	return h.leaveOffline(s, req.Ref, account, dm)
}
