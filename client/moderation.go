package client

import (
	"context"
	"time"

	"parley/codec"
)

// Rooms people run (docs/PROTOCOL.md): typed calls for every governance
// request. Each waits for the ack; a refusal is a *codec.Error
// (codec.ErrForbidden, codec.ErrNoSuchUser, ...).

// Target names the account a moderation call acts on.
type Target struct{ nick, account string }

// ByNick names the account of a user online by its nick (or a nick
// login or guest, which only Kick acts on).
func ByNick(nick string) Target { return Target{nick: nick} }

// ByAccount names an account by its token's sub, online or not.
func ByAccount(account string) Target { return Target{account: account} }

// Moderate sends one action on t in room: typ is a request type of
// codec.TargetTypes (the typed calls below name each); d, when positive,
// bounds a ban, mute or invitation (rounded up to whole seconds).
func (c *Client) Moderate(ctx context.Context, typ, room string, t Target, d time.Duration, reason string) error {
	var dur *int64
	if d > 0 {
		secs := int64((d + time.Second - 1) / time.Second)
		dur = &secs
	}
	_, err := c.call(ctx, func(ref string) codec.Message {
		return &codec.Target{Type: typ, Room: room, Nick: t.nick, Account: t.account, Duration: dur, Reason: reason, Ref: ref}
	})
	return err
}

// Op makes t an operator of room (its owner only).
func (c *Client) Op(ctx context.Context, room string, t Target) error {
	return c.Moderate(ctx, codec.TypeOp, room, t, 0, "")
}

// Deop takes t's operator role in room away (its owner only).
func (c *Client) Deop(ctx context.Context, room string, t Target) error {
	return c.Moderate(ctx, codec.TypeDeop, room, t, 0, "")
}

// Kick removes t from room; it may join again.
func (c *Client) Kick(ctx context.Context, room string, t Target, reason string) error {
	return c.Moderate(ctx, codec.TypeKick, room, t, 0, reason)
}

// Ban removes t from room and keeps it out for d (0: until Unban).
func (c *Client) Ban(ctx context.Context, room string, t Target, d time.Duration, reason string) error {
	return c.Moderate(ctx, codec.TypeBan, room, t, d, reason)
}

// Unban lifts t's ban from room.
func (c *Client) Unban(ctx context.Context, room string, t Target) error {
	return c.Moderate(ctx, codec.TypeUnban, room, t, 0, "")
}

// Mute keeps t from saying anything in room for d (0: until Unmute).
func (c *Client) Mute(ctx context.Context, room string, t Target, d time.Duration, reason string) error {
	return c.Moderate(ctx, codec.TypeMute, room, t, d, reason)
}

// Unmute lets t say again in room.
func (c *Client) Unmute(ctx context.Context, room string, t Target) error {
	return c.Moderate(ctx, codec.TypeUnmute, room, t, 0, "")
}

// Invite lets t into room while it is private, for d (0: until Uninvite).
func (c *Client) Invite(ctx context.Context, room string, t Target, d time.Duration) error {
	return c.Moderate(ctx, codec.TypeInvite, room, t, d, "")
}

// Uninvite takes t's invitation to room back.
func (c *Client) Uninvite(ctx context.Context, room string, t Target) error {
	return c.Moderate(ctx, codec.TypeUninvite, room, t, 0, "")
}

// SetTopic sets room's topic; "" clears it.
func (c *Client) SetTopic(ctx context.Context, room, topic string) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.SetTopic{Room: room, Topic: topic, Ref: ref} })
	return err
}

// SetPrivate makes room invite-only, or open again.
func (c *Client) SetPrivate(ctx context.Context, room string, private bool) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.SetPrivate{Room: room, Private: private, Ref: ref} })
	return err
}

// ListRooms returns one page of the public rooms, largest first, from
// offset (limit 0: the server's default), their total and whether more
// follow.
func (c *Client) ListRooms(ctx context.Context, offset, limit int) (rooms []codec.RoomInfo, total int, more bool, err error) {
	ev, err := c.call(ctx, func(ref string) codec.Message {
		q := &codec.ListRooms{Offset: offset, Ref: ref}
		if limit > 0 {
			q.Limit = &limit
		}
		return q
	})
	return ev.Rooms, ev.Total, ev.More, err
}

// Audit returns the newest entries of room's audit log before seq before
// (0: the newest; room "": every room's, for an admin), oldest first,
// and whether older ones remain.
func (c *Client) Audit(ctx context.Context, room string, before uint64, limit int) ([]codec.AuditEntry, bool, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message {
		q := &codec.ReadAudit{Room: room, Ref: ref}
		if before > 0 {
			q.Before = &before
		}
		if limit > 0 {
			q.Limit = &limit
		}
		return q
	})
	return ev.Entries, ev.More, err
}

// Server-wide moderation, for sessions of admins (a token with role
// admin).

// ServerBan bans an account (ByAccount) or an address or CIDR network
// (ByAddress) from the whole server for d (0: until ServerUnban).
func (c *Client) ServerBan(ctx context.Context, who BanTarget, d time.Duration, reason string) error {
	var dur *int64
	if d > 0 {
		secs := int64((d + time.Second - 1) / time.Second)
		dur = &secs
	}
	_, err := c.call(ctx, func(ref string) codec.Message {
		return &codec.ServerBan{Type: codec.TypeServerBan, Account: who.account, Address: who.address, Duration: dur, Reason: reason, Ref: ref}
	})
	return err
}

// ServerUnban lifts a server ban.
func (c *Client) ServerUnban(ctx context.Context, who BanTarget) error {
	_, err := c.call(ctx, func(ref string) codec.Message {
		return &codec.ServerBan{Type: codec.TypeServerUnban, Account: who.account, Address: who.address, Ref: ref}
	})
	return err
}

// BanTarget is what a server ban names: an account or an address.
type BanTarget struct{ account, address string }

// AccountBan names an account (a token's sub) for a server ban.
func AccountBan(account string) BanTarget { return BanTarget{account: account} }

// AddressBan names an address or a CIDR network for a server ban.
func AddressBan(address string) BanTarget { return BanTarget{address: address} }

// ServerBans returns one page of the server bans from offset, their
// total, whether more follow, and the lockdown level.
func (c *Client) ServerBans(ctx context.Context, offset, limit int) (bans []codec.BanInfo, total int, more bool, lockdown string, err error) {
	ev, err := c.call(ctx, func(ref string) codec.Message {
		q := &codec.ListBans{Offset: offset, Ref: ref}
		if limit > 0 {
			q.Limit = &limit
		}
		return q
	})
	return ev.Bans, ev.Total, ev.More, ev.Lockdown, err
}

// RevokeAccount refuses account's tokens issued before before (zero:
// now); its sessions holding one end.
func (c *Client) RevokeAccount(ctx context.Context, account string, before time.Time) error {
	_, err := c.call(ctx, func(ref string) codec.Message {
		r := &codec.Revoke{Account: account, Ref: ref}
		if !before.IsZero() {
			r.IssuedBefore = before.UnixMilli()
		}
		return r
	})
	return err
}

// RevokeToken refuses the one token whose jti is id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.Revoke{JTI: id, Ref: ref} })
	return err
}

// Lockdown sets which new logins the server takes: off, accounts or
// admins.
func (c *Client) Lockdown(ctx context.Context, level string) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.SetLockdown{Level: level, Ref: ref} })
	return err
}
