package hub

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/codec"
	"parley/server/auth"
)

// Logins with tokens (docs/PROTOCOL.md "Tokens and accounts"): a token
// names an account, whose sessions share its nick, its direct messages
// and its presence; the token expires, and the session with it unless a
// refresh brings a new one.

// loginName is the nick a login asks for: the token's name when it logs
// in an account (s.account is then set), else its nick, a guest's under
// AuthOptional. A token that fails counts against the session and its
// address (failedLogin).
func (h *Hub) loginName(s *Session, req *codec.Request) (codec.Name, error) {
	if req.Token != "" && h.cfg.Auth != AuthOff {
		id, err := h.verify(req.Token)
		if err != nil {
			h.failedLogin(s)
			return codec.Name{}, err
		}
		name, err := codec.ParseNick(id.Name)
		if err != nil || codec.IsGuest(name.Display) {
			return codec.Name{}, fmt.Errorf("%w: the token's name is not a valid nick", codec.ErrBadNick)
		}
		s.account, s.ident, s.expires = auth.AccountKey(id.Subject), &id, h.expiry(id.Expires)
		return name, nil
	}
	if h.cfg.Auth == AuthRequired {
		h.failedLogin(s)
		return codec.Name{}, fmt.Errorf("%w: this server requires a token", codec.ErrBadToken)
	}
	if req.Nick == "" {
		return codec.Name{}, fmt.Errorf("%w: nick is required", codec.ErrBadRequest)
	}
	if codec.IsGuest(req.Nick) {
		return codec.Name{}, fmt.Errorf("%w: %q starts guests' nicks, which the server gives", codec.ErrBadNick, codec.GuestPrefix)
	}
	name, err := codec.ParseNick(req.Nick)
	if err == nil && h.cfg.Auth == AuthOptional {
		name, err = codec.ParseNick(codec.GuestPrefix + name.Display)
	}
	return name, err
}

// verify checks a token; the error says only bad_token or token_expired.
func (h *Hub) verify(token string) (auth.Identity, error) {
	id, err := h.cfg.Verifier.Verify(token)
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return id, codec.ErrTokenExpired
	case err != nil:
		return id, codec.ErrBadToken
	}
	return id, nil
}

// expiry is the monotonic time past which a token that expires at exp
// no longer holds a session: exp plus the grace.
func (h *Hub) expiry(exp time.Time) int64 {
	return h.mono() + int64(time.Until(exp)+h.cfg.TokenGrace)
}

// tokenExpires is what welcome and a refresh's ack say about s's token.
func tokenExpires(s *Session) int64 {
	if s.account == "" {
		return 0
	}
	return s.ident.Expires.UnixMilli()
}

// handleRefresh replaces the token of a session logged in with one, by a
// new token for the same account.
func (h *Hub) handleRefresh(s *Session, req *codec.Request) error {
	if s.account == "" {
		return fmt.Errorf("%w: refresh is for sessions that logged in with a token", codec.ErrBadRequest)
	}
	if req.Token == "" {
		return fmt.Errorf("%w: token is required", codec.ErrBadRequest)
	}
	if !h.charge(s, refreshCost) {
		return fmt.Errorf("%w: a refresh costs %d frames of the rate limit", codec.ErrRateLimited, refreshCost)
	}
	id, err := h.verify(req.Token)
	if err == nil && auth.AccountKey(id.Subject) != s.account {
		err = fmt.Errorf("%w: the token is for another account", codec.ErrBadToken)
	}
	if err != nil {
		h.failedLogin(s)
		return err
	}
	if err := h.mayHold(s.account, &id); err != nil {
		return err
	}
	s.ident.Expires, s.ident.Rooms, s.ident.Role = id.Expires, id.Rooms, id.Role
	s.ident.Issued, s.ident.ID = id.Issued, id.ID
	s.expires = h.expiry(id.Expires)
	if req.Ref != "" {
		s.send(codec.MustEncode(&codec.Ack{Ref: req.Ref, Expires: id.Expires.UnixMilli()}))
	}
	return nil
}

// Failed logins (a bad or expired token, a missing one where required)
// cost the session loginFailCost frames of its flood budget, and count
// against its address: past BadLoginsPerAddress in badLoginWindow, the
// address's sessions are closed with bye flood at their next failure.
const (
	loginFailCost = 10
	// BadLoginsPerAddress is the most failed logins one address may make
	// in a minute.
	BadLoginsPerAddress = 20
	badLoginWindow      = time.Minute
	maxFailingIPs       = 1 << 16
)

// failedLogin charges a failed login to s and its address.
func (h *Hub) failedLogin(s *Session) {
	h.count.badLogins.Add(1)
	if s.limiter != nil {
		s.limiter.AllowN(time.Now(), loginFailCost-1) // the frame itself was charged already
	}
	if h.loginFails.add(s.ip, h.mono()) {
		h.warn.warn("bad-logins", "too many failed logins from one address; closing", s.logAttrs()...)
		h.closeSession(s, codec.ReasonFlood)
	}
}

// loginFailures counts failed logins per address in fixed windows. Safe
// from any goroutine.
type loginFailures struct {
	mu sync.Mutex
	m  map[string]*failWindow
}

type failWindow struct {
	n     int
	start int64 // monotonic nanoseconds
}

// add counts a failure from ip at now and reports whether ip is over
// the limit. A full table counts every new address as over: failures
// from that many addresses at once are an attack.
func (f *loginFailures) add(ip string, now int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]*failWindow)
	}
	w := f.m[ip]
	switch {
	case w == nil && len(f.m) >= maxFailingIPs:
		return true
	case w == nil || now-w.start > int64(badLoginWindow):
		w = &failWindow{start: now}
		f.m[ip] = w
	}
	w.n++
	return w.n > BadLoginsPerAddress
}

// expire forgets the windows that ended.
func (f *loginFailures) expire(now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ip, w := range f.m {
		if now-w.start > int64(badLoginWindow) {
			delete(f.m, ip)
		}
	}
}
