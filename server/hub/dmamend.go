package hub

import (
	"bytes"
	"fmt"

	"parley/codec"
	"parley/server/broker"
)

// Edits and deletes of direct messages (docs/PROTOCOL.md "Edits,
// deletes, reactions, replies and mentions"): the sender names the
// message by its seq in its own direct messages; both copies carry the
// message's id, by which each inbox finds its own. Each side keeps the
// message as it is now and the edit or delete as an event with a seq of
// its own there, so a session that catches up with history dm learns it.

// handleDMAmend edits (kind codec.TypeEdited) or deletes a direct
// message s's account sent.
func (h *Hub) handleDMAmend(s *Session, req *codec.Request, kind string) error {
	defer h.trimHistory()
	if s.account == "" {
		return fmt.Errorf("%w: direct messages are kept for accounts only (log in with a token)", codec.ErrBadRequest)
	}
	if kind == codec.TypeEdited {
		if err := h.checkBody(req.Body); err != nil {
			return err
		}
	}
	ib := h.inboxFor(s.account)
	if ib == nil {
		return fmt.Errorf("%w: no direct message %d is kept", codec.ErrNotFound, req.Seq)
	}
	ib.mu.Lock()
	_, m, err := ib.hist.findDM(req.Seq)
	ib.mu.Unlock()
	switch {
	case err != nil:
		return err
	case m.Account != s.account || m.ID == "":
		return fmt.Errorf("%w: only its sender edits or deletes direct message %d", codec.ErrForbidden, req.Seq)
	}
	to, err := codec.ParseNick(m.To)
	if err != nil {
		return fmt.Errorf("%w: direct message %d names no recipient", codec.ErrNotFound, req.Seq)
	}
	dm := broker.DirectMessage{ToKey: to.Key, ToNick: m.To, From: s.nick, TS: h.wallMillis(), ID: m.ID, Account: s.account, Kind: kind}
	if kind == codec.TypeEdited {
		dm.Body = req.Body
	}
	seq := h.amendInbox(ib, dm, s.key, s)
	if to.Key != s.key {
		if !h.amendDMFor(dm) {
			h.broker.SendDM(dm, func(error) {}) // offline, or on another node: that node applies it
		}
	}
	h.ack(s, req.Ref, seq)
	return nil
}

// amendDMFor applies an edit or a delete to the recipient's copy kept
// here, and tells its sessions here; false when it has none here (its
// node, if any, applies it there).
func (h *Hub) amendDMFor(dm broker.DirectMessage) bool {
	var account string
	online := false
	if u := h.nicks.get(dm.ToKey); u != nil {
		account, online = u.account, true
	} else if a, _, ok := h.accts.byNick(dm.ToKey, h.wallMillis()); ok {
		account = a
	}
	var ib *inbox
	if account != "" {
		h.inboxes.with(account, func(m map[string]*inbox) { ib = m[account] })
	}
	switch {
	case ib != nil:
		h.amendInbox(ib, dm, dm.ToKey, nil)
	case online: // a nick login keeps nothing: it is told
		sessions, _, _ := h.nicks.sessions(dm.ToKey)
		for _, t := range sessions {
			h.deliverTo(t, dmEventFrame(dm, 0, 0))
		}
	}
	return online
}

// amendInbox applies an edit or a delete to the copy in ib of the
// message dm.ID, keeps the event there, and sends it to the sessions of
// the user key but except; it returns the event's seq (0 when the
// message is not there). Safe from any goroutine.
func (h *Hub) amendInbox(ib *inbox, dm broker.DirectMessage, key string, except *Session) uint64 {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	i := ib.hist.byID(dm.ID)
	if i < 0 {
		return 0
	}
	e := &ib.hist[i]
	m, err := decodeMsg(e.frame)
	if err != nil || m.Deleted || m.Account != dm.Account {
		return 0
	}
	if dm.Kind == codec.TypeEdited {
		m.Body, m.Edited = dm.Body, dm.TS
	} else {
		m.Body, m.Deleted = "", true
	}
	frame := codec.MustEncode(&m)
	h.histBytes.Add(int64(cap(frame) - cap(e.frame)))
	e.frame = frame
	ib.seq++
	event := dmEventFrame(dm, ib.seq, e.seq)
	h.keep(&ib.hist, ib.seq, event)
	sessions, _, _ := h.nicks.sessions(key)
	for _, t := range sessions {
		if t != except {
			h.deliverTo(t, event)
		}
	}
	return ib.seq
}

// dmEventFrame encodes the edit or delete of a direct message as the
// inbox that numbers it seq and holds the message as of reads it.
func dmEventFrame(dm broker.DirectMessage, seq, of uint64) []byte {
	if dm.Kind == codec.TypeEdited {
		return codec.MustEncode(&codec.Edited{To: dm.ToNick, ID: dm.ID, Seq: seq, Of: of, From: dm.From, Body: dm.Body, TS: dm.TS})
	}
	return codec.MustEncode(&codec.Deleted{To: dm.ToNick, ID: dm.ID, Seq: seq, Of: of, From: dm.From, TS: dm.TS})
}

// findDM returns the direct message seq of an inbox's history, or
// not_found (an event's seq, a deleted message, one no longer kept).
func (hl histList) findDM(seq uint64) (int, codec.Msg, error) {
	if seq > 0 && len(hl) > 0 {
		if i := hl.from(seq - 1); i < len(hl) && hl[i].seq == seq && bytes.HasPrefix(hl[i].frame[codec.HeaderSize:], msgStart) {
			if m, err := decodeMsg(hl[i].frame); err == nil && !m.Deleted {
				return i, m, nil
			}
		}
	}
	return 0, codec.Msg{}, fmt.Errorf("%w: no direct message %d is kept, or it was deleted", codec.ErrNotFound, seq)
}

// byID is the index of the message with id, newest first; -1 if none.
func (hl histList) byID(id string) int {
	needle := []byte(`"id":"` + id + `"`)
	for i := len(hl) - 1; i >= 0; i-- {
		if bytes.HasPrefix(hl[i].frame[codec.HeaderSize:], msgStart) && bytes.Contains(hl[i].frame, needle) {
			return i
		}
	}
	return -1
}
