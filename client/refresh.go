package client

import (
	"context"
	"time"

	"parley/codec"
)

// refresher sends refresh with a new token from Options.Token before the
// session's token expires, until the connection ends: at four fifths of
// the token's remaining life, and again a tenth later if that failed.
func (c *Client) refresher(cn *conn, expires int64) {
	defer c.wg.Done()
	for {
		left := time.Until(time.UnixMilli(expires))
		t := time.NewTimer(max(left*4/5, 0))
		select {
		case <-t.C:
		case <-cn.done:
			t.Stop()
			return
		case <-c.closing:
			t.Stop()
			return
		}
		next, err := c.refresh()
		if err != nil {
			c.opts.Logger.Warn("token refresh failed", "err", err.Error())
			expires = time.Now().Add(left / 10).UnixMilli()
			if left < time.Second {
				return // the server ends the session: the reconnect logs in anew
			}
			continue
		}
		expires = next
	}
}

// refresh gets a token and sends it; it returns the new expiry.
func (c *Client) refresh() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	tok, err := c.opts.Token(ctx)
	if err != nil {
		return 0, err
	}
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Refresh{Token: tok, Ref: ref} })
	if err != nil {
		return 0, err
	}
	return ev.Expires, nil
}
