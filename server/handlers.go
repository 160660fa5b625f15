package server

import (
	"errors"
	"fmt"
	"strings"

	"parley/codec"
)

// handleFrame decodes and answers one frame body from s. Loop goroutine of
// s. body is only valid during the call.
func (h *hub) handleFrame(s *session, body []byte) {
	s.lastSeen = h.mono()
	if !h.admit(s) {
		return
	}
	if s.waiting {
		h.backlogFrame(s, body)
		return
	}
	h.handleBody(s, body)
}

// handleBody decodes and answers a frame that passed flood control.
func (h *hub) handleBody(s *session, body []byte) {
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
	if h.beforeHandle != nil {
		h.beforeHandle(s, &req)
	}
	if err := h.dispatch(s, &req); err != nil && !errors.Is(err, errHeld) {
		h.replyError(s, err, req.Ref)
	}
}

func (h *hub) dispatch(s *session, req *codec.Request) error {
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
	}
	return fmt.Errorf("%w: %q", codec.ErrUnknownType, req.Type)
}

func (h *hub) handleLogin(s *session, req *codec.Request) error {
	if s.loggedIn {
		return codec.ErrAlreadyLoggedIn
	}
	if req.Nick == "" {
		return fmt.Errorf("%w: nick is required", codec.ErrBadRequest)
	}
	if !codec.ValidName(req.Nick, codec.DefaultMaxNick) {
		return fmt.Errorf("%w: a nick is 1 to %d letters, digits, '_', '-' or '.'", codec.ErrBadNick, codec.DefaultMaxNick)
	}
	if h.cluster != nil {
		return h.clusterLogin(s, req.Nick, foldNick(req.Nick), req.Ref)
	}
	// nick and key are set before the claim publishes s to other goroutines.
	s.nick, s.key = req.Nick, foldNick(req.Nick)
	if !h.nicks.claim(s.key, s) {
		s.nick, s.key = "", ""
		return fmt.Errorf("%w: %q is online already", codec.ErrNickTaken, req.Nick)
	}
	h.finishLogin(s, req.Ref)
	return nil
}

// finishLogin logs in s, which holds its nick: welcome, then the lobby.
func (h *hub) finishLogin(s *session, ref string) {
	s.loggedIn = true
	s.lastPing = s.lastSeen
	s.rooms = make(map[string]*room)
	h.sessions.add(s)
	online := int(h.online.Add(1) - 1)
	if h.cluster != nil {
		online = max(h.cluster.online()-1, 0)
	}
	s.send(codec.MustEncode(&codec.Welcome{ID: s.id.String(), Nick: s.nick, Room: codec.Lobby, Online: online, Ref: ref}))
	h.enterLobby(s)
	h.log.Info("login", s.logAttrs()...)
}

func (h *hub) handleSay(s *session, req *codec.Request) error {
	name := req.Room
	if name == "" {
		name = codec.Lobby
	}
	if err := h.checkRoom(name); err != nil {
		return err
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	r := s.rooms[name]
	if r == nil {
		return fmt.Errorf("%w: not in room %q", codec.ErrNotInRoom, name)
	}
	if h.cluster != nil {
		return h.clusterSay(s, r, req)
	}
	seq := h.say(s, r, req.Body)
	h.ack(s, req.Ref, seq)
	return nil
}

func (h *hub) handleDM(s *session, req *codec.Request) error {
	if req.To == "" {
		return fmt.Errorf("%w: to is required", codec.ErrBadRequest)
	}
	if !codec.ValidName(req.To, codec.DefaultMaxNick) {
		return fmt.Errorf("%w: %q is not a valid nick", codec.ErrBadNick, req.To)
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	to := h.nicks.get(foldNick(req.To))
	if to == nil && h.cluster != nil {
		return h.remoteDM(s, req)
	}
	if to == nil {
		return fmt.Errorf("%w: %q is not online", codec.ErrNoSuchUser, req.To)
	}
	to.send(codec.MustEncode(&codec.Msg{From: s.nick, To: to.nick, Body: req.Body, TS: h.wallMillis()}))
	h.ack(s, req.Ref, 0)
	return nil
}

func (h *hub) handleJoin(s *session, req *codec.Request) error {
	if err := h.requireRoom(req.Room); err != nil {
		return err
	}
	err := h.join(s, req.Room)
	if errors.Is(err, errNotReady) {
		return h.await(s, req, func() error { return h.cluster.establish(req.Room) })
	}
	if err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

func (h *hub) handleLeave(s *session, req *codec.Request) error {
	if err := h.requireRoom(req.Room); err != nil {
		return err
	}
	r := s.rooms[req.Room]
	if r == nil {
		return fmt.Errorf("%w: not in room %q", codec.ErrNotInRoom, req.Room)
	}
	h.leave(s, r, codec.ReasonLeave)
	h.ack(s, req.Ref, 0)
	return nil
}

func (h *hub) handleWho(s *session, req *codec.Request) error {
	afterKey := ""
	if req.After != "" {
		afterKey = foldNick(req.After)
	}
	var entries []nickEntry
	var count int
	switch {
	case req.Room == "" && h.cluster != nil:
		entries, count = h.cluster.usersAfter(afterKey)
	case req.Room == "":
		entries, count = h.nicks.after(afterKey), int(h.online.Load())
	default:
		if err := h.checkRoom(req.Room); err != nil {
			return err
		}
		r := h.rooms.get(req.Room)
		if h.cluster != nil && (r == nil || !r.isReady()) {
			return h.remoteWho(s, req, afterKey)
		}
		if r != nil {
			entries, count = r.membersAfter(afterKey)
		}
	}
	h.sendUsers(s, req, entries, count)
	return nil
}

func (h *hub) sendUsers(s *session, req *codec.Request, entries []nickEntry, count int) {
	nicks, more := whoPage(entries, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Room: req.Room, Count: count, Nicks: nicks, More: more, Ref: req.Ref}))
}

func (h *hub) requireRoom(name string) error {
	if name == "" {
		return fmt.Errorf("%w: room is required", codec.ErrBadRequest)
	}
	return h.checkRoom(name)
}

func (h *hub) checkRoom(name string) error {
	if !codec.ValidName(name, codec.DefaultMaxRoom) {
		return fmt.Errorf("%w: a room name is 1 to %d letters, digits, '_', '-' or '.'", codec.ErrBadRoom, codec.DefaultMaxRoom)
	}
	return nil
}

func (h *hub) checkBody(body string) error {
	switch {
	case body == "":
		return fmt.Errorf("%w: body is required", codec.ErrBadRequest)
	case len(body) > h.cfg.MaxBody:
		return fmt.Errorf("%w: body is %d bytes, the limit is %d", codec.ErrBodyTooLarge, len(body), h.cfg.MaxBody)
	}
	return nil
}

// ack answers a request that carried ref.
func (h *hub) ack(s *session, ref string, seq uint64) {
	if ref != "" {
		s.send(codec.MustEncode(&codec.Ack{Ref: ref, Seq: seq}))
	}
}

// replyError sends err to s as an error frame.
func (h *hub) replyError(s *session, err error, ref string) {
	s.send(errorFrame(err, ref))
}

func errorFrame(err error, ref string) []byte {
	code := codec.CodeOf(err)
	if code == "" {
		code = codec.CodeInternal
	}
	// "code: sentinel text: detail" becomes "detail" for people.
	msg := strings.TrimPrefix(err.Error(), string(code)+": ")
	if s := codec.Sentinel(code); s != nil && strings.HasPrefix(msg, s.Msg+": ") {
		msg = strings.TrimPrefix(msg, s.Msg+": ")
	}
	return codec.MustEncode(&codec.ErrorMsg{Code: code, Message: msg, Ref: ref})
}

func validRef(ref string) string {
	if len(ref) > codec.MaxRef {
		return ""
	}
	return ref
}

// protocolError answers a framing error and closes the session: the byte
// stream can no longer be trusted.
func (h *hub) protocolError(s *session, err error) {
	h.replyError(s, err, "")
	h.closeSession(s, codec.ReasonProtocolError)
}

// recoverPanic turns a panic while handling one frame into the end of that
// session alone.
func (h *hub) recoverPanic(s *session) {
	v := recover()
	if v == nil {
		return
	}
	h.log.Error("panic while handling a frame", append(s.logAttrs(), "panic", fmt.Sprint(v))...)
	h.replyError(s, codec.ErrInternal, "")
	h.closeSession(s, codec.ReasonInternalError)
}
