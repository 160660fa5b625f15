package hub

import (
	"encoding/json"
	"time"

	"parley/codec"
	"parley/server/broker"
	"parley/server/moderation"
)

// Enforcing the rules on the sessions here, whichever node changed them:
// after a change made here, and after one another node made (a cluster's
// broker hands it over with RulesChanged and Noticed). Each check reads
// the rules as they are now, so a change that arrives twice, or late,
// does what it did once.

// enforceRoom takes the members of the room called name whose account the
// room now bans out of it, each with left ban.
func (h *Hub) enforceRoom(name string) {
	r := h.rooms.get(name)
	if r == nil {
		return
	}
	now := time.Now().UnixMilli()
	var out []target
	r.mu.Lock()
	h.gov.mu.Lock()
	if rules := h.gov.rooms[name]; rules != nil && len(rules.Bans) > 0 {
		for key, m := range r.members {
			if _, banned := rules.Banned(m.account, now); banned {
				out = append(out, target{account: m.account, key: key, nick: m.nick})
			}
		}
	}
	h.gov.mu.Unlock()
	r.mu.Unlock()
	for _, t := range out {
		h.eject(name, t, codec.ReasonBan)
	}
}

// enforceServer ends the sessions here that the server-wide rules now
// refuse: a banned account or address (bye banned), a revoked token (bye
// token_revoked). It reads a copy of the rules, so that the sessions'
// loops never take the table's lock.
func (h *Hub) enforceServer() {
	h.gov.mu.Lock()
	sv := h.gov.server.Copy()
	h.gov.mu.Unlock()
	now := time.Now().UnixMilli()
	h.endSessions(func(s *Session) codec.Reason {
		addr, _ := remoteAddr(s.remote)
		if s.ident == nil {
			return sv.Refuses(s.account, "", time.Time{}, addr, now)
		}
		return sv.Refuses(s.account, s.ident.ID, s.ident.Issued, addr, now)
	})
}

// RulesChanged applies rules another node wrote (or this one, as the
// cluster echoes them), and enforces them here.
func (x handler) RulesChanged(key string, data []byte) {
	h := x.h
	if err := h.RestoreRules(key, data); err != nil {
		h.warn.warn("bad-rules", "rules from the cluster could not be read; kept the ones before", "key", key, "err", err)
		return
	}
	if key == serverRulesKey {
		h.enforceServer()
		return
	}
	h.refreshLimited(key)
	h.enforceRoom(key)
}

// Audited keeps an entry of the cluster's audit log, in its order.
func (x handler) Audited(e codec.AuditEntry) { x.h.gov.audit.Add(e) }

// Noticed gives the members here what another node told of a room (a
// droppable frame only to those with nothing unsent), and takes the
// sessions a kick removes out of the room.
func (x handler) Noticed(m broker.RoomNotice) {
	h := x.h
	if m.Room == "" && m.Eject == codec.ReasonDisconnected {
		h.endAccount(m.Account, m.Frame) // the server API's disconnect
		return
	}
	r := h.rooms.get(m.Room)
	if r == nil {
		return
	}
	if m.Frame != nil {
		r.mu.Lock()
		if m.Droppable {
			r.publishDroppableLocked(h, m.Frame, nil)
		} else {
			r.publishLocked(h, m.Frame, nil)
		}
		r.mu.Unlock()
	}
	if m.Eject != "" {
		t := target{account: m.Account, key: m.Key}
		if t.key == "" {
			t.key, t.nick = r.memberByAccount(t.account, "")
		}
		h.eject(m.Room, t, m.Eject)
	}
}

// LocalRoomCounts lists the rooms with members here and how many, for
// the cluster's room list.
func (x handler) LocalRoomCounts() []broker.RoomCount {
	var live []*room
	x.h.rooms.each(func(m map[string]*room) {
		for _, r := range m {
			live = append(live, r)
		}
	})
	out := make([]broker.RoomCount, 0, len(live))
	for _, r := range live {
		r.mu.Lock()
		n := len(r.members)
		r.mu.Unlock()
		if n > 0 {
			out = append(out, broker.RoomCount{Room: r.name, Count: n})
		}
	}
	return out
}

// restoreRoomLocked replaces a room's rules with data (nil: none). g.mu
// held.
func (h *Hub) restoreRoomLocked(name string, data []byte) error {
	if data == nil {
		delete(h.gov.rooms, name)
		return nil
	}
	var r moderation.Room
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	h.gov.rooms[name] = &r
	h.gov.noteEnd(r.NextEnd())
	return nil
}
