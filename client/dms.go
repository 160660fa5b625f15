package client

import (
	"context"
	"time"

	"parley/codec"
)

// An account's direct messages are kept by the server and numbered in
// their own sequence (docs/PROTOCOL.md "Tokens and accounts"). The client
// remembers the last seq it received; after a reconnect under the same
// epoch it pages the ones it missed, up to the new welcome's dm_seq, and
// delivers them as Filled events. Live ones after the welcome have larger
// seqs, so none comes twice.

// enteredDMs notes the welcome's DM epoch and seq, and returns the range
// to catch up (from after since to last), if any. A new epoch starts
// afresh: the server no longer has what came before.
func (c *Client) enteredDMs(epoch string, seq uint64) (since, last uint64, catchUp bool) {
	if epoch == "" {
		return 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dms.epoch != epoch {
		c.dms = mark{epoch: epoch, seq: seq}
		return 0, 0, false
	}
	if c.dms.seq >= seq {
		return 0, 0, false
	}
	since, c.dms.seq = c.dms.seq, seq
	return since, seq, true
}

// noteDM moves the client's place in its direct messages past ev.
func (c *Client) noteDM(ev codec.Event) {
	if ev.Type != codec.TypeMsg && ev.Type != codec.TypeEdited && ev.Type != codec.TypeDeleted || ev.Room != "" || ev.Seq == 0 {
		return
	}
	c.mu.Lock()
	c.dms.seq = max(c.dms.seq, ev.Seq)
	c.mu.Unlock()
}

// fillDMs pages the direct messages after since up to last and delivers
// them as Filled events. Its own goroutine.
func (c *Client) fillDMs(since, last uint64) {
	defer c.fills.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for since < last {
		from := since
		ev, err := c.call(ctx, func(ref string) codec.Message {
			limit := codec.HistoryPage
			return &codec.History{DM: true, Since: &from, Limit: &limit, Ref: ref}
		})
		if err != nil || len(ev.Msgs) == 0 {
			return
		}
		for _, m := range ev.Msgs {
			if m.Seq > last {
				return
			}
			c.emit(c.dmEvent(m, true))
			since = m.Seq
		}
	}
}

// dmEvent makes the event of a direct message, marking one another
// session of this account sent.
func (c *Client) dmEvent(m codec.Event, filled bool) Event {
	nick := c.Nick()
	return Event{Event: m, Filled: filled, Sent: m.From == nick && m.To != nick}
}

// DMHistory returns one page of the account's direct messages: with
// before > 0 the newest limit before that seq, else the newest limit;
// and whether older ones remain. Logins with a token only.
func (c *Client) DMHistory(ctx context.Context, before uint64, limit int) ([]codec.Event, bool, error) {
	return c.page(ctx, codec.History{DM: true}, before, limit)
}
