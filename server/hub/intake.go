package hub

import (
	"errors"
	"fmt"

	"parley/codec"
)

// Intake: what a connection's bytes become. Traffic frames what the
// transport buffered, flood control admits each frame (flood.go), and
// dispatch sends each request to its handler, one per request type.
// Loop goroutine of the session.

// maxFrame is the largest frame s may send now: small until it logs in.
func (h *Hub) maxFrame(s *Session) int {
	if s.loggedIn {
		return h.cfg.MaxFrame
	}
	return h.cfg.MaxLoginFrame
}

// partial notes whether s has an incomplete frame waiting; one that waits
// longer than FrameTimeout closes the connection (the sweep checks).
func (h *Hub) partial(s *Session, waiting bool) {
	switch {
	case !waiting:
		s.partialSince = 0
	case s.partialSince == 0:
		s.partialSince = h.mono()
	}
}

// handleFrame decodes and answers one frame body from s, and reports
// false if flood control dropped it. Loop goroutine of s. body is only
// valid during the call.
func (h *Hub) handleFrame(s *Session, body []byte) bool {
	s.lastSeen = h.mono()
	s.partialSince = 0
	if !h.admit(s) {
		return false
	}
	if s.waiting {
		h.backlogFrame(s, body)
		return true
	}
	h.handleBody(s, body)
	return true
}

// handleBody decodes and answers a frame that passed flood control.
func (h *Hub) handleBody(s *Session, body []byte) {
	var req codec.Request
	if err := codec.DecodeRequest(body, &req); err != nil {
		if codec.CodeOf(err).Fatal() {
			h.protocolError(s, err)
			return
		}
		h.replyError(s, err, validRef(req.Ref))
		return
	}
	if len(req.Ref) > codec.MaxRef {
		h.replyError(s, fmt.Errorf("%w: ref is over %d bytes", codec.ErrBadRequest, codec.MaxRef), "")
		return
	}
	defer h.recoverPanic(s)
	if h.cfg.BeforeHandle != nil {
		h.cfg.BeforeHandle(s.nick, &req)
	}
	if err := h.dispatch(s, &req); err != nil && !errors.Is(err, errHeld) {
		h.replyError(s, err, req.Ref)
	}
}

func (h *Hub) dispatch(s *Session, req *codec.Request) error {
	switch req.Type {
	case codec.TypePing:
		s.send(pongFrame)
		return nil
	case codec.TypePong:
		return nil
	case codec.TypeQuit:
		h.closeSession(s, codec.ReasonQuit)
		return nil
	case codec.TypeLogin:
		return h.handleLogin(s, req)
	}
	if !s.loggedIn {
		return codec.ErrNotLoggedIn
	}
	switch req.Type {
	case codec.TypeSay:
		return h.handleSay(s, req)
	case codec.TypeDM:
		return h.handleDM(s, req)
	case codec.TypeJoin:
		return h.handleJoin(s, req)
	case codec.TypeLeave:
		return h.handleLeave(s, req)
	case codec.TypeWho:
		return h.handleWho(s, req)
	case codec.TypeHistory:
		return h.handleHistory(s, req)
	case codec.TypeRefresh:
		return h.handleRefresh(s, req)
	case codec.TypeOp, codec.TypeDeop, codec.TypeKick, codec.TypeBan, codec.TypeUnban,
		codec.TypeMute, codec.TypeUnmute, codec.TypeInvite, codec.TypeUninvite:
		return h.handleModerate(s, req)
	case codec.TypeTopic:
		return h.handleTopic(s, req)
	case codec.TypePrivate:
		return h.handlePrivate(s, req)
	case codec.TypeRooms:
		return h.handleRooms(s, req)
	case codec.TypeAudit:
		return h.handleAudit(s, req)
	case codec.TypeTyping:
		return h.handleTyping(s, req)
	case codec.TypeEdit:
		return h.handleEdit(s, req)
	case codec.TypeDelete:
		return h.handleDelete(s, req)
	case codec.TypeReact:
		return h.handleReact(s, req)
	case codec.TypeMark:
		return h.handleMark(s, req)
	case codec.TypeServerBan, codec.TypeServerUnban:
		return h.handleServerBan(s, req)
	case codec.TypeServerBans:
		return h.handleServerBans(s, req)
	case codec.TypeRevoke:
		return h.handleRevoke(s, req)
	case codec.TypeLockdown:
		return h.handleLockdown(s, req)
	}
	return fmt.Errorf("%w: %q", codec.ErrUnknownType, req.Type)
}

// Inbound is a connection's received bytes as the transport buffers them;
// a gnet.Conn is one, and so is a stream connection of
// parley/server/transport. Loop goroutine of the connection only.
type Inbound interface {
	InboundBuffered() int
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// Traffic handles every complete frame buffered for s. A peeked frame
// points into the transport's buffers: it is decoded before Discard and
// never kept. Once flood control drops a frame, the rest of what was read
// with it is dropped unread, counted, at the cost of its headers: a flood
// costs the loop little more than the bytes' arrival. Loop goroutine of s.
func (h *Hub) Traffic(s *Session, in Inbound) {
	l := s.loop
	l.enter()
	defer l.leaveLater()
	dropped := uint64(0)
	defer func() {
		if dropped > 0 {
			h.count.floodDrops.Add(dropped)
			h.overLimit(s, dropped-1) // the first was admit's
		}
	}()
	for !s.closing && !s.closed {
		buffered := in.InboundBuffered()
		if buffered < codec.HeaderSize {
			h.partial(s, buffered > 0)
			return
		}
		hdr, _ := in.Peek(codec.HeaderSize)
		size, err := codec.ParseHeader(hdr, h.maxFrame(s))
		if err != nil {
			h.protocolError(s, err)
			break
		}
		if buffered < codec.HeaderSize+size {
			h.partial(s, true)
			return
		}
		l.count.framesIn.Add(1)
		l.count.bytesIn.Add(uint64(codec.HeaderSize + size))
		if dropped > 0 {
			dropped++
			_, _ = in.Discard(codec.HeaderSize + size)
			continue
		}
		frame, _ := in.Peek(codec.HeaderSize + size)
		if !h.handleFrame(s, frame[codec.HeaderSize:]) {
			dropped = 1
		}
		_, _ = in.Discard(codec.HeaderSize + size)
	}
	// The session is closing: what else it sent is not read.
	_, _ = in.Discard(in.InboundBuffered())
}
