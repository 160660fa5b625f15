package hub

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unicode/utf8"

	"parley/codec"
	"parley/server/auth"
	"parley/server/moderation"
)

// Server-wide moderation (docs/PROTOCOL.md "Server-wide moderation"):
// admins ban accounts and addresses, revoke tokens and lock the server
// down, through the protocol or the admin port (AdminActor). The rules
// are the governance table's; the banned networks are also published as
// an immutable snapshot, which admission reads without a lock.

// serverRulesKey names the server-wide rules in the RulesStore: '*'
// breaks the naming rule, so no room is called so.
const serverRulesKey = "*server"

// AdminActor is the admin port's operator, an admin without an account.
var AdminActor = moderation.Actor{Nick: "admin-port", Admin: true}

// restoreServerLocked reads the server-wide rules a store kept. g.mu
// held.
func (h *Hub) restoreServerLocked(data []byte) error {
	var sv moderation.Server
	if data != nil {
		if err := json.Unmarshal(data, &sv); err != nil {
			return err
		}
	}
	h.gov.server = sv
	h.gov.noteEnd(sv.NextEnd())
	h.publishNetsLocked(time.Now().UnixMilli())
	return nil
}

// saveServerLocked writes the server-wide rules and republishes the
// banned networks. g.mu held.
func (h *Hub) saveServerLocked() {
	data, err := json.Marshal(&h.gov.server)
	if err != nil {
		panic(err) // maps of strings and numbers always encode
	}
	h.cfg.Rules.SaveRules(serverRulesKey, data)
	h.publishNetsLocked(time.Now().UnixMilli())
}

func (h *Hub) publishNetsLocked(now int64) {
	nets := h.gov.server.NetsAt(now)
	h.gov.nets.Store(&nets)
}

// AddressBanned reports whether an admin banned the address of remote
// (host:port, or a host) from the server. Safe from any goroutine; it
// takes no lock, and costs nothing while no address is banned.
func (h *Hub) AddressBanned(remote string) bool {
	nets := h.gov.nets.Load()
	if nets == nil || len(*nets) == 0 {
		return false
	}
	addr, ok := remoteAddr(remote)
	if !ok {
		return false
	}
	for _, p := range *nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func remoteAddr(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// mayLogin checks a login, its token verified (s.account and s.ident set
// for one), against the lockdown, the server's account bans and the
// revoked tokens. Loop goroutine of s.
func (h *Hub) mayLogin(s *Session) error {
	a := actor(s)
	g := h.gov
	g.mu.Lock()
	lock := g.server.Lockdown
	g.mu.Unlock()
	if lock.Refuses(a.Account, a.Admin) {
		what := "accounts' (logins with a token)"
		if lock == moderation.LockAdmins {
			what = "admins'"
		}
		return fmt.Errorf("%w: the server is locked down: it takes %s logins only", codec.ErrForbidden, what)
	}
	if s.account == "" {
		return nil
	}
	return h.mayHold(s.account, s.ident)
}

// mayHold checks an account's token, at login or refresh, against the
// server's bans and revocations.
func (h *Hub) mayHold(account string, id *auth.Identity) error {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, banned := g.server.AccountBan(account, time.Now().UnixMilli()); banned {
		return fmt.Errorf("%w: %s", codec.ErrBanned, describeLimit("", l))
	}
	if g.server.TokenRevoked(account, id.ID, id.Issued) {
		return fmt.Errorf("%w: the token was revoked", codec.ErrBadToken)
	}
	return nil
}

// BanFromServer bans an account or an address or network (exactly one)
// from the server, for duration seconds (nil: until lifted): the
// matching sessions end with bye banned, and new logins of the account
// and connections from the address are refused. Safe from any goroutine.
func (h *Hub) BanFromServer(by moderation.Actor, account, address string, duration *int64, reason string) error {
	if !by.Admin {
		return fmt.Errorf("%w: server bans are for admins", codec.ErrForbidden)
	}
	if err := moderation.CheckText("reason", reason, codec.MaxReason); err != nil {
		return err
	}
	now := time.Now()
	until, err := moderation.ParseDuration(duration, now)
	if err != nil {
		return err
	}
	key, prefix, err := banTarget(account, address)
	if err != nil {
		return err
	}
	l := moderation.Limit{By: by.Nick, Reason: reason, At: now.UnixMilli(), Until: until}
	err = h.changeServer(by, codec.TypeServerBan, codec.AuditEntry{Target: key + address, Reason: reason, Until: until}, func(sv *moderation.Server) error {
		if account != "" {
			return sv.BanAccount(key, l)
		}
		return sv.BanNet(prefix, l)
	})
	if err != nil {
		return err
	}
	h.enforceServer()
	return nil
}

// UnbanFromServer lifts a server ban of an account or an address or
// network, named as it was banned. Safe from any goroutine.
func (h *Hub) UnbanFromServer(by moderation.Actor, account, address string) error {
	if !by.Admin {
		return fmt.Errorf("%w: server bans are for admins", codec.ErrForbidden)
	}
	key, prefix, err := banTarget(account, address)
	if err != nil {
		return err
	}
	return h.changeServer(by, codec.TypeServerUnban, codec.AuditEntry{Target: key + address}, func(sv *moderation.Server) error {
		if account != "" {
			delete(sv.Accounts, key)
		} else {
			delete(sv.Nets, prefix.String())
		}
		return nil
	})
}

// banTarget checks a server ban's target: an account (its key) or an
// address or network, exactly one.
func banTarget(account, address string) (string, netip.Prefix, error) {
	switch {
	case (account == "") == (address == ""):
		return "", netip.Prefix{}, fmt.Errorf("%w: name an account or an address, one of them", codec.ErrBadRequest)
	case address != "":
		p, err := moderation.ParseNet(address)
		return "", p, err
	case len(account) > auth.MaxSubject || !utf8.ValidString(account):
		return "", netip.Prefix{}, fmt.Errorf("%w: account is at most %d bytes of UTF-8", codec.ErrBadRequest, auth.MaxSubject)
	}
	if _, bad := codec.BodyControl(account); bad {
		return "", netip.Prefix{}, fmt.Errorf("%w: account holds a control character", codec.ErrBadRequest)
	}
	return auth.AccountKey(account), netip.Prefix{}, nil
}

// RevokeTokens refuses an account's tokens issued before before (the
// zero time: now), or the one token whose id is jti; the sessions
// holding one end with bye token_revoked. Safe from any goroutine.
func (h *Hub) RevokeTokens(by moderation.Actor, account string, before time.Time, jti string) error {
	if !by.Admin {
		return fmt.Errorf("%w: revoking tokens is for admins", codec.ErrForbidden)
	}
	now := time.Now()
	if before.IsZero() {
		before = now
	}
	key := ""
	switch {
	case (account == "") == (jti == ""):
		return fmt.Errorf("%w: name an account or a token's jti, one of them", codec.ErrBadRequest)
	case len(jti) > auth.MaxSubject:
		return fmt.Errorf("%w: jti is at most %d bytes", codec.ErrBadRequest, auth.MaxSubject)
	case account != "":
		var err error
		if key, _, err = banTarget(account, ""); err != nil {
			return err
		}
	}
	err := h.changeServer(by, codec.TypeRevoke, codec.AuditEntry{Target: key + jti}, func(sv *moderation.Server) error {
		return sv.Revoke(key, before, jti, now)
	})
	if err != nil {
		return err
	}
	h.enforceServer()
	return nil
}

// SetLockdown sets which new logins the server takes. Safe from any
// goroutine.
func (h *Hub) SetLockdown(by moderation.Actor, level string) error {
	if !by.Admin {
		return fmt.Errorf("%w: lockdown is for admins", codec.ErrForbidden)
	}
	l, err := moderation.ParseLockdown(level)
	if err != nil {
		return err
	}
	return h.changeServer(by, codec.TypeLockdown, codec.AuditEntry{Reason: string(l)}, func(sv *moderation.Server) error {
		sv.Lockdown = l
		return nil
	})
}

// ServerBans returns the server bans in force and the lockdown level.
// Safe from any goroutine.
func (h *Hub) ServerBans() ([]codec.BanInfo, moderation.Lockdown) {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.server.Bans(time.Now().UnixMilli()), cmpLockdown(g.server.Lockdown)
}

func cmpLockdown(l moderation.Lockdown) moderation.Lockdown {
	if l == "" {
		return moderation.LockOff
	}
	return l
}

// changeServer edits the server-wide rules, saves them and logs entry as
// act by by.
func (h *Hub) changeServer(by moderation.Actor, act string, entry codec.AuditEntry, edit func(*moderation.Server) error) error {
	g := h.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := edit(&g.server); err != nil {
		return err
	}
	g.noteEnd(g.server.NextEnd())
	h.saveServerLocked()
	entry.Action, entry.By, entry.ByAcct = act, by.Nick, by.Account
	h.logActionLocked(entry)
	return nil
}

// endSessions closes every session for which why gives a reason, with
// bye that reason, each on its loop. Safe from any goroutine.
func (h *Hub) endSessions(why func(*Session) codec.Reason) {
	for _, l := range h.boundLoops() {
		_ = l.exec.Execute(func() {
			l.enter()
			defer l.leave()
			for _, s := range l.sessions {
				if s.closing || s.closed {
					continue
				}
				if reason := why(s); reason != "" {
					h.closeSession(s, reason)
				}
			}
		})
	}
}

// The protocol's server-wide requests, for sessions of admins.

func (h *Hub) handleServerBan(s *Session, req *codec.Request) error {
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: %s costs %d frames of the rate limit", codec.ErrRateLimited, req.Type, moderateCost)
	}
	var err error
	if req.Type == codec.TypeServerBan {
		err = h.BanFromServer(actor(s), req.Account, req.Address, req.Duration, req.Reason)
	} else {
		err = h.UnbanFromServer(actor(s), req.Account, req.Address)
	}
	if err == nil {
		h.ack(s, req.Ref, 0)
	}
	return err
}

func (h *Hub) handleServerBans(s *Session, req *codec.Request) error {
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: %s costs %d frames of the rate limit", codec.ErrRateLimited, req.Type, moderateCost)
	}
	if !actor(s).Admin {
		return fmt.Errorf("%w: the server bans are for admins", codec.ErrForbidden)
	}
	limit, err := pageLimit(req.Limit, codec.BansPage)
	if err != nil {
		return err
	}
	if req.Offset < 0 {
		return fmt.Errorf("%w: offset is 0 or more", codec.ErrBadRequest)
	}
	bans, lock := h.ServerBans()
	from := min(req.Offset, len(bans))
	to := min(from+limit, len(bans))
	s.send(codec.MustEncode(&codec.BanList{Lockdown: string(lock), Total: len(bans), Bans: append([]codec.BanInfo{}, bans[from:to]...), More: to < len(bans), Ref: req.Ref}))
	return nil
}

func (h *Hub) handleRevoke(s *Session, req *codec.Request) error {
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: %s costs %d frames of the rate limit", codec.ErrRateLimited, req.Type, moderateCost)
	}
	var before time.Time
	if req.IssuedBefore > 0 {
		before = time.UnixMilli(req.IssuedBefore)
	}
	if err := h.RevokeTokens(actor(s), req.Account, before, req.JTI); err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

func (h *Hub) handleLockdown(s *Session, req *codec.Request) error {
	if !h.charge(s, moderateCost) {
		return fmt.Errorf("%w: %s costs %d frames of the rate limit", codec.ErrRateLimited, req.Type, moderateCost)
	}
	if err := h.SetLockdown(actor(s), req.Level); err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}
