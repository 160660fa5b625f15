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

// moderate sends one action; d, when positive, bounds a ban, mute or
// invitation (rounded up to whole seconds).
func (c *Client) moderate(ctx context.Context, typ, room string, t Target, d time.Duration, reason string) error {
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
	return c.moderate(ctx, codec.TypeOp, room, t, 0, "")
}

// Deop takes t's operator role in room away (its owner only).
func (c *Client) Deop(ctx context.Context, room string, t Target) error {
	return c.moderate(ctx, codec.TypeDeop, room, t, 0, "")
}

// Kick removes t from room; it may join again.
func (c *Client) Kick(ctx context.Context, room string, t Target, reason string) error {
	return c.moderate(ctx, codec.TypeKick, room, t, 0, reason)
}

// Ban removes t from room and keeps it out for d (0: until Unban).
func (c *Client) Ban(ctx context.Context, room string, t Target, d time.Duration, reason string) error {
	return c.moderate(ctx, codec.TypeBan, room, t, d, reason)
}

// Unban lifts t's ban from room.
func (c *Client) Unban(ctx context.Context, room string, t Target) error {
	return c.moderate(ctx, codec.TypeUnban, room, t, 0, "")
}

// Mute keeps t from saying anything in room for d (0: until Unmute).
func (c *Client) Mute(ctx context.Context, room string, t Target, d time.Duration, reason string) error {
	return c.moderate(ctx, codec.TypeMute, room, t, d, reason)
}

// Unmute lets t say again in room.
func (c *Client) Unmute(ctx context.Context, room string, t Target) error {
	return c.moderate(ctx, codec.TypeUnmute, room, t, 0, "")
}

// Invite lets t into room while it is private, for d (0: until Uninvite).
func (c *Client) Invite(ctx context.Context, room string, t Target, d time.Duration) error {
	return c.moderate(ctx, codec.TypeInvite, room, t, d, "")
}

// Uninvite takes t's invitation to room back.
func (c *Client) Uninvite(ctx context.Context, room string, t Target) error {
	return c.moderate(ctx, codec.TypeUninvite, room, t, 0, "")
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
