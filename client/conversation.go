package client

import (
	"context"

	"parley/codec"
)

// Conversation features (docs/PROTOCOL.md "Edits, deletes, reactions,
// replies and mentions", "Read markers", "Direct messages that wait").
// Members receive what these do as events of types codec.TypeEdited,
// TypeDeleted and TypeReaction, each with a seq of its own in the room
// and Of naming the message; messages carry ReplyTo and Mentions; the
// account's read markers arrive as codec.TypeMarks after the welcome
// and whenever another session moves one.

// Reply sends body to room as an answer to the message replyTo and waits
// for its ack, returning the message's seq.
func (c *Client) Reply(ctx context.Context, room string, replyTo uint64, body string) (uint64, error) {
	return c.roomCall(ctx, room, func(ref string) codec.Message {
		return &codec.Say{Room: room, Body: body, ReplyTo: replyTo, Ref: ref}
	})
}

// Edit replaces the text of this user's message seq in room; it returns
// the edit's own seq.
func (c *Client) Edit(ctx context.Context, room string, seq uint64, body string) (uint64, error) {
	return c.roomCall(ctx, room, func(ref string) codec.Message { return &codec.Edit{Room: room, Seq: seq, Body: body, Ref: ref} })
}

// Delete deletes the message seq in room: this user's own, or, for the
// room's owner or an operator, anyone's; it returns the delete's seq.
func (c *Client) Delete(ctx context.Context, room string, seq uint64) (uint64, error) {
	return c.roomCall(ctx, room, func(ref string) codec.Message { return &codec.Delete{Room: room, Seq: seq, Ref: ref} })
}

// React adds emoji to the message seq in room, or with remove takes this
// user's back; it returns the reaction's seq, 0 when nothing changed.
func (c *Client) React(ctx context.Context, room string, seq uint64, emoji string, remove bool) (uint64, error) {
	return c.roomCall(ctx, room, func(ref string) codec.Message {
		return &codec.React{Room: room, Seq: seq, Emoji: emoji, Remove: remove, Ref: ref}
	})
}

// EditDM replaces the text of a direct message this account sent, named
// by its seq in the account's direct messages; it returns the edit's seq
// there.
func (c *Client) EditDM(ctx context.Context, seq uint64, body string) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Edit{DM: true, Seq: seq, Body: body, Ref: ref} })
	return ev.Seq, err
}

// DeleteDM deletes a direct message this account sent, as EditDM names it.
func (c *Client) DeleteDM(ctx context.Context, seq uint64) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Delete{DM: true, Seq: seq, Ref: ref} })
	return ev.Seq, err
}

// Mark moves the account's read marker in room forward to seq; it
// returns the marker as it is (never behind where it was).
func (c *Client) Mark(ctx context.Context, room string, seq uint64) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Mark{Room: room, Seq: seq, Ref: ref} })
	return ev.Seq, err
}

// MarkDMs moves the account's read marker in its direct messages.
func (c *Client) MarkDMs(ctx context.Context, seq uint64) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Mark{DM: true, Seq: seq, Ref: ref} })
	return ev.Seq, err
}

// DMAccount sends body to the account account, online or not: an
// offline account gets it at its next login.
func (c *Client) DMAccount(ctx context.Context, account, body string) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.DM{Account: account, Body: body, Ref: ref} })
	return err
}

// roomCall sends a request that takes a seq of room and notes that seq
// as the client's own, as Say does.
func (c *Client) roomCall(ctx context.Context, room string, build func(ref string) codec.Message) (uint64, error) {
	ev, err := c.call(ctx, build)
	if err == nil {
		c.noteOwn(c.spelled(room), ev.Seq)
	}
	return ev.Seq, err
}
