package server

import (
	"errors"
	"fmt"
	"strings"

	"parley/codec"
)

// maxFrame is the largest frame s may send now: small until it logs in.
func (h *hub) maxFrame(s *session) int {
	if s.loggedIn {
		return h.cfg.MaxFrame
	}
	return h.cfg.MaxLoginFrame
}

// partial notes whether s has an incomplete frame waiting; one that waits
// longer than FrameTimeout closes the connection (the sweep checks).
func (h *hub) partial(s *session, waiting bool) {
	switch {
	case !waiting:
		s.partialSince = 0
	case s.partialSince == 0:
		s.partialSince = h.mono()
	}
}

// handleFrame decodes and answers one frame body from s. Loop goroutine of
// s. body is only valid during the call.
func (h *hub) handleFrame(s *session, body []byte) {
	s.lastSeen = h.mono()
	s.partialSince = 0
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
	name, err := codec.ParseNick(req.Nick)
	if err != nil {
		return err
	}
	if h.holds.blocks(name.Key, req.Resume, h.mono()) {
		return fmt.Errorf("%w: %q is held for its last session for up to %s", codec.ErrNickTaken, name.Display, h.cfg.NickHold)
	}
	if h.cluster != nil {
		return h.clusterLogin(s, name.Display, name.Key, req.Ref)
	}
	// nick and key are set before the claim publishes s to other goroutines.
	s.nick, s.key, s.order = name.Display, name.Key, codec.SortKey(name.Display)
	if !h.nicks.claim(s.key, s) {
		s.nick, s.key = "", ""
		return notOnline(codec.ErrNickTaken, name.Display, "is online already")
	}
	h.finishLogin(s, req.Ref)
	return nil
}

// notOnline words the error about a nick's presence, the same everywhere.
func notOnline(sentinel *codec.Error, nick, what string) error {
	return fmt.Errorf("%w: %q %s", sentinel, nick, what)
}

// finishLogin logs in s, which holds its nick: welcome, then the lobby.
func (h *hub) finishLogin(s *session, ref string) {
	s.loggedIn = true
	s.lastPing = s.lastSeen
	s.rooms = make(map[string]*room)
	s.resume = newResumeToken()
	h.sessions.add(s)
	h.who.add(s.order, s.nick)
	online := int(h.online.Add(1) - 1)
	if h.cluster != nil {
		online = max(h.cluster.online()-1, 0)
	}
	h.stats.logins.Add(1)
	s.send(codec.MustEncode(&codec.Welcome{ID: s.id.String(), Nick: s.nick, Room: codec.Lobby, Online: online, Resume: s.resume, Ref: ref}))
	h.enterLobby(s)
	h.log.Debug("login", s.logAttrs()...)
}

func (h *hub) handleSay(s *session, req *codec.Request) error {
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	if h.cluster != nil {
		return h.clusterSay(s, r, req)
	}
	seq := h.say(s, r, req.Body)
	h.ack(s, req.Ref, seq)
	return nil
}

// memberRoom returns the room called name (the lobby if empty) that s is
// in. A name spelled as the room is displayed is found without parsing.
func (h *hub) memberRoom(s *session, name string) (*room, error) {
	if name == "" {
		name = codec.Lobby
	}
	if r := s.rooms[name]; r != nil {
		return r, nil
	}
	n, err := codec.ParseRoom(name)
	if err != nil {
		return nil, err
	}
	if r := s.rooms[n.Display]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: not in room %q", codec.ErrNotInRoom, n.Display)
}

func (h *hub) handleDM(s *session, req *codec.Request) error {
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
	target := h.nicks.get(to.Key)
	if target == nil && h.cluster != nil {
		return h.remoteDM(s, req, to.Key)
	}
	if target == nil {
		return notOnline(codec.ErrNoSuchUser, to.Display, "is not online")
	}
	if target.queuedMem.Load() > int64(h.cfg.MaxOutbound/4) {
		return fmt.Errorf("%w: %q is not keeping up with its messages; try again later", codec.ErrRateLimited, target.nick)
	}
	target.send(h.dmFrame(s.nick, target.nick, req.Body))
	h.ack(s, req.Ref, 0)
	return nil
}

// dmFrame encodes a direct message.
func (h *hub) dmFrame(from, to, body string) []byte {
	return codec.MustEncode(&codec.Msg{From: from, To: to, Body: body, TS: h.wallMillis()})
}

func (h *hub) handleJoin(s *session, req *codec.Request) error {
	name, err := h.requireRoom(req.Room)
	if err != nil {
		return err
	}
	if _, in := s.rooms[name]; !in && !h.allowJoin(s) {
		return fmt.Errorf("%w: joining and leaving rooms too fast", codec.ErrRateLimited)
	}
	err = h.join(s, name)
	if errors.Is(err, errNotReady) {
		return h.await(s, req, func() error { return h.cluster.establish(name) })
	}
	if err != nil {
		return err
	}
	h.ack(s, req.Ref, 0)
	return nil
}

func (h *hub) handleLeave(s *session, req *codec.Request) error {
	if req.Room == "" {
		return fmt.Errorf("%w: room is required", codec.ErrBadRequest)
	}
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	if !h.allowJoin(s) {
		return fmt.Errorf("%w: joining and leaving rooms too fast", codec.ErrRateLimited)
	}
	h.leave(s, r, codec.ReasonLeave)
	h.ack(s, req.Ref, 0)
	return nil
}

// allowJoin takes a join or a leave out of s's budget for them.
func (h *hub) allowJoin(s *session) bool {
	return s.joins == nil || s.joins.Allow()
}

func (h *hub) handleWho(s *session, req *codec.Request) error {
	if !h.chargeWho(s) {
		return fmt.Errorf("%w: who costs %d frames of the rate limit", codec.ErrRateLimited, whoCost)
	}
	afterKey := ""
	if req.After != "" {
		// Checked, and its length bounded, before any folding.
		after, err := codec.ParseNick(req.After)
		if err != nil {
			return fmt.Errorf("%w: after is not a nick", codec.ErrBadRequest)
		}
		afterKey = codec.SortKey(after.Display)
	}
	if req.Room == "" {
		return h.whoOnline(s, req, afterKey)
	}
	room, err := codec.ParseRoom(req.Room)
	if err != nil {
		return err
	}
	req.Room = room.Display
	r := h.rooms.get(room.Display)
	if h.cluster != nil && (r == nil || !r.isReady()) {
		return h.remoteWho(s, req, afterKey)
	}
	var entries []nickEntry
	var count int
	if r != nil {
		entries, count = r.membersAfter(afterKey)
	}
	h.sendUsers(s, req, entries, count)
	return nil
}

// whoOnline answers who without a room from the sorted index of users.
func (h *hub) whoOnline(s *session, req *codec.Request, afterKey string) error {
	index := h.who.page
	if h.cluster != nil {
		index = h.cluster.usersAfter
	}
	entries, more, count := index(afterKey, codec.WhoPage)
	nicks, cut := whoPage(entries, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Count: count, Nicks: nicks, More: more || cut, Ref: req.Ref}))
	return nil
}

func (h *hub) sendUsers(s *session, req *codec.Request, entries []nickEntry, count int) {
	nicks, more := whoPage(entries, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Room: req.Room, Count: count, Nicks: nicks, More: more, Ref: req.Ref}))
}

// requireRoom checks a room name and returns its display form.
func (h *hub) requireRoom(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: room is required", codec.ErrBadRequest)
	}
	n, err := codec.ParseRoom(name)
	return n.Display, err
}

func (h *hub) checkBody(body string) error {
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
