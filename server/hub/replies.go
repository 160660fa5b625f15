package hub

import (
	"errors"
	"fmt"
	"strings"

	"parley/codec"
)

// Replies: acks, errors and the checks requests share.

// requireRoom checks a room name and returns its display form.
func (h *Hub) requireRoom(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: room is required", codec.ErrBadRequest)
	}
	n, err := codec.ParseRoom(name)
	return n.Display, err
}

func (h *Hub) checkBody(body string) error {
	switch {
	case body == "":
		return fmt.Errorf("%w: body is required", codec.ErrBadRequest)
	case len(body) > h.cfg.MaxBody:
		return fmt.Errorf("%w: body is %d bytes, the limit is %d", codec.ErrBodyTooLarge, len(body), h.cfg.MaxBody)
	}
	if r, bad := codec.BodyControl(body); bad {
		return fmt.Errorf("%w: body holds control character %U (only newline and tab are allowed)", codec.ErrBadRequest, r)
	}
	return nil
}

// ack answers a request that carried ref.
func (h *Hub) ack(s *Session, ref string, seq uint64) {
	if ref != "" {
		s.send(codec.MustEncode(&codec.Ack{Ref: ref, Seq: seq}))
	}
}

// replyError sends err to s as an error frame.
func (h *Hub) replyError(s *Session, err error, ref string) {
	s.send(h.errorFrame(err, ref))
}

// errorFrame encodes err for the client, and counts it by its code.
func (h *Hub) errorFrame(err error, ref string) []byte {
	code := codec.CodeOf(err)
	if code == "" {
		code = codec.CodeInternal
	}
	h.count.errors.add(code)
	// "code: sentinel text: detail" becomes "detail" for people.
	msg := strings.TrimPrefix(err.Error(), string(code)+": ")
	if s := codec.Sentinel(code); s != nil && strings.HasPrefix(msg, s.Msg+": ") {
		msg = strings.TrimPrefix(msg, s.Msg+": ")
	}
	frame := &codec.ErrorMsg{Code: code, Message: msg, Ref: ref}
	if rj := (*codec.Rejection)(nil); errors.As(err, &rj) {
		frame.Reason = rj.Reason
	}
	return codec.MustEncode(frame)
}

func validRef(ref string) string {
	if len(ref) > codec.MaxRef {
		return ""
	}
	return ref
}

// protocolError answers a framing error and closes the session: the byte
// stream can no longer be trusted.
func (h *Hub) protocolError(s *Session, err error) {
	h.replyError(s, err, "")
	h.closeSession(s, codec.ReasonProtocolError)
}

// recoverPanic turns a panic while handling one frame into the end of that
// session alone.
func (h *Hub) recoverPanic(s *Session) {
	v := recover()
	if v == nil {
		return
	}
	h.log.Error("panic while handling a frame", append(s.logAttrs(), "panic", fmt.Sprint(v))...)
	h.replyError(s, codec.ErrInternal, "")
	h.closeSession(s, codec.ReasonInternalError)
}
