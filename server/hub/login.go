package hub

import (
	"errors"
	"fmt"

	"parley/codec"
	"parley/server/broker"
)

// Login: a session's first request. The name comes from a token or a
// nick (auth.go), the broker claims it (for a cluster), and the session
// enters the lobby with its welcome, resuming it if asked (resume.go).

func (h *Hub) handleLogin(s *Session, req *codec.Request) error {
	if s.loggedIn || s.key != "" {
		return codec.ErrAlreadyLoggedIn
	}
	name, err := h.loginName(s, req)
	if err == nil {
		err = h.mayLogin(s)
	}
	if err != nil {
		s.account, s.ident, s.expires = "", nil, 0
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
		c := broker.NickClaim{Key: name.Key, Nick: name.Display, Account: s.account, Resume: req.Resume, MaxSessions: h.cfg.MaxSessions}
		h.broker.ClaimNick(c, func(err error) {
			done(func() { h.claimed(s, name, ref, rs, err) })
		})
	})
}

// shareNick makes s one more session of its account's user, if the
// account is online here; errNotShared if it is not.
func (h *Hub) shareNick(s *Session, name codec.Name) error {
	// nick and key are set before the index publishes s to other goroutines.
	s.nick, s.key, s.order = name.Display, name.Key, codec.SortKey(name.Display)
	n, err := h.nicks.addSession(name.Key, s, h.cfg.MaxSessions, h.broker.Elsewhere(name.Key))
	if err != nil {
		s.nick, s.key, s.order = "", "", ""
		return err
	}
	h.broker.NickSessions(name.Key, n)
	return nil
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
		h.broker.ReleaseNick(name.Key, "")
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
	if s.loggedIn || s.key == "" {
		return
	}
	switch left := h.nicks.release(s.key, s); {
	case left == 0:
		h.broker.ReleaseNick(s.key, "")
	case left > 0:
		h.broker.NickSessions(s.key, left)
	}
}

// finishLogin logs in s, which holds its nick: welcome, then the lobby
// (and what s missed there, if it resumes).
func (h *Hub) finishLogin(s *Session, ref string, rs *resume) {
	s.loggedIn = true
	setFrameLimit(s.conn, h.maxFrame(s))
	s.lastPing = s.lastSeen
	s.resume = newResumeToken()
	h.online.Add(1)
	_, _, online := h.broker.Users("", 0)
	h.count.logins.Add(1)
	welcome := &codec.Welcome{ID: s.id.String(), Nick: s.nick, Room: codec.Lobby, Online: max(online-1, 0), Resume: s.resume, Expires: tokenExpires(s), Ref: ref}
	if s.account != "" {
		var dmSeq uint64
		welcome.DMEpoch, dmSeq = h.inboxState(s.account)
		welcome.DMSeq = &dmSeq
	}
	h.enterLobby(s, welcome, rs)
	if s.account != "" {
		h.afterLogin(s)
	}
	h.sessionEvent(s, true, "")
	h.debug(s, "login")
}
