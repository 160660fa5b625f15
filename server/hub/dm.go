package hub

import (
	"fmt"

	"parley/codec"
)

// Direct messages: delivered to every session of the recipient, kept in
// an account's inbox when it has one (inbox.go), and echoed to the
// sender's other sessions. DMs from other nodes arrive through remote.go.

func (h *Hub) handleDM(s *Session, req *codec.Request) error {
	defer h.trimHistory() // once the inboxes' locks are let go
	if req.To == "" {
		return fmt.Errorf("%w: to is required", codec.ErrBadRequest)
	}
	to, err := codec.ParseNick(req.To)
	if err != nil {
		return err
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	if !h.allowDM(s, to.Key) {
		return fmt.Errorf("%w: too many direct messages to %q", codec.ErrRateLimited, to.Display)
	}
	ts := h.wallMillis()
	if !h.nicks.online(to.Key) {
		ref, body := req.Ref, req.Body
		return h.call(s, func(done func(func())) {
			h.broker.SendDM(to.Key, to.Display, s.nick, body, ts, func(err error) {
				done(func() {
					if err != nil {
						h.answer(s, ref, err)
						return
					}
					h.ack(s, ref, h.echoDM(s, to.Display, body, ts))
				})
			})
		})
	}
	if nick, behind := h.behindAny(to.Key, h.cfg.MaxOutbound/4); behind {
		return fmt.Errorf("%w: %q is not keeping up with its messages; try again later", codec.ErrRateLimited, nick)
	}
	except := s
	if to.Key == s.key {
		except = nil // a dm to oneself reaches every session of the user, the sender's too
	}
	seq, err := h.sendDM(to.Key, s.nick, to.Display, req.Body, ts, except)
	if err != nil {
		return err
	}
	if to.Key != s.key {
		seq = h.echoDM(s, to.Display, req.Body, ts)
	}
	h.ack(s, req.Ref, seq)
	return nil
}

// echoDM keeps a direct message s sent in its account's inbox and hands
// it to the account's other sessions; it returns its seq there (0 for a
// nick login, which keeps nothing).
func (h *Hub) echoDM(s *Session, to, body string, ts int64) uint64 {
	if s.account == "" {
		return 0
	}
	ib := h.inboxFor(s.account)
	if ib == nil {
		return 0
	}
	ib.mu.Lock()
	defer ib.mu.Unlock()
	ib.seq++
	frame := dmFrame(s.nick, to, body, ts, ib.seq)
	h.keep(&ib.hist, ib.seq, frame)
	sessions, _, _ := h.nicks.sessions(s.key)
	for _, t := range sessions {
		if t != s {
			h.deliverDM(t, frame)
		}
	}
	return ib.seq
}

// behind reports whether more than limit bytes wait for s: queued with
// the transport, or direct messages on their way to its loop (counted
// when sent, so that many senders at once cannot overtake the count).
// Safe from any goroutine.
func (s *Session) behind(limit int) bool {
	return s.queuedMem.Load()+s.incoming.Load() > int64(limit)
}

// deliverDM queues a direct message for to. Safe from any goroutine.
func (h *Hub) deliverDM(to *Session, frame []byte) {
	to.incoming.Add(int64(len(frame)))
	to.loop.push(item{kind: itemDM, to: to, frame: frame})
}

func dmFrame(from, to, body string, ts int64, seq uint64) []byte {
	return codec.MustEncode(&codec.Msg{From: from, To: to, Body: body, TS: ts, Seq: seq})
}
