package client

import (
	"context"

	"parley/codec"
)

// Typing tells room's other members that this user is typing there. It
// waits for nothing: the server relays it at most once per
// codec.TypingEvery and never answers it, and while the client is
// disconnected it is dropped (ErrDisconnected).
func (c *Client) Typing(ctx context.Context, room string) error {
	return c.fire(ctx, &codec.Typing{Room: room})
}

// TypingTo tells the user nick that this user is typing to it, as
// Typing does for a room.
func (c *Client) TypingTo(ctx context.Context, nick string) error {
	return c.fire(ctx, &codec.Typing{To: nick})
}

// fire sends m on the current connection and waits for no answer.
func (c *Client) fire(ctx context.Context, m codec.Message) error {
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil {
		return ErrDisconnected
	}
	return cn.send(ctx, codec.MustEncode(m))
}
