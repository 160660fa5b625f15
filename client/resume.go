package client

import (
	"context"
	"strings"
	"time"

	"parley/codec"
)

// The client remembers, per room, the room's epoch and the last seq it
// received; after a reconnect it logs in and rejoins with them, so the
// server replays what it missed before any live message and says with a
// recovered event whether that was all of it (docs/PROTOCOL.md "History
// and resume"). A recovered event with Recovered false means messages
// were lost to this client: show it to the user.

// mark is where the client is in a room.
type mark struct {
	epoch string
	seq   uint64
	// own holds the seqs of this client's acked messages past seq, which
	// the server does not send back: seq moves over them once the
	// messages before each have arrived, so a resume does not replay the
	// client's own messages, and does not skip another's message that was
	// said just before and had not arrived yet.
	own []uint64
}

// maxOwn bounds mark.own: past it the oldest own seq is forgotten, and
// at worst replayed.
const maxOwn = 256

// advance moves m past seq and past the own messages that follow it.
func (m *mark) advance(seq uint64) {
	if seq > m.seq {
		m.seq = seq
	}
	for len(m.own) > 0 && m.own[0] <= m.seq+1 {
		m.seq = max(m.seq, m.own[0])
		m.own = m.own[1:]
	}
}

// noteOwn counts the client's own acked message seq in room toward
// where it is there.
func (c *Client) noteOwn(room string, seq uint64) {
	if seq == 0 {
		return // not numbered (a cluster server cut off from its bus)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.marks[room]
	if !ok || seq <= m.seq {
		return
	}
	i := len(m.own)
	for i > 0 && m.own[i-1] > seq {
		i--
	}
	m.own = append(m.own[:i], append([]uint64{seq}, m.own[i:]...)...)
	if len(m.own) > maxOwn {
		m.own = m.own[1:]
	}
	m.advance(0)
	c.marks[room] = m
}

// entered notes the epoch and last seq a welcome or a join's ack gave for
// room. The same epoch keeps the client's own seq (a replay that follows
// brings it up to date); another one starts the room afresh from seq.
func (c *Client) entered(room, epoch string, seq uint64) {
	if epoch == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.marks[room]; !ok || m.epoch != epoch {
		c.marks[room] = mark{epoch: epoch, seq: seq}
	}
}

// note moves the client's place in a room past a message or a gap it
// received. Reader goroutine.
func (c *Client) note(ev codec.Event) {
	var seq uint64
	switch {
	case (ev.Type == codec.TypeMsg || ev.Type == codec.TypeEdited || ev.Type == codec.TypeDeleted || ev.Type == codec.TypeReaction) && ev.Room != "" && ev.Seq > 0:
		seq = ev.Seq // an amendment takes a seq of the room's too
	case ev.Type == codec.TypeGap:
		seq = ev.Last
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.marks[ev.Room]; ok && seq > m.seq {
		m.advance(seq)
		c.marks[ev.Room] = m
	}
}

// lobbyMark is where to resume the lobby, if the client was there.
func (c *Client) lobbyMark() *mark {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.marks[codec.Lobby]; ok && c.rooms[codec.Lobby] {
		return &m
	}
	return nil
}

// rejoinRef names the join a reconnect sends for room, so that its ack
// updates the room's mark instead of reaching the application.
const rejoinRef = "rejoin:"

// rejoinFrame is the join that restores room after a reconnect, resuming
// it where the client was.
func (c *Client) rejoinFrame(room string) []byte {
	j := &codec.Join{Room: room, Ref: rejoinRef + room}
	c.mu.Lock()
	if m, ok := c.marks[room]; ok {
		j.Since, j.Epoch = &m.seq, m.epoch
	}
	c.mu.Unlock()
	return codec.MustEncode(j)
}

// rejoined handles the ack of a rejoin: it reports whether ev was one.
func (c *Client) rejoined(ev codec.Event) bool {
	room, ok := strings.CutPrefix(ev.Ref, rejoinRef)
	if !ok || ev.Type != codec.TypeAck {
		return false
	}
	c.entered(room, ev.Epoch, ev.Seq)
	return true
}

// History returns one page of room's history (docs/PROTOCOL.md): with
// before > 0 the newest limit messages before that seq, else the newest
// limit; and whether older ones remain.
func (c *Client) History(ctx context.Context, room string, before uint64, limit int) ([]codec.Event, bool, error) {
	return c.page(ctx, codec.History{Room: room}, before, limit)
}

// page asks for one page of the history q names (a room's, or with DM
// the account's direct messages).
func (c *Client) page(ctx context.Context, q codec.History, before uint64, limit int) ([]codec.Event, bool, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message {
		h := q
		h.Limit, h.Ref = &limit, ref
		if before > 0 {
			h.Before = &before
		}
		return &h
	})
	return ev.Msgs, ev.More, err
}

// fill pages the messages of a gap from the room's history and delivers
// them as Filled events; those the history no longer has stay missing (the
// gap event told). Its own goroutine: it waits for answers the reader
// goroutine delivers.
func (c *Client) fill(gap codec.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for since := gap.First - 1; since < gap.Last; {
		from := since
		ev, err := c.call(ctx, func(ref string) codec.Message {
			limit := codec.HistoryPage
			return &codec.History{Room: gap.Room, Since: &from, Limit: &limit, Ref: ref}
		})
		if err != nil || len(ev.Msgs) == 0 {
			return
		}
		for _, m := range ev.Msgs {
			if m.Seq > gap.Last {
				return
			}
			c.emit(Event{Event: m, Filled: true})
			since = m.Seq
		}
	}
}
