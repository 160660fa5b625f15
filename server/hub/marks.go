package hub

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/bytedance/sonic"

	"parley/codec"
	"parley/server/broker"
)

// Read markers (docs/PROTOCOL.md "Read markers"): mark moves an
// account's marker in a room or in its direct messages forward, never
// back; the account's other sessions, here and on other nodes, get the
// new marker; a login gets every marker with the unread messages and
// mentions after it.

// markCost is mark's flood budget, in frames: it writes the store (or
// the cluster's bucket) and tells the account's other sessions.
const markCost = 2

// maxUnreadRead bounds the messages a login counts in one room's
// history (or reads from the cluster's log) after the marker: past it
// the count stops there. A login's counting decodes at most
// codec.MaxMarks times this many messages.
const maxUnreadRead = codec.HistoryPage

// maxFarRooms bounds the rooms a login counts from the cluster's log,
// one read each; the others' markers come without counts.
const maxFarRooms = 32

func (h *Hub) handleMark(s *Session, req *codec.Request) error {
	if s.account == "" {
		return fmt.Errorf("%w: read markers are kept for accounts only (log in with a token)", codec.ErrBadRequest)
	}
	if !h.charge(s, markCost) {
		return fmt.Errorf("%w: too many marks", codec.ErrRateLimited)
	}
	var conv string
	var last uint64
	if req.DM {
		conv = dmConv
		_, last = h.inboxState(s.account)
	} else {
		r, err := h.memberRoom(s, req.Room)
		if err != nil {
			return err
		}
		r.mu.Lock()
		conv, last = roomConv(r.name), max(r.seq, r.issued)
		r.mu.Unlock()
	}
	if req.Seq > last {
		return fmt.Errorf("%w: seq %d is past the last one there (%d)", codec.ErrBadRequest, req.Seq, last)
	}
	seq, moved := h.accts.mark(s.account, conv, req.Seq, h.wallMillis())
	if moved {
		h.tellMark(s.account, conv, seq, s)
	}
	h.ack(s, req.Ref, seq)
	return nil
}

// tellMark sends a marker that moved to the account's sessions here but
// except. Safe from any goroutine.
func (h *Hub) tellMark(account, conv string, seq uint64, except *Session) {
	key, ok := h.accts.lastKey(account)
	if !ok {
		return
	}
	frame := codec.MustEncode(&codec.Marks{Marks: []codec.MarkInfo{markInfo(conv, seq)}})
	sessions, _, _ := h.nicks.sessions(key)
	for _, t := range sessions {
		if t != except && t.account == account {
			h.deliverTo(t, frame)
		}
	}
}

func markInfo(conv string, seq uint64) codec.MarkInfo {
	if conv == dmConv {
		return codec.MarkInfo{DM: true, Seq: seq}
	}
	return codec.MarkInfo{Room: strings.TrimPrefix(conv, "#"), Seq: seq}
}

// AccountChanged applies a record of the account table from another
// node; a marker that moved goes to the account's sessions here.
func (x handler) AccountChanged(data []byte) {
	if rec, moved := x.h.accts.apply(data); moved {
		x.h.tellMark(rec.Account, rec.Conv, rec.Seq, nil)
	}
}

// RestoreAccount gives the hub a record of the account table from its
// store, before Start.
func (h *Hub) RestoreAccount(data []byte) { h.accts.apply(data) }

// sendMarks sends s, just logged in, its account's markers with what is
// unread after each: counted in the histories here, and for a room not
// followed here, in the cluster's log (at most maxUnreadRead). Loop
// goroutine of s.
func (h *Hub) sendMarks(s *Session) {
	marks := h.accts.marksOf(s.account)
	if len(marks) == 0 {
		return // an account that never marked gets no marks frame
	}
	out := &codec.Marks{Marks: make([]codec.MarkInfo, 0, len(marks))}
	var far []string
	for conv, seq := range marks {
		mi := markInfo(conv, seq)
		switch {
		case mi.DM:
			mi.Unread = h.unreadDMs(s, seq)
		default:
			r := h.rooms.get(mi.Room)
			if r == nil && h.brokerLog && len(far) < maxFarRooms {
				far = append(far, conv)
				continue
			}
			if r != nil {
				r.mu.Lock()
				after := r.hist.unreadAfter(seq)
				r.mu.Unlock()
				mi.Unread, mi.Mentions = unreadIn(after, s)
			}
		}
		out.Marks = append(out.Marks, mi)
	}
	if len(far) == 0 {
		sortMarks(out.Marks)
		s.send(codec.MustEncode(out))
		return
	}
	_ = h.call(s, func(done func(func())) {
		h.countFar(s, far, marks, out, done)
	})
}

// countFar counts the unread messages of the rooms in far from the
// cluster's log, one after the other, then sends out.
func (h *Hub) countFar(s *Session, far []string, marks map[string]uint64, out *codec.Marks, done func(func())) {
	if len(far) == 0 {
		done(func() {
			sortMarks(out.Marks)
			s.send(codec.MustEncode(out))
		})
		return
	}
	conv := far[0]
	mi := markInfo(conv, marks[conv])
	h.broker.ReadLog(mi.Room, mi.Seq, maxUnreadRead, func(logged []broker.Logged, err error) {
		if err == nil {
			hl := make(histList, 0, len(logged))
			for _, l := range logged {
				hl = append(hl, histEntry{seq: l.Seq, frame: l.Frame})
			}
			mi.Unread, mi.Mentions = unreadIn(hl, s)
		}
		out.Marks = append(out.Marks, mi)
		h.countFar(s, far[1:], marks, out, done)
	})
}

func sortMarks(m []codec.MarkInfo) {
	sort.Slice(m, func(i, j int) bool { return !m[i].DM && (m[j].DM || m[i].Room < m[j].Room) })
}

// unreadFields are what counting reads of a message.
type unreadFields struct {
	Type     string   `json:"type"`
	From     string   `json:"from"`
	Account  string   `json:"account"`
	Mentions []string `json:"mentions"`
	Deleted  bool     `json:"deleted"`
}

// unreadIn counts the messages of entries from others than s, and those
// of them that mention s's nick.
func unreadIn(entries histList, s *Session) (unread, mentions int) {
	me := s.reactor()
	for _, e := range entries {
		if !bytes.HasPrefix(e.frame[codec.HeaderSize:], msgStart) {
			continue
		}
		var m unreadFields
		if sonic.Unmarshal(e.frame[codec.HeaderSize:], &m) != nil || m.Deleted || reactor(m.Account, m.From) == me {
			continue
		}
		unread++
		for _, n := range m.Mentions {
			if k, err := codec.ParseNick(n); err == nil && k.Key == s.key {
				mentions++
				break
			}
		}
	}
	return unread, mentions
}

// unreadDMs counts the direct messages to s's account after seq.
func (h *Hub) unreadDMs(s *Session, seq uint64) int {
	ib := h.inboxFor(s.account)
	if ib == nil {
		return 0
	}
	ib.mu.Lock()
	after := ib.hist.unreadAfter(seq)
	ib.mu.Unlock()
	n := 0
	for _, e := range after {
		var m unreadFields
		if !bytes.HasPrefix(e.frame[codec.HeaderSize:], msgStart) || sonic.Unmarshal(e.frame[codec.HeaderSize:], &m) != nil || m.Deleted {
			continue // an edit or a delete, or nothing to read
		}
		if k, err := codec.ParseNick(m.From); err != nil || k.Key != s.key {
			n++
		}
	}
	return n
}

// unreadAfter copies the first maxUnreadRead entries after seq, for
// counting once the history's lock is let go: decoding them under it
// would hold up the room's messages. A remembered frame is never changed
// in place (an amendment replaces it), so the copy stays true. Under the
// lock of the history's room or inbox.
func (hl histList) unreadAfter(seq uint64) histList {
	after := hl[hl.from(seq):]
	return append(histList(nil), after[:min(len(after), maxUnreadRead)]...)
}
