package hub

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
	"parley/server/auth"
	"parley/server/moderation"
)

// Rooms people run (docs/PROTOCOL.md "Rooms people run"): each room's
// rules (owner, operators, bans, mutes, invitations, privacy, topic) in
// one table beside the rooms, because they outlive a room's members; the
// checks on join, say and who; the moderation requests, one handler per
// kind (moderate.go); and the audit log.

// RulesStore keeps the rooms' rules and the audit log beyond the process,
// and orders the log: a single node's --data-dir (parley/server/store),
// or a cluster's broker (parley/server/natsbroker), which shares both
// with the other nodes and hands them back through broker.Handler. Its
// methods are called under the rules table's lock: they must not block.
type RulesStore interface {
	// SaveRules replaces the rules under key (a room's name, or
	// serverRulesKey) with data (moderation.Room or moderation.Server as
	// JSON), or forgets them when data is nil.
	SaveRules(key string, data []byte)
	// AppendAudit adds an action to the audit log: numbered and appended
	// to log at once (log.Append) and kept, or, in a cluster, handed back
	// numbered in the cluster's order (broker.Handler.Audited).
	AppendAudit(e codec.AuditEntry, log *moderation.AuditLog)
}

// MemoryRules is the RulesStore of a hub without a store: the rules and
// the audit log live in the hub's memory only.
type MemoryRules struct{}

// SaveRules keeps nothing: the hub's table is all there is.
func (MemoryRules) SaveRules(string, []byte) {}

// AppendAudit appends e to log.
func (MemoryRules) AppendAudit(e codec.AuditEntry, log *moderation.AuditLog) { log.Append(e) }

// Flood budget, in frames, of the governance requests: each writes the
// rules, the audit log and the store, and tells a room.
const (
	moderateCost = 10
	auditCost    = 10
)

// maxRuledRooms bounds the rooms whose rules the server keeps. A room
// past it is created without an owner, and only an admin can give it
// rules; rules of a room that say only who created it go with the room.
const maxRuledRooms = 1 << 16

// governance is every room's rules and the audit log. Safe from any
// goroutine; its lock is taken after a room's or the room table's, and
// nothing else is locked while it is held.
type governance struct {
	mu    sync.Mutex
	rooms map[string]*moderation.Room // by room display name; absent: an open room with no owner
	audit *moderation.AuditLog
	// ends is the earliest end of a timed ban, mute or invitation in any
	// room, Unix ms; 0 when none is timed. Tick sweeps once it passes.
	ends int64
	list roomList

	server moderation.Server              // the server-wide rules (serverban.go)
	nets   atomic.Pointer[[]netip.Prefix] // the banned networks in force, for admission
}

func newGovernance(auditLen int) *governance {
	return &governance{rooms: make(map[string]*moderation.Room), audit: moderation.NewAuditLog(auditLen, nil)}
}

// RestoreRules gives the hub the rules kept under key (a room's name, or
// the server-wide rules' key) in its store, before Start; nil data: none.
func (h *Hub) RestoreRules(key string, data []byte) error {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	var err error
	if key == serverRulesKey {
		err = h.restoreServerLocked(data)
	} else {
		err = h.restoreRoomLocked(key, data)
	}
	if err != nil {
		return fmt.Errorf("the rules under %q: %w", key, err)
	}
	return nil
}

// RestoreAudit gives the hub the audit entries its store kept, oldest
// first, before Start.
func (h *Hub) RestoreAudit(entries []codec.AuditEntry) {
	h.gov.audit = moderation.NewAuditLog(h.cfg.AuditLen, entries)
}

// AuditPage returns the newest limit audit entries before seq before
// (0: the newest), of room, or of every room when room is "". Safe from
// any goroutine: the admin port's view.
func (h *Hub) AuditPage(room string, before uint64, limit int) ([]codec.AuditEntry, bool) {
	return h.gov.audit.Page(room, room == "", before, limit)
}

func (g *governance) noteEnd(end int64) {
	if end > 0 && (g.ends == 0 || end < g.ends) {
		g.ends = end
	}
}

// saveLocked writes room's rules to the store, or forgets them when
// they hold nothing. g.mu held.
func (h *Hub) saveRulesLocked(room string, r *moderation.Room) {
	if r.Owner == "" && !r.Keep() {
		delete(h.gov.rooms, room)
		h.cfg.Rules.SaveRules(room, nil)
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		panic(err) // a struct of strings, maps and numbers always encodes
	}
	h.cfg.Rules.SaveRules(room, data)
}

// logAction appends an action to the audit log and the store, and counts
// it. g.mu held.
func (h *Hub) logActionLocked(e codec.AuditEntry) {
	e.TS = time.Now().UnixMilli()
	if st := h.broker.Stats(); st != nil {
		e.Node = st.Node
	}
	h.cfg.Rules.AppendAudit(e, h.gov.audit)
	h.count.moderation.add(e.Action)
	h.auditEvent(e)
}

// actor is s as the rules see it.
func actor(s *Session) moderation.Actor {
	return moderation.Actor{Account: s.account, Nick: s.nick, Admin: s.ident != nil && s.ident.Role == auth.RoleAdmin}
}

// claimRoom makes s's account the owner of the room called name, which
// s is creating (no member anywhere, no message), unless the room has
// rules already or s has no account. Loop goroutine of s, the room's
// lock held.
func (h *Hub) claimRoom(s *Session, name string) {
	if s.account == "" || name == codec.Lobby {
		return
	}
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rooms[name] != nil {
		return
	}
	if len(g.rooms) >= maxRuledRooms {
		h.warn.warn("max-ruled-rooms", "a new room was created without an owner: the server keeps the rules of its most rooms", "max", maxRuledRooms)
		return
	}
	r := &moderation.Room{Owner: s.account}
	g.rooms[name] = r
	h.saveRulesLocked(name, r)
}

// roomDied forgets the rules of a room that died if they say nothing but
// who created it and the room left nothing behind: the next to join
// creates it anew and owns it. A room whose broker keeps its log, or
// with members on other nodes, lives on elsewhere, and keeps its owner.
// r.mu held.
func (h *Hub) roomDied(r *room) {
	if h.brokerLog || len(r.remote) > 0 {
		return
	}
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if rules := g.rooms[r.name]; rules != nil && !rules.Keep() {
		delete(g.rooms, r.name)
		h.cfg.Rules.SaveRules(r.name, nil)
	}
}

// mayEnter checks a join of name by s against the room's bans and
// privacy. A server admin passes both; a private room lets in its
// operators, the accounts it invited and those whose token's rooms claim
// names it. Loop goroutine of s.
func (h *Hub) mayEnter(s *Session, name string) error {
	a := actor(s)
	now := time.Now().UnixMilli()
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[name]
	if r == nil || a.Admin {
		return nil
	}
	if l, banned := r.Banned(a.Account, now); banned {
		return fmt.Errorf("%w: %s", codec.ErrBanned, describeLimit(name, l))
	}
	if r.Private && r.RoleOf(a.Account, false) < moderation.Operator && !r.Invited(a.Account, now) && !claims(s, name) {
		return fmt.Errorf("%w: %q is invite-only", codec.ErrInviteOnly, name)
	}
	return nil
}

// claims reports whether s's token's rooms claim names the room.
func claims(s *Session, name string) bool {
	if s.ident == nil {
		return false
	}
	for _, c := range s.ident.Rooms {
		if n, err := codec.ParseRoom(c); err == nil && n.Display == name {
			return true
		}
	}
	return false
}

// maySay checks a say in r by s against the room's mutes and bans. It
// costs nothing for a room without rules (the flag on the room). Loop
// goroutine of s.
func (h *Hub) maySay(s *Session, r *room) error {
	if !r.limited.Load() || s.account == "" {
		return nil
	}
	a := actor(s)
	if a.Admin {
		return nil
	}
	now := time.Now().UnixMilli()
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	rules := g.rooms[r.name]
	if rules == nil {
		return nil
	}
	if l, banned := rules.Banned(a.Account, now); banned {
		return fmt.Errorf("%w: %s", codec.ErrBanned, describeLimit(r.name, l))
	}
	if l, muted := rules.Muted(a.Account, now); muted {
		return fmt.Errorf("%w: %s", codec.ErrMuted, describeLimit(r.name, l))
	}
	return nil
}

// describeLimit words a ban or a mute for its error: where ("" for the
// whole server), by whom, until when and why.
func describeLimit(room string, l moderation.Limit) string {
	where := "from this server"
	if room != "" {
		where = fmt.Sprintf("in %q", room)
	}
	s := where + " by " + l.By
	if l.Until > 0 {
		s += " until " + time.UnixMilli(l.Until).UTC().Format(time.RFC3339)
	}
	if l.Reason != "" {
		s += ": " + l.Reason
	}
	return s
}

// hiddenFrom reports whether the room called name is private and s may
// not see inside it: not a member here, not its operator, not an admin.
// Such a room answers who as a room that does not exist. Loop goroutine
// of s.
func (h *Hub) hiddenFrom(s *Session, name string) bool {
	if s.rooms.get(name) != nil {
		return false
	}
	a := actor(s)
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[name]
	return r != nil && r.Private && r.RoleOf(a.Account, a.Admin) < moderation.Operator
}

// rolesOf maps the nicks of page that are the room's owner or operators
// to their role; nil when none is.
func (h *Hub) rolesOf(room string, page []nickEntry) map[string]string {
	if room == "" {
		return nil
	}
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[room]
	if r == nil {
		return nil
	}
	var out map[string]string
	for _, e := range page {
		if role := r.RoleOf(e.account, false); role > moderation.Member {
			if out == nil {
				out = make(map[string]string)
			}
			out[e.nick] = role.String()
		}
	}
	return out
}

// topicOf returns the room's topic frame, nil when it has none.
func (h *Hub) topicOf(name string) []byte {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[name]
	if r == nil || r.Topic == "" {
		return nil
	}
	return codec.MustEncode(&codec.Topic{Room: name, Topic: r.Topic, By: r.TopicBy, TS: r.TopicAt})
}

// refreshLimited sets the flag of the room called name, if it is live
// here, that says a say must check its rules. Called after every change
// of the room's rules, with no lock held: the flag is set under the
// room's lock and then the table's, the order of every path that takes
// both, so the last refresh sees the last change.
func (h *Hub) refreshLimited(name string) {
	if r := h.rooms.get(name); r != nil {
		r.mu.Lock()
		h.refreshLimitedLocked(r)
		r.mu.Unlock()
	}
}

// refreshLimitedLocked: r.mu held.
func (h *Hub) refreshLimitedLocked(r *room) {
	g := h.gov
	g.mu.Lock()
	rules := g.rooms[r.name]
	r.limited.Store(rules != nil && (len(rules.Bans) > 0 || len(rules.Mutes) > 0))
	g.mu.Unlock()
}

// logEndsLocked logs the end of each timed limit, with the end it had:
// every node of a cluster logs it, and the cluster keeps it once
// (natsbroker's AppendAudit). g.mu held.
func (h *Hub) logEndsLocked(act moderation.Action, room string, ended []moderation.Ended) {
	for _, e := range ended {
		h.logActionLocked(codec.AuditEntry{Action: string(act), Room: room, By: "server", Target: e.Key, Until: e.Until})
	}
}

// expireLimits ends the bans, mutes and invitations whose time is up,
// once the earliest end has passed, logging each ban's and mute's end.
// Ticker goroutine.
func (h *Hub) expireLimits(now time.Time) {
	ms := now.UnixMilli()
	g := h.gov
	var changed []string
	defer func() {
		for _, name := range changed {
			h.refreshLimited(name)
		}
	}()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ends == 0 || ms < g.ends {
		return
	}
	g.ends = 0
	for name, r := range g.rooms {
		bans, mutes := r.Expire(ms)
		h.logEndsLocked(moderation.ActBanEnd, name, bans)
		h.logEndsLocked(moderation.ActMuteEnd, name, mutes)
		if len(bans)+len(mutes) > 0 {
			h.saveRulesLocked(name, r)
			changed = append(changed, name)
		}
		g.noteEnd(r.NextEnd())
	}
	accounts, nets := g.server.Expire(ms)
	h.logEndsLocked(moderation.ActServerBanEnd, "", accounts)
	h.logEndsLocked(moderation.ActServerBanEnd, "", nets)
	if len(accounts)+len(nets) > 0 {
		h.saveServerLocked()
	}
	g.noteEnd(g.server.NextEnd())
}
