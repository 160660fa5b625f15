package hub

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/codec"
)

// A request the broker may answer later (a nick claim, a room's first
// join, a direct message to another node, a who across nodes) holds its
// session: frames that arrive meanwhile wait in the session's backlog, and
// resume answers and then handles them in order. The event loop never
// waits for the broker.

// errHeld tells handleFrame that the answer comes later, from resume.
var errHeld = errors.New("hub: request held for the broker")

// maxBacklog bounds the frames one held session may send before its
// request completes; beyond it the session is flooding.
const maxBacklog = 1024

// hold keeps frames from s until resume. Loop goroutine of s.
func (h *Hub) hold(s *Session) { s.waiting = true }

// backlogFrame keeps a frame that arrived while s was held. Loop goroutine.
func (h *Hub) backlogFrame(s *Session, body []byte) {
	if len(s.backlog) >= maxBacklog {
		h.closeSession(s, codec.ReasonFlood)
		return
	}
	s.backlog = append(s.backlog, append([]byte(nil), body...))
}

// resume runs fn on the loop of s, then handles the frames s sent while it
// was held. fn runs even if s closed meanwhile, to undo what it must.
// Safe from any goroutine.
func (h *Hub) resume(s *Session, fn func()) {
	l := s.loop
	_ = l.exec.Execute(func() {
		l.enter()
		defer l.leave()
		s.waiting = false
		func() {
			defer h.recoverPanic(s)
			fn()
		}()
		for !s.waiting && len(s.backlog) > 0 && !s.closing && !s.closed {
			body := s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			h.handleBody(s, body)
		}
		if s.closing || s.closed {
			s.backlog = nil
		}
	})
}

// call runs start, which asks the broker for something and passes it a
// done callback; the broker's answer calls done with what to do next on
// the loop of s. A broker that answers inline (broker.Local always does)
// has fn run at once, here; otherwise s is held, call returns errHeld for
// the handler to pass up, and resume runs fn on the loop later, before
// the frames that arrived meanwhile. Loop goroutine of s.
func (h *Hub) call(s *Session, start func(done func(fn func()))) error {
	c := &brokerCall{}
	start(func(fn func()) {
		c.mu.Lock()
		if !c.returned {
			c.fn = fn // answered before start returned: run it below
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		h.resume(s, fn)
	})
	c.mu.Lock()
	c.returned = true
	fn := c.fn
	c.mu.Unlock()
	if fn != nil {
		fn()
		return nil
	}
	h.hold(s)
	return errHeld
}

// after holds s for d, then runs fn on its loop before the frames that
// arrived meanwhile; it returns errHeld for the handler to pass up. Loop
// goroutine of s.
func (h *Hub) after(s *Session, d time.Duration, fn func()) error {
	return h.call(s, func(done func(func())) {
		time.AfterFunc(d, func() { done(fn) })
	})
}

// brokerCall is one call's state: whether start has returned, and the
// answer that came before it did.
type brokerCall struct {
	mu       sync.Mutex
	returned bool
	fn       func()
}

// answer replies to a held request: err, or the ack when ok.
func (h *Hub) answer(s *Session, ref string, err error) {
	switch {
	case s.closing || s.closed:
	case err != nil:
		h.replyError(s, unavailable(err), ref)
	default:
		h.ack(s, ref, 0)
	}
}

// unavailable gives an error from the broker without a protocol code the
// code unavailable.
func unavailable(err error) error {
	if codec.CodeOf(err) == "" {
		return fmt.Errorf("%w: %v", codec.ErrUnavailable, err)
	}
	return err
}

// SayDone answers a say that the broker forwarded to another node: the
// ack with its seq, or the error. It implements broker.Replier. Safe from
// any goroutine.
func (s *Session) SayDone(ref string, seq uint64, err error) {
	switch {
	case err != nil && codec.CodeOf(err) == codec.CodeNotStored:
		s.send(s.loop.hub.errorFrame(err, ref))
	case err != nil:
		s.send(s.loop.hub.errorFrame(unavailable(err), ref))
	case ref != "":
		s.send(codec.MustEncode(&codec.Ack{Ref: ref, Seq: seq}))
	}
}
