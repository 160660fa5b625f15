// Package moderation is the pure logic of rooms people run
// (docs/PROTOCOL.md "Rooms people run"): who holds which role in a room,
// who is banned, muted or invited and until when, and who may do what to
// whom. It keeps no lock and does no I/O: the hub holds a room's rules
// under its own lock, persists them through a Store and writes the audit
// log (audit.go).
package moderation

import (
	"fmt"
	"time"

	"parley/codec"
)

// Role is what an account may do in a room.
type Role int

const (
	Member Role = iota
	Operator
	Owner
	Admin // a server admin (a token's role claim): every power in every room
)

func (r Role) String() string {
	return [...]string{"member", "operator", "owner", "admin"}[r]
}

// Limit is a ban, a mute or an invitation: who gave it, why, and when
// it ends (Unix milliseconds; 0: until lifted).
type Limit struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	At     int64  `json:"at"`
	Until  int64  `json:"until,omitempty"`
}

// holds reports whether the limit is in force at now (Unix ms).
func (l Limit) holds(now int64) bool { return l.Until == 0 || now < l.Until }

// Bounds on what one room's rules hold, so that memory stays bounded
// whatever its operators do.
const (
	MaxOperators = 64
	MaxBans      = 4096
	MaxMutes     = 4096
	MaxInvites   = 4096
)

// Room is one room's rules. Accounts are identity keys (auth.AccountKey).
// The zero value is an open room with no owner.
type Room struct {
	Owner   string           `json:"owner,omitempty"`
	Ops     map[string]bool  `json:"ops,omitempty"`
	Bans    map[string]Limit `json:"bans,omitempty"`
	Mutes   map[string]Limit `json:"mutes,omitempty"`
	Invites map[string]Limit `json:"invites,omitempty"`
	Private bool             `json:"private,omitempty"`
	Topic   string           `json:"topic,omitempty"`
	TopicBy string           `json:"topic_by,omitempty"`
	TopicAt int64            `json:"topic_at,omitempty"`
	// Created: the application created the room (server API room_create);
	// it is known, and keeps its rules, with nobody in it.
	Created bool `json:"created,omitempty"`
}

// Actor is the account asking: "" for a nick login or a guest, which
// hold no role.
type Actor struct {
	Account string
	Nick    string
	Admin   bool
}

// RoleOf is account's role in the room.
func (r *Room) RoleOf(account string, admin bool) Role {
	switch {
	case account == "":
		return Member
	case admin:
		return Admin
	case account == r.Owner:
		return Owner
	case r.Ops[account]:
		return Operator
	}
	return Member
}

// Banned returns the ban on account in force at now, if any.
func (r *Room) Banned(account string, now int64) (Limit, bool) {
	l, ok := r.Bans[account]
	return l, ok && account != "" && l.holds(now)
}

// Muted returns the mute on account in force at now, if any.
func (r *Room) Muted(account string, now int64) (Limit, bool) {
	l, ok := r.Mutes[account]
	return l, ok && account != "" && l.holds(now)
}

// Invited reports whether account holds an invitation in force at now.
func (r *Room) Invited(account string, now int64) bool {
	l, ok := r.Invites[account]
	return ok && account != "" && l.holds(now)
}

// Keep reports whether the rules say anything beyond who created the
// room: a room whose rules are only its owner forgets them when it dies,
// as Ergo forgets an unregistered channel's operators.
func (r *Room) Keep() bool {
	return len(r.Ops) > 0 || len(r.Bans) > 0 || len(r.Mutes) > 0 || len(r.Invites) > 0 || r.Private || r.Topic != "" || r.Created
}

// Expire drops the bans, mutes and invitations that ended by now, and
// reports the bans and mutes it dropped, for the audit log.
func (r *Room) Expire(now int64) (bans, mutes []Ended) {
	expire(r.Invites, now)
	return expire(r.Bans, now), expire(r.Mutes, now)
}

// Ended is a timed limit that ended: whose (an account, an address), and
// the limit.
type Ended struct {
	Key string
	Limit
}

// expire drops the limits of m that ended by now and returns them.
func expire(m map[string]Limit, now int64) (ended []Ended) {
	for k, l := range m {
		if !l.holds(now) {
			delete(m, k)
			ended = append(ended, Ended{k, l})
		}
	}
	return ended
}

// NextEnd is the earliest end of a timed ban, mute or invitation, 0 if
// none is timed.
func (r *Room) NextEnd() int64 {
	var next int64
	for _, m := range []map[string]Limit{r.Bans, r.Mutes, r.Invites} {
		for _, l := range m {
			if l.Until > 0 && (next == 0 || l.Until < next) {
				next = l.Until
			}
		}
	}
	return next
}

// Action is a moderation request's verb, as the protocol names it.
type Action string

const (
	ActOp       Action = codec.TypeOp
	ActDeop     Action = codec.TypeDeop
	ActKick     Action = codec.TypeKick
	ActBan      Action = codec.TypeBan
	ActUnban    Action = codec.TypeUnban
	ActMute     Action = codec.TypeMute
	ActUnmute   Action = codec.TypeUnmute
	ActInvite   Action = codec.TypeInvite
	ActUninvite Action = codec.TypeUninvite
	ActTopic    Action = codec.TypeTopic
	ActPrivate  Action = codec.TypePrivate
	ActPublic   Action = "public"
	// ActOwner gives the room to another account (the server API's
	// room_set): a server admin's.
	ActOwner Action = "owner"
	// ActCreate creates a room before anyone joins it (the server API's
	// room_create): a server admin's.
	ActCreate Action = "create"
	// ActBanEnd and ActMuteEnd are logged when a timed ban or mute ends.
	ActBanEnd  Action = "ban_end"
	ActMuteEnd Action = "mute_end"
	// ActServerBanEnd is logged when a timed server ban ends.
	ActServerBanEnd Action = "server_ban_end"
)

// needs is the role each action asks of its actor.
var needs = map[Action]Role{
	ActOp: Owner, ActDeop: Owner,
	ActKick: Operator, ActBan: Operator, ActUnban: Operator, ActMute: Operator, ActUnmute: Operator,
	ActInvite: Operator, ActUninvite: Operator, ActTopic: Operator, ActPrivate: Operator, ActPublic: Operator,
	ActOwner: Admin, ActCreate: Admin,
}

// onTarget are the actions that act on a member, who must rank below
// the actor: an operator cannot act on the owner or another operator, and
// the owner cannot ban, kick or mute itself; an admin can act on anyone.
var onTarget = map[Action]bool{ActKick: true, ActBan: true, ActMute: true, ActDeop: true, ActOp: true}

// Check decides whether a may do act to target (an account; "" for the
// actions without one) in the room. Errors are codec's: forbidden.
func (r *Room) Check(a Actor, act Action, target string) error {
	if a.Account == "" {
		return fmt.Errorf("%w: only accounts (logins with a token) hold roles in rooms", codec.ErrForbidden)
	}
	role := r.RoleOf(a.Account, a.Admin)
	if need := needs[act]; role < need {
		if r.Owner == "" && !a.Admin {
			return fmt.Errorf("%w: the room has no owner; only a server admin can %s here", codec.ErrForbidden, act)
		}
		return fmt.Errorf("%w: %s needs the room's %s, you are %s", codec.ErrForbidden, act, need, roleName(role))
	}
	if onTarget[act] && role != Admin {
		if t := r.RoleOf(target, false); t >= role {
			return fmt.Errorf("%w: the target is the room's %s", codec.ErrForbidden, t)
		}
	}
	return nil
}

func roleName(r Role) string {
	if r == Member {
		return "a member"
	}
	return "its " + r.String()
}

// ParseDuration checks a ban's or mute's duration in seconds: nil is
// until lifted; otherwise 1 s to codec.MaxDuration. It returns the end,
// Unix milliseconds from now.
func ParseDuration(d *int64, now time.Time) (int64, error) {
	switch {
	case d == nil:
		return 0, nil
	case *d <= 0:
		return 0, fmt.Errorf("%w: duration is in seconds, at least 1 (leave it out for no end)", codec.ErrBadRequest)
	case *d > codec.MaxDuration:
		return 0, fmt.Errorf("%w: duration is at most %d seconds (366 days)", codec.ErrBadRequest, codec.MaxDuration)
	}
	return now.Add(time.Duration(*d) * time.Second).UnixMilli(), nil
}

// CheckText checks a reason or a topic: at most max bytes, and no
// control character but tab (a topic is one line).
func CheckText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is over %d bytes", codec.ErrBadRequest, what, max)
	}
	if _, bad := codec.BodyControl(s); bad || containsNewline(s) {
		return fmt.Errorf("%w: %s holds a control character", codec.ErrBadRequest, what)
	}
	return nil
}

func containsNewline(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return true
		}
	}
	return false
}

// Apply changes the rules for an action the actor may take (Check said
// so), with limit for a ban, mute or invitation. It reports the change's
// error for a list that is full.
func (r *Room) Apply(act Action, target string, l Limit) error {
	switch act {
	case ActOp:
		if len(r.Ops) >= MaxOperators && !r.Ops[target] {
			return fmt.Errorf("%w: a room has at most %d operators", codec.ErrBadRequest, MaxOperators)
		}
		r.Ops = setFlag(r.Ops, target)
	case ActDeop:
		delete(r.Ops, target)
	case ActBan:
		return put(&r.Bans, target, l, MaxBans, "bans")
	case ActUnban:
		delete(r.Bans, target)
	case ActMute:
		return put(&r.Mutes, target, l, MaxMutes, "mutes")
	case ActUnmute:
		delete(r.Mutes, target)
	case ActInvite:
		return put(&r.Invites, target, l, MaxInvites, "invitations")
	case ActUninvite:
		delete(r.Invites, target)
	case ActOwner:
		r.Owner = target
		delete(r.Ops, target)
	case ActCreate:
		r.Created = true
	case ActPrivate:
		r.Private = true
	case ActPublic:
		r.Private = false
	}
	return nil
}

func setFlag(m map[string]bool, k string) map[string]bool {
	if m == nil {
		m = make(map[string]bool)
	}
	m[k] = true
	return m
}

func put(m *map[string]Limit, k string, l Limit, max int, what string) error {
	if *m == nil {
		*m = make(map[string]Limit)
	}
	if _, ok := (*m)[k]; !ok && len(*m) >= max {
		return fmt.Errorf("%w: a room keeps at most %d %s", codec.ErrBadRequest, max, what)
	}
	(*m)[k] = l
	return nil
}
