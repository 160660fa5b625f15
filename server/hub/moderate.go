package hub

import (
	"fmt"
	"time"
	"unicode/utf8"

	"parley/codec"
	"parley/server/auth"
	"parley/server/broker"
	"parley/server/moderation"
)

// The governance requests, one handler per kind: an action on a target
// account (op, deop, kick, ban, unban, mute, unmute, invite, uninvite),
// a room's topic and privacy, and a page of the audit log. Each is
// checked against the rules (moderation.Room.Check), applied under the
// rules table's lock, written to the store and the audit log there, and
// then told to the room. Loop goroutine of the session.

// target is the account a request acts on.
type target struct {
	account string // identity key (auth.AccountKey); "" for a nick login or a guest
	key     string // its nick's identity key when online here or in the room on another node, else ""
	nick    string // how the room is told of it: its nick, or the account as given
}

// timed are the actions that take a duration.
var timed = map[moderation.Action]bool{moderation.ActBan: true, moderation.ActMute: true, moderation.ActInvite: true}

func (h *Hub) handleModerate(s *Session, req *codec.Request) error {
	if _, err := h.requireRoom(req.Room); err != nil {
		return err
	}
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: %s costs %d frames of the rate limit", codec.ErrRateLimited, req.Type, moderateCost)
	}
	if err := h.moderate(actor(s), req); err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

// moderate takes a's action req.Type on its target in req.Room, and
// tells the room and the other nodes.
func (h *Hub) moderate(a moderation.Actor, req *codec.Request) error {
	act := moderation.Action(req.Type)
	name, err := h.requireRoom(req.Room)
	if err != nil {
		return err
	}
	if err := moderation.CheckText("reason", req.Reason, codec.MaxReason); err != nil {
		return err
	}
	now := time.Now()
	var until int64
	switch {
	case timed[act]:
		if until, err = moderation.ParseDuration(req.Duration, now); err != nil {
			return err
		}
	case req.Duration != nil:
		return fmt.Errorf("%w: duration is for ban, mute and invite", codec.ErrBadRequest)
	}
	r := h.rooms.get(name)
	t, err := h.resolveTarget(req, r)
	if err != nil {
		return err
	}
	if t.key == "" && r != nil {
		t.key, t.nick = r.memberByAccount(t.account, t.nick)
	}
	switch {
	case act == moderation.ActKick && (r == nil || t.key == "" || !r.hasMember(t.key)):
		return fmt.Errorf("%w: %s is not in room %q", codec.ErrNotInRoom, t.nick, name)
	case t.account == "" && act != moderation.ActKick:
		return fmt.Errorf("%w: %s logged in without a token; only kick acts on it (roles and bans are for accounts)", codec.ErrBadRequest, t.nick)
	}
	entry := codec.AuditEntry{Target: t.account, Nick: t.nick, Reason: req.Reason, Until: until}
	if err := h.applyRule(a, name, act, t.account, moderation.Limit{By: a.Nick, Reason: req.Reason, At: now.UnixMilli(), Until: until}, entry); err != nil {
		return err
	}
	h.refreshLimited(name)
	notice := broker.RoomNotice{Room: name, Frame: h.tellRoom(r, &codec.Mod{Room: name, Action: string(act), Nick: t.nick, By: a.Nick, Reason: req.Reason, Until: until})}
	switch act {
	case moderation.ActKick:
		h.eject(name, t, codec.ReasonKick)
		notice.Account, notice.Key, notice.Eject = t.account, t.key, codec.ReasonKick
	case moderation.ActBan:
		h.enforceRoom(name) // the other nodes enforce the rules they receive
	}
	h.broker.Notice(notice)
	return nil
}

// resolveTarget finds the account a request names: by account (a
// token's sub, online or not) or by the nick of a user online here or a
// member of r (nil: not live here) on another node.
func (h *Hub) resolveTarget(req *codec.Request, r *room) (target, error) {
	switch {
	case req.Account != "" && req.Nick != "":
		return target{}, fmt.Errorf("%w: name the target by nick or by account, not both", codec.ErrBadRequest)
	case req.Account != "":
		if len(req.Account) > auth.MaxSubject || !utf8.ValidString(req.Account) {
			return target{}, fmt.Errorf("%w: account is at most %d bytes of UTF-8", codec.ErrBadRequest, auth.MaxSubject)
		}
		if _, bad := codec.BodyControl(req.Account); bad {
			return target{}, fmt.Errorf("%w: account holds a control character", codec.ErrBadRequest)
		}
		return target{account: auth.AccountKey(req.Account), nick: req.Account}, nil
	case req.Nick != "":
		n, err := codec.ParseNick(req.Nick)
		if err != nil {
			return target{}, err
		}
		if sessions, nick, account := h.nicks.sessions(n.Key); len(sessions) > 0 {
			return target{account: account, key: n.Key, nick: nick}, nil
		}
		if u, ok := r.remoteMember(n.Key); ok {
			return target{account: u.Account, key: n.Key, nick: u.Nick}, nil
		}
		return target{}, fmt.Errorf("%w (name an account to act on one that is offline)", codec.NotOnline(codec.ErrNoSuchUser, n.Display))
	}
	return target{}, fmt.Errorf("%w: nick or account is required", codec.ErrBadRequest)
}

// applyRule checks and applies an action on account to the rules of
// the room called name, with l for a ban, mute or invitation, and logs
// it. A kick changes no rule and is only logged.
func (h *Hub) applyRule(a moderation.Actor, name string, act moderation.Action, account string, l moderation.Limit, entry codec.AuditEntry) error {
	var edit func(*moderation.Room) error
	if act != moderation.ActKick {
		edit = func(r *moderation.Room) error { return r.Apply(act, account, l) }
	}
	return h.changeRules(a, name, act, account, edit, entry)
}

// changeRules checks that a may take act (on account, or "") in the room
// called name, then edits its rules (nil: changes none) and logs entry
// with the action, room and actor filled in.
func (h *Hub) changeRules(a moderation.Actor, name string, act moderation.Action, account string, edit func(*moderation.Room) error, entry codec.AuditEntry) error {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	rules := g.rooms[name]
	fresh := rules == nil
	if fresh {
		rules = &moderation.Room{}
	}
	if err := rules.Check(a, act, account); err != nil {
		return err
	}
	if edit != nil {
		if fresh && len(g.rooms) >= maxRuledRooms {
			return fmt.Errorf("%w: the server keeps the rules of %d rooms, its most", codec.ErrTooManyRooms, maxRuledRooms)
		}
		if err := edit(rules); err != nil {
			return err
		}
		g.rooms[name] = rules
		g.noteEnd(rules.NextEnd())
		h.saveRulesLocked(name, rules)
	}
	entry.Action, entry.Room, entry.By, entry.ByAcct = string(act), name, a.Nick, a.Account
	h.logActionLocked(entry)
	return nil
}

// tellRoom sends a notice to every member of r here, the actor included
// (r may be nil: the room is not live here), and returns its frame, for
// the other nodes' members.
func (h *Hub) tellRoom(r *room, m codec.Message) []byte {
	frame := codec.MustEncode(m)
	if r != nil {
		r.mu.Lock()
		r.publishLocked(h, frame, nil)
		r.mu.Unlock()
	}
	return frame
}

// eject takes the sessions of t out of the room called name, each on its
// own loop: each gets left with reason, and the room gets it once, when
// the account's last session there is gone.
func (h *Hub) eject(name string, t target, reason codec.Reason) {
	if t.key == "" {
		return
	}
	sessions, _, _ := h.nicks.sessions(t.key)
	for _, s := range sessions {
		if s.account != t.account || reason == codec.ReasonBan && actor(s).Admin { // admins pass bans
			continue
		}
		h.onLoop(s, func() {
			if r := s.rooms.get(name); r != nil {
				s.send(leftFrame(s.nick, name, reason))
				h.leave(s, r, reason)
			}
		})
	}
}

// onLoop runs fn on the loop of s, unless s is closing by then. Safe
// from any goroutine.
func (h *Hub) onLoop(s *Session, fn func()) {
	l := s.loop
	_ = l.exec.Execute(func() {
		if s.closing || s.closed {
			return
		}
		l.enter()
		defer l.leave()
		fn()
	})
}

// memberByAccount finds the member of r logged in as account, here or on
// another node: its nick key and nick, or "" and nick when none is.
func (r *room) memberByAccount(account, nick string) (string, string) {
	if account == "" {
		return "", nick
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, m := range r.members {
		if m.account == account {
			return key, m.nick
		}
	}
	for key, u := range r.remote {
		if u.Account == account {
			return key, u.Nick
		}
	}
	return "", nick
}

// hasMember reports whether the nick key is a member of r, here or on
// another node.
func (r *room) hasMember(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, remote := r.remote[key]
	return r.members[key] != nil || remote
}

// remoteMember returns the member of r (nil: none) on another node with
// the nick key.
func (r *room) remoteMember(key string) (broker.User, bool) {
	if r == nil {
		return broker.User{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.remote[key]
	return u, ok
}

func (h *Hub) handleTopic(s *Session, req *codec.Request) error {
	if _, err := h.requireRoom(req.Room); err != nil {
		return err
	}
	if req.Topic == nil {
		return fmt.Errorf("%w: topic is required (empty clears it)", codec.ErrBadRequest)
	}
	if err := moderation.CheckText("topic", *req.Topic, codec.MaxTopic); err != nil {
		return err
	}
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: topic costs %d frames of the rate limit", codec.ErrRateLimited, moderateCost)
	}
	if err := h.setTopic(actor(s), req.Room, *req.Topic); err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

// setTopic sets the topic of the room called room as a, and tells the
// room and the other nodes.
func (h *Hub) setTopic(a moderation.Actor, room, topic string) error {
	name, err := h.requireRoom(room)
	if err != nil {
		return err
	}
	if err := moderation.CheckText("topic", topic, codec.MaxTopic); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	if err := h.changeRules(a, name, moderation.ActTopic, "", func(r *moderation.Room) error {
		r.Topic, r.TopicBy, r.TopicAt = topic, a.Nick, now
		return nil
	}, codec.AuditEntry{Reason: topic}); err != nil {
		return err
	}
	frame := h.tellRoom(h.rooms.get(name), &codec.Topic{Room: name, Topic: topic, By: a.Nick, TS: now})
	h.broker.Notice(broker.RoomNotice{Room: name, Frame: frame})
	return nil
}

func (h *Hub) handlePrivate(s *Session, req *codec.Request) error {
	if req.Private == nil {
		return fmt.Errorf("%w: private (true or false) is required", codec.ErrBadRequest)
	}
	if _, err := h.requireRoom(req.Room); err != nil {
		return err
	}
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: private costs %d frames of the rate limit", codec.ErrRateLimited, moderateCost)
	}
	if err := h.setPrivate(actor(s), req.Room, *req.Private); err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

// setPrivate makes the room called room invite-only or open as a, and
// tells the room and the other nodes.
func (h *Hub) setPrivate(a moderation.Actor, room string, private bool) error {
	name, err := h.requireRoom(room)
	if err != nil {
		return err
	}
	act := moderation.ActPublic
	if private {
		act = moderation.ActPrivate
	}
	if err := h.changeRules(a, name, act, "", func(r *moderation.Room) error { return r.Apply(act, "", moderation.Limit{}) }, codec.AuditEntry{}); err != nil {
		return err
	}
	frame := h.tellRoom(h.rooms.get(name), &codec.Mod{Room: name, Action: string(act), By: a.Nick})
	h.broker.Notice(broker.RoomNotice{Room: name, Frame: frame})
	return nil
}

func (h *Hub) handleAudit(s *Session, req *codec.Request) error {
	if !h.charge(s, auditCost) {
		return fmt.Errorf("%w: audit costs %d frames of the rate limit", codec.ErrRateLimited, auditCost)
	}
	limit, err := pageLimit(req.Limit, codec.AuditPage)
	if err != nil {
		return err
	}
	a := actor(s)
	name := ""
	if req.Room != "" {
		if name, err = h.requireRoom(req.Room); err != nil {
			return err
		}
	}
	if err := h.mayAudit(a, name); err != nil {
		return err
	}
	var before uint64
	if req.Before != nil {
		before = *req.Before
	}
	entries, more := h.gov.audit.Page(name, name == "", before, limit)
	s.send(codec.MustEncode(&codec.AuditPageMsg{Room: name, Entries: append([]codec.AuditEntry{}, entries...), More: more, Ref: req.Ref}))
	return nil
}

// mayAudit: a room's operators read its entries; admins read every
// room's, and the whole log when no room is named.
func (h *Hub) mayAudit(a moderation.Actor, name string) error {
	if a.Admin {
		return nil
	}
	if name == "" {
		return fmt.Errorf("%w: only a server admin reads every room's audit log; name a room", codec.ErrForbidden)
	}
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[name]
	if r == nil || a.Account == "" || r.RoleOf(a.Account, false) < moderation.Operator {
		return fmt.Errorf("%w: a room's audit log is for its operators", codec.ErrForbidden)
	}
	return nil
}

// pageLimit reads a page's limit: 1 to max, default min(50, max).
func pageLimit(limit *int, max int) (int, error) {
	if limit == nil {
		return min(defaultHistoryLimit, max), nil
	}
	if *limit < 1 || *limit > max {
		return 0, fmt.Errorf("%w: limit is 1 to %d", codec.ErrBadRequest, max)
	}
	return *limit, nil
}
