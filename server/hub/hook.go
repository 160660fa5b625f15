package hub

import (
	"errors"
	"fmt"

	"parley/api"
	"parley/codec"
	"parley/server/broker"
)

// The application's pre-send hook (docs/API.md "Pre-send hook"): a say
// or a dm is shown to the application before it is sequenced or
// delivered, and goes on as sent, refused, or with the body the
// application gave it.
//
// While its hook call is out, the sender's session is held (async.go):
// its later frames wait, so its messages keep their order, and nothing
// else waits. Sessions are held one by one, so the calls of a room's
// many senders are out at once; a room's order is the order in which
// its messages clear the hook, and a slow answer holds back only its
// sender.

// PreSend is the pre-send hook.
type PreSend interface {
	// Check asks about req and answers through done, exactly once, on
	// any goroutine, possibly before it returns: with the application's
	// verdict, or an error to answer the sender with when the hook
	// failed and its policy refuses. It must not block: the caller is a
	// loop.
	Check(req api.HookRequest, done func(api.HookVerdict, error))
}

// NoHook is the PreSend of a server without a hook: the hub does not
// call it.
type NoHook struct{}

// Check allows everything.
func (NoHook) Check(_ api.HookRequest, done func(api.HookVerdict, error)) {
	done(api.HookVerdict{Action: api.HookAllow}, nil)
}

// askHook holds s while the hook decides on req, then runs then on the
// loop of s with the body to send (the sender's, or the hook's
// replacement), and answers its error, if any. Loop goroutine of s.
func (h *Hub) askHook(s *Session, ref string, req api.HookRequest, then func(body string) error) error {
	return h.call(s, func(done func(func())) {
		h.cfg.Hook.Check(req, func(v api.HookVerdict, err error) {
			done(func() {
				defer h.trimHistory()
				body, err := h.verdict(req.Body, v, err)
				if err == nil {
					err = then(body)
				}
				if err != nil && !errors.Is(err, errHeld) {
					h.replyError(s, err, ref)
				}
			})
		})
	})
}

// verdict turns the hook's answer into the body to send, or the error
// to answer.
func (h *Hub) verdict(body string, v api.HookVerdict, err error) (string, error) {
	switch {
	case err != nil:
		return "", err
	case v.Action == api.HookReject:
		return "", &codec.Rejection{Reason: v.Code, Message: v.Message}
	case v.Action == api.HookReplace:
		if err := h.checkBody(v.Body); err != nil {
			return "", fmt.Errorf("%w: the application replaced the body with one the server refuses (%v)", codec.ErrRejected, err)
		}
		return v.Body, nil
	}
	return body, nil
}

// hookSay asks the hook about a say in r, then sequences it. Loop
// goroutine of s.
func (h *Hub) hookSay(s *Session, r *room, m broker.Message) error {
	req := api.HookRequest{Type: codec.TypeSay, Account: s.account, Nick: s.nick, Room: r.name, Body: m.Body,
		ReplyTo: m.ReplyTo, Mentions: m.Mentions}
	return h.askHook(s, m.Ref, req, func(body string) error {
		// The session was held, not frozen: a kick or a mute may have
		// come meanwhile.
		if s.rooms.get(r.name) != r {
			return fmt.Errorf("%w: not in room %q", codec.ErrNotInRoom, r.name)
		}
		if err := h.maySay(s, r); err != nil {
			return err
		}
		if body != m.Body {
			m.Body, m.Mentions = body, nil
			if err := h.converse(r, &m); err != nil {
				return err
			}
		}
		return h.sequence(s, r, m)
	})
}
