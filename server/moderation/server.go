package moderation

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"time"

	"parley/codec"
)

// Server-wide rules, for admins (docs/PROTOCOL.md "Server-wide
// moderation"): bans of accounts and of addresses or networks, revoked
// tokens, and the lockdown switch.

// Lockdown says which new logins the server takes.
type Lockdown string

const (
	// LockOff: every login the server's --auth allows.
	LockOff Lockdown = "off"
	// LockAccounts: logins with a token only; guests and nick logins are
	// refused.
	LockAccounts Lockdown = "accounts"
	// LockAdmins: admins' logins only.
	LockAdmins Lockdown = "admins"
)

// ParseLockdown reads off, accounts or admins.
func ParseLockdown(s string) (Lockdown, error) {
	switch l := Lockdown(s); l {
	case LockOff, LockAccounts, LockAdmins:
		return l, nil
	}
	return "", fmt.Errorf("%w: level is off, accounts or admins", codec.ErrBadRequest)
}

// Refuses reports whether the lockdown refuses a new login of account
// ("" for a guest or a nick login), an admin or not.
func (l Lockdown) Refuses(account string, admin bool) bool {
	switch l {
	case LockAccounts:
		return account == ""
	case LockAdmins:
		return !admin
	}
	return false
}

// Bounds on the server-wide lists.
const (
	MaxAccountBans = 1 << 16
	MaxNetBans     = 4096
	MaxRevocations = 1 << 16
	// RevokedIDLife is how long a token revoked by its id (jti) stays
	// refused: tokens are short-lived, and the list must stay bounded. A
	// token that lives longer is revoked with its account instead.
	RevokedIDLife = 30 * 24 * time.Hour
)

// Server is the server-wide rules. The zero value bans nothing.
type Server struct {
	Accounts map[string]Limit `json:"accounts,omitempty"` // banned accounts
	Nets     map[string]Limit `json:"nets,omitempty"`     // banned addresses and networks, by prefix (netip.Prefix.String)
	// Revoked refuses an account's tokens issued before a time (Unix
	// ms); IDs refuses single tokens by jti until a time (Unix ms).
	Revoked  map[string]int64 `json:"revoked,omitempty"`
	IDs      map[string]int64 `json:"ids,omitempty"`
	Lockdown Lockdown         `json:"lockdown,omitempty"`
}

// ParseNet reads an address or a CIDR network; an address is its own
// network (/32, /128). IPv4-mapped IPv6 addresses are IPv4.
func ParseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: %q is not an address or a CIDR network", codec.ErrBadRequest, s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an address or a CIDR network", codec.ErrBadRequest, s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AccountBan returns the server ban on account in force at now.
func (s *Server) AccountBan(account string, now int64) (Limit, bool) {
	l, ok := s.Accounts[account]
	return l, ok && account != "" && l.holds(now)
}

// NetsAt is the banned networks in force at now, for the admission
// check.
func (s *Server) NetsAt(now int64) []netip.Prefix {
	var out []netip.Prefix
	for k, l := range s.Nets {
		if p, err := netip.ParsePrefix(k); err == nil && l.holds(now) { // rules read back from a store are not trusted to parse
			out = append(out, p)
		}
	}
	return out
}

// TokenRevoked reports whether a token of account with id jti, issued
// at issued (zero: no iat, as if issued at the epoch), is revoked.
func (s *Server) TokenRevoked(account, jti string, issued time.Time) bool {
	if before, ok := s.Revoked[account]; ok && issued.UnixMilli() < before {
		return true
	}
	_, ok := s.IDs[jti]
	return ok && jti != ""
}

// BanAccount keeps a ban of account, within MaxAccountBans.
func (s *Server) BanAccount(account string, l Limit) error {
	return put(&s.Accounts, account, l, MaxAccountBans, "server bans of accounts")
}

// BanNet keeps a ban of a network, within MaxNetBans.
func (s *Server) BanNet(p netip.Prefix, l Limit) error {
	return put(&s.Nets, p.String(), l, MaxNetBans, "server bans of addresses")
}

// Revoke refuses account's tokens issued before before, or the token
// with id jti until now plus RevokedIDLife.
func (s *Server) Revoke(account string, before time.Time, jti string, now time.Time) error {
	if jti != "" {
		return putTime(&s.IDs, jti, now.Add(RevokedIDLife).UnixMilli())
	}
	return putTime(&s.Revoked, account, before.UnixMilli())
}

func putTime(m *map[string]int64, k string, v int64) error {
	if *m == nil {
		*m = make(map[string]int64)
	}
	if _, ok := (*m)[k]; !ok && len(*m) >= MaxRevocations {
		return fmt.Errorf("%w: the server keeps at most %d revocations", codec.ErrBadRequest, MaxRevocations)
	}
	(*m)[k] = v
	return nil
}

// Expire drops the bans that ended and the token ids past their time,
// and returns the bans it dropped (accounts, then networks), for the
// audit log.
func (s *Server) Expire(now int64) (accounts, nets []Ended) {
	accounts, nets = expire(s.Accounts, now), expire(s.Nets, now)
	for id, until := range s.IDs {
		if now >= until {
			delete(s.IDs, id)
		}
	}
	return accounts, nets
}

// NextEnd is the earliest end of a timed ban or a revoked id, 0 if none.
func (s *Server) NextEnd() int64 {
	var next int64
	note := func(t int64) {
		if t > 0 && (next == 0 || t < next) {
			next = t
		}
	}
	for _, l := range s.Accounts {
		note(l.Until)
	}
	for _, l := range s.Nets {
		note(l.Until)
	}
	for _, t := range s.IDs {
		note(t)
	}
	return next
}

// Bans lists the server bans in force at now: accounts, then networks,
// each sorted.
func (s *Server) Bans(now int64) []codec.BanInfo {
	var out []codec.BanInfo
	for a, l := range s.Accounts {
		if l.holds(now) {
			out = append(out, codec.BanInfo{Account: a, By: l.By, Reason: l.Reason, At: l.At, Until: l.Until})
		}
	}
	for p, l := range s.Nets {
		if l.holds(now) {
			out = append(out, codec.BanInfo{Address: p, By: l.By, Reason: l.Reason, At: l.At, Until: l.Until})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Account == "") != (out[j].Account == "") {
			return out[i].Account != ""
		}
		return out[i].Account+out[i].Address < out[j].Account+out[j].Address
	})
	return out
}

// Copy returns a copy of s that shares nothing with it.
func (s *Server) Copy() *Server {
	return &Server{Accounts: maps.Clone(s.Accounts), Nets: maps.Clone(s.Nets), Revoked: maps.Clone(s.Revoked), IDs: maps.Clone(s.IDs), Lockdown: s.Lockdown}
}

// Refuses says why the rules now end a session of account (its token's
// jti and iat; "" for a session without a token) from addr: banned,
// token_revoked, or "" when they do not.
func (s *Server) Refuses(account, jti string, issued time.Time, addr netip.Addr, now int64) codec.Reason {
	if _, banned := s.AccountBan(account, now); banned {
		return codec.ReasonBanned
	}
	if addr.IsValid() {
		for _, p := range s.NetsAt(now) {
			if p.Contains(addr) {
				return codec.ReasonBanned
			}
		}
	}
	if account != "" && s.TokenRevoked(account, jti, issued) {
		return codec.ReasonTokenRevoked
	}
	return ""
}
