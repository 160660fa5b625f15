package hub

import (
	"errors"
	"fmt"
	"strings"

	"parley/codec"
	"parley/server/broker"
)

// Say: a room message is sequenced under the room's lock and queued for
// every loop with members (room.go), kept in the history, and acked once
// the store has it.

func (h *Hub) handleSay(s *Session, req *codec.Request) error {
	defer h.trimHistory() // once the room's lock is let go
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	if err := h.maySay(s, r); err != nil {
		return err
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	if err := checkSayID(req.ID); err != nil {
		return err
	}
	m := broker.Message{Room: r.name, Key: s.key, Nick: s.nick, Body: req.Body, ID: req.ID, TS: h.wallMillis(), Sender: s, Ref: req.Ref}
	m.Account, m.ReplyTo = s.account, req.ReplyTo
	if err := h.converse(r, &m); err != nil {
		return err
	}
	if h.hooked {
		return h.hookSay(s, r, m)
	}
	return h.sequence(s, r, m)
}

// sequence hands a room message or amendment from s to the broker and
// acks it once stored.
func (h *Hub) sequence(s *Session, r *room, m broker.Message) error {
	seq, pending, err := h.broker.Say(m, s, m.Ref)
	switch {
	case errors.Is(err, broker.ErrUnsequenced) && m.Kind != "":
		return fmt.Errorf("%w: the room's sequence cannot be reached to amend a message; try again", codec.ErrUnavailable)
	case errors.Is(err, broker.ErrUnsequenced):
		h.sayUnsequenced(s, r, m)
	case err != nil:
		return unavailable(err)
	case pending:
		return nil // the broker answers through s.SayDone
	case h.storeAcks(m.Ref):
		return nil // the store acks it once the disk has it (sequenceLocked)
	}
	h.ack(s, m.Ref, seq)
	return nil
}

// checkSayID refuses an idempotency key that is too long or holds control
// characters: members receive it as it is.
func checkSayID(id string) error {
	if len(id) > codec.MaxRef {
		return fmt.Errorf("%w: id is over %d bytes", codec.ErrBadRequest, codec.MaxRef)
	}
	if _, bad := codec.BodyControl(id); bad || strings.ContainsAny(id, "\n\t") {
		return fmt.Errorf("%w: id holds a control character", codec.ErrBadRequest)
	}
	return nil
}

// memberRoom returns the room called name (the lobby if empty) that s is
// in. A name spelled as the room is displayed is found without parsing.
func (h *Hub) memberRoom(s *Session, name string) (*room, error) {
	if name == "" {
		name = codec.Lobby
	}
	if r := s.rooms.get(name); r != nil {
		return r, nil
	}
	n, err := codec.ParseRoom(name)
	if err != nil {
		return nil, err
	}
	if r := s.rooms.get(n.Display); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: not in room %q", codec.ErrNotInRoom, n.Display)
}

// sequenceLocked gives a message the next seq of r, encodes it once and
// hands it to the broker under the lock, so that the room's log gets its
// messages in seq order. Stored at once (a single node), it is queued for
// the local members except one; otherwise it comes back through Deliver
// once stored. r.mu held.
func (h *Hub) sequenceLocked(r *room, m broker.Message, except *Session) uint64 {
	r.issued = max(r.issued, r.seq) + 1
	seq := r.issued
	frame := eventFrame(r.name, m, seq)
	h.count.roomMessages.Add(1)
	if h.broker.Append(m, seq, frame) {
		r.seq = seq
		r.publishSeqLocked(h, frame, except, seq)
		var stored func(error)
		if m.Sender != nil && h.storeAcks(m.Ref) {
			stored = h.ackWhenStored(m.Sender, m.Ref, seq)
		}
		h.rememberLocked(r, seq, frame, stored)
	}
	h.messageEvents(r, &m, seq)
	return seq
}

// storeAcks reports whether a local say with ref is acked by the history
// store once the disk has it (--data-dir), so that an ack means the
// message survives the process, rather than at once.
func (h *Hub) storeAcks(ref string) bool {
	return ref != "" && h.durable && h.cfg.HistoryLen > 0
}

// ackWhenStored is the store's callback that acks sender's say, or
// answers not_stored.
func (h *Hub) ackWhenStored(sender broker.Replier, ref string, seq uint64) func(error) {
	return func(err error) {
		if err != nil {
			err = fmt.Errorf("%w: delivered to the room as seq %d, but not written to disk: %v", codec.ErrNotStored, seq, err)
		}
		sender.SayDone(ref, seq, err)
	}
}

// sayUnsequenced delivers a message to the local members only, without a
// seq: the broker cannot reach the room's sequence. Loop goroutine of s.
func (h *Hub) sayUnsequenced(s *Session, r *room, m broker.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(h, eventFrame(r.name, m, 0), s)
}
