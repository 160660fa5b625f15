package hub

import (
	"errors"
	"fmt"
	"strings"

	"parley/codec"
	"parley/server/broker"
)

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
	}
	return fmt.Errorf("%w: %q", codec.ErrUnknownType, req.Type)
}

func (h *Hub) handleLogin(s *Session, req *codec.Request) error {
	if s.loggedIn || s.key != "" {
		return codec.ErrAlreadyLoggedIn
	}
	name, err := h.loginName(s, req)
	if err != nil {
		s.account, s.expires = "", 0
		return err
	}
	if h.holds.blocks(name.Key, req.Resume, s.account, h.mono()) {
		s.account, s.expires = "", 0
		return fmt.Errorf("%w: %q is held for its last session for up to %s", codec.ErrNickTaken, name.Display, h.cfg.NickHold)
	}
	ref, rs := req.Ref, resumeOf(req)
	if s.account != "" {
		switch err := h.shareNick(s, name); {
		case err == nil:
			return h.enterAsUser(s, ref, rs)
		case !errors.Is(err, errNotShared):
			s.account, s.expires = "", 0
			return err
		}
	}
	if h.nicks.online(name.Key) || !h.claiming.add(name.Key) {
		s.account, s.expires = "", 0
		return codec.NotOnline(codec.ErrNickTaken, name.Display)
	}
	return h.call(s, func(done func(func())) {
		h.broker.ClaimNick(name.Key, name.Display, func(err error) {
			done(func() { h.claimed(s, name, ref, rs, err) })
		})
	})
}

// shareNick makes s one more session of its account's user, if the
// account is online here; errNotShared if it is not.
func (h *Hub) shareNick(s *Session, name codec.Name) error {
	// nick and key are set before the index publishes s to other goroutines.
	s.nick, s.key, s.order = name.Display, name.Key, codec.SortKey(name.Display)
	err := h.nicks.addSession(name.Key, s, h.cfg.MaxSessions)
	if err != nil {
		s.nick, s.key, s.order = "", "", ""
	}
	return err
}

// resume is where a client left a room: the last seq it saw and the
// room's epoch then; and what was read from the cluster's log for it.
type resume struct {
	since    uint64
	epoch    string
	pre      []broker.Logged
	read     bool // pre was read: do not read again
	reserved bool // the server's replay budget was drawn on: do not again
}

// resumeOf is the resume a login or join asks for, or nil.
func resumeOf(req *codec.Request) *resume {
	if req.Since == nil {
		return nil
	}
	return &resume{since: *req.Since, epoch: req.Epoch}
}

// claimed finishes a login once the broker has claimed the nick (or
// failed to). Loop goroutine of s.
func (h *Hub) claimed(s *Session, name codec.Name, ref string, rs *resume, err error) {
	defer h.claiming.remove(name.Key)
	switch {
	case err != nil:
		s.account, s.expires = "", 0
		if !s.closed && !s.closing {
			h.replyError(s, err, ref)
		}
	case s.closed || s.closing:
		h.broker.ReleaseNick(name.Key, false)
	default:
		// nick and key are set before the claim publishes s to other goroutines.
		s.nick, s.key, s.order = name.Display, name.Key, codec.SortKey(name.Display)
		h.nicks.claim(s.key, s) // claiming kept it free here
		h.enterAsUser(s, ref, rs)
	}
}

// enterAsUser logs in s, which the nick index holds: at once, or once
// the server's replay budget has room for its lobby resume (errHeld
// meanwhile) and what that resume needs is read from the cluster's log.
func (h *Hub) enterAsUser(s *Session, ref string, rs *resume) error {
	h.lobby.mu.Lock()
	wait := h.replayWaitLocked(s, h.lobby, rs)
	read := h.needsLog(h.lobby, rs)
	h.lobby.mu.Unlock()
	again := func() {
		if s.closed || s.closing {
			h.abandonLogin(s)
			return
		}
		_ = h.enterAsUser(s, ref, rs)
	}
	switch {
	case wait > 0:
		return h.after(s, wait, again)
	case read:
		return h.readForResume(s, codec.Lobby, rs, func() {
			if s.closed || s.closing {
				h.abandonLogin(s)
				return
			}
			h.finishLogin(s, ref, rs)
		})
	}
	h.finishLogin(s, ref, rs)
	return nil
}

// abandonLogin gives back the nick of a session that closed before its
// login finished.
func (h *Hub) abandonLogin(s *Session) {
	if !s.loggedIn && s.key != "" && h.nicks.release(s.key, s) {
		h.broker.ReleaseNick(s.key, false)
	}
}

// finishLogin logs in s, which holds its nick: welcome, then the lobby
// (and what s missed there, if it resumes).
func (h *Hub) finishLogin(s *Session, ref string, rs *resume) {
	s.loggedIn = true
	setFrameLimit(s.conn, h.maxFrame(s))
	s.lastPing = s.lastSeen
	s.rooms = make(map[string]*room)
	s.resume = newResumeToken()
	h.online.Add(1)
	_, _, online := h.broker.Users("", 0)
	h.stats.logins.Add(1)
	welcome := &codec.Welcome{ID: s.id.String(), Nick: s.nick, Room: codec.Lobby, Online: max(online-1, 0), Resume: s.resume, Expires: tokenExpires(s), Ref: ref}
	if s.account != "" {
		var dmSeq uint64
		welcome.DMEpoch, dmSeq = h.inboxState(s.account)
		welcome.DMSeq = &dmSeq
	}
	h.enterLobby(s, welcome, rs)
	h.log.Debug("login", s.logAttrs()...)
}

func (h *Hub) handleSay(s *Session, req *codec.Request) error {
	defer h.trimHistory() // once the room's lock is let go
	r, err := h.memberRoom(s, req.Room)
	if err != nil {
		return err
	}
	if err := h.checkBody(req.Body); err != nil {
		return err
	}
	if err := checkSayID(req.ID); err != nil {
		return err
	}
	m := broker.Message{Room: r.name, Key: s.key, Nick: s.nick, Body: req.Body, ID: req.ID, TS: h.wallMillis(), Sender: s, Ref: req.Ref}
	seq, pending, err := h.broker.Say(m, s, req.Ref)
	switch {
	case errors.Is(err, broker.ErrUnsequenced):
		h.sayUnsequenced(s, r, m)
	case err != nil:
		return unavailable(err)
	case pending:
		return nil // the broker answers through s.SayDone
	case h.storeAcks(req.Ref):
		return nil // the store acks it once the disk has it (sequenceLocked)
	}
	h.ack(s, req.Ref, seq)
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

func (h *Hub) handleJoin(s *Session, req *codec.Request) error {
	name, err := h.requireRoom(req.Room)
	if err != nil {
		return err
	}
	if _, in := s.rooms[name]; !in {
		if !h.allowJoin(s) {
			return fmt.Errorf("%w: joining and leaving rooms too fast", codec.ErrRateLimited)
		}
		if err := h.allowCreate(s, name); err != nil {
			return err
		}
	}
	return h.join(s, name, req.Ref, resumeOf(req))
}

func (h *Hub) handleLeave(s *Session, req *codec.Request) error {
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
func (h *Hub) allowJoin(s *Session) bool {
	return s.joins == nil || s.joins.Allow()
}

func (h *Hub) handleWho(s *Session, req *codec.Request) error {
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
		h.whoOnline(s, req, afterKey)
		return nil
	}
	room, err := codec.ParseRoom(req.Room)
	if err != nil {
		return err
	}
	req.Room = room.Display
	r := h.rooms.get(room.Display)
	if r == nil || !r.isFollowed() {
		return h.whoElsewhere(s, req, afterKey)
	}
	entries, count := r.membersAfter(afterKey)
	h.sendUsers(s, req, entries, count)
	return nil
}

// whoOnline answers who without a room from the broker's sorted directory.
func (h *Hub) whoOnline(s *Session, req *codec.Request, afterKey string) {
	users, more, count := h.broker.Users(afterKey, codec.WhoPage) // sorted already
	nicks, cut := cutPage(len(users), func(i int) string { return users[i].Nick }, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Count: count, Nicks: nicks, More: more || cut, Ref: req.Ref}))
}

// whoElsewhere lists a room this node does not follow: its members on
// other nodes, from the broker, and any here.
func (h *Hub) whoElsewhere(s *Session, req *codec.Request, afterKey string) error {
	again := *req
	return h.call(s, func(done func(func())) {
		h.broker.Members(again.Room, func(members []broker.User) {
			done(func() { h.sendMembers(s, &again, afterKey, members) })
		})
	})
}

// sendMembers answers who with members elsewhere and any here.
func (h *Hub) sendMembers(s *Session, req *codec.Request, afterKey string, members []broker.User) {
	if s.closing || s.closed {
		return
	}
	members = append(members, handler{h}.LocalMembers(req.Room)...)
	var entries []nickEntry
	for _, m := range members {
		if k := codec.SortKey(m.Nick); k > afterKey {
			entries = append(entries, nickEntry{k, m.Nick})
		}
	}
	h.sendUsers(s, req, entries, len(members))
}

func (h *Hub) sendUsers(s *Session, req *codec.Request, entries []nickEntry, count int) {
	nicks, more := whoPage(entries, codec.WhoPage, h.cfg.MaxFrame-1024)
	s.send(codec.MustEncode(&codec.Users{Room: req.Room, Count: count, Nicks: nicks, More: more, Ref: req.Ref}))
}

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
