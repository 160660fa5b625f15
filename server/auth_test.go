package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"parley/codec"
	"parley/server/hub"
)

// signer mints tokens in tests with keys made here, written where
// Config.AuthKeys reads them.
type signer struct {
	t       *testing.T
	dir     string
	ed      ed25519.PrivateKey
	ed2     ed25519.PrivateKey // a second kid, for rotation
	rsa     *rsa.PrivateKey
	rsaPEM  []byte // the RSA public key's PEM, which an attacker could use as an HS256 secret
	keySpec []string
}

func newSigner(t *testing.T) *signer {
	s := &signer{t: t, dir: t.TempDir()}
	var pub1, pub2 ed25519.PublicKey
	pub1, s.ed, _ = ed25519.GenerateKey(rand.Reader)
	pub2, s.ed2, _ = ed25519.GenerateKey(rand.Reader)
	var err error
	if s.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	for kid, pub := range map[string]any{"ed1": pub1, "ed2": pub2, "rsa1": &s.rsa.PublicKey} {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		if kid == "rsa1" {
			s.rsaPEM = p
		}
		path := filepath.Join(s.dir, kid+".pub")
		if err := os.WriteFile(path, p, 0o644); err != nil {
			t.Fatal(err)
		}
		s.keySpec = append(s.keySpec, path)
	}
	return s
}

func (s *signer) sign(m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	out, err := tok.SignedString(key)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// token is a valid EdDSA token for sub, living ttl.
func (s *signer) token(sub, name string, ttl time.Duration) string {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Unix(), "aud": "chat"}
	if name != "" {
		c["name"] = name
	}
	return s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", c)
}

func authServer(t *testing.T, s *signer, mode string, tweak func(*Config)) *Server {
	cfg := Config{Addr: "127.0.0.1:0", AuthKeys: s.keySpec, AuthAudience: "chat", Auth: mode}
	if tweak != nil {
		tweak(&cfg)
	}
	return startServer(t, cfg)
}

func tokenLogin(t *testing.T, srv *Server, token string) (*tclient, codec.Event) {
	t.Helper()
	c := dial(t, srv)
	c.send(&codec.Login{Token: token, Ref: "in"})
	return c, c.next()
}

// TestTokenLogins sends every forgery an attacker would try through a
// real login, then a valid token, on one server.
func TestTokenLogins(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", nil) // a key configured: auth required by default
	now := time.Now()
	claims := func(drop string, set map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "amy", "exp": now.Add(time.Minute).Unix(), "aud": "chat"}
		delete(c, drop)
		for k, v := range set {
			c[k] = v
		}
		return c
	}
	valid := s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", claims("", nil))
	parts := strings.Split(valid, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","exp":9999999999,"aud":"chat"}`))
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name, token string
		want        codec.Code
	}{
		{"expired", s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", claims("", map[string]any{"exp": now.Add(-time.Hour).Unix()})), codec.CodeTokenExpired},
		{"wrong key", s.sign(jwt.SigningMethodEdDSA, otherKey, "ed1", claims("", nil)), codec.CodeBadToken},
		{"alg none", s.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ed1", claims("", nil)), codec.CodeBadToken},
		{"HS256 with the RSA public key as secret", s.sign(jwt.SigningMethodHS256, s.rsaPEM, "rsa1", claims("", nil)), codec.CodeBadToken},
		{"missing exp", s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", claims("exp", nil)), codec.CodeBadToken},
		{"wrong aud", s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", claims("", map[string]any{"aud": "elsewhere"})), codec.CodeBadToken},
		{"tampered payload", parts[0] + "." + forged + "." + parts[2], codec.CodeBadToken},
		{"no token", "", codec.CodeBadToken},
	}
	for _, c := range cases {
		_, ev := tokenLogin(t, srv, c.token)
		if ev.Type != codec.TypeError || ev.Code != c.want {
			t.Errorf("%s: got %+v, want error %s", c.name, ev, c.want)
		}
		if strings.Contains(ev.Message, "signature") || strings.Contains(ev.Message, "alg") {
			t.Errorf("%s: the error tells an attacker which check failed: %q", c.name, ev.Message)
		}
	}
	for _, kid := range []struct {
		id  string
		key any
		m   jwt.SigningMethod
	}{{"ed1", s.ed, jwt.SigningMethodEdDSA}, {"ed2", s.ed2, jwt.SigningMethodEdDSA}, {"rsa1", s.rsa, jwt.SigningMethodRS256}} {
		sub := "user-" + kid.id
		_, ev := tokenLogin(t, srv, s.sign(kid.m, kid.key, kid.id, jwt.MapClaims{"sub": sub, "exp": now.Add(time.Minute).Unix(), "aud": "chat"}))
		if ev.Type != codec.TypeWelcome || ev.Nick != sub || ev.Expires != now.Add(time.Minute).Unix()*1000 || ev.DMEpoch == "" {
			t.Errorf("kid %s: got %+v, want a welcome as %s with the token's expiry and DM epoch", kid.id, ev, sub)
		}
	}
	if got := srv.Stats().BadLogins; got != int64(len(cases)) {
		t.Errorf("Stats.BadLogins = %d, want %d", got, len(cases))
	}
}

// TestTokenRefreshAndExpiry: a refresh before expiry keeps the session
// past the first token's end; a session that does not refresh gets bye
// token_expired once its token and the grace have passed.
func TestTokenRefreshAndExpiry(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "required", func(c *Config) { c.TokenGrace = 100 * time.Millisecond })
	life := 2 * time.Second // whole seconds: exp is in seconds
	keeper, ev := tokenLogin(t, srv, s.token("keeper", "", life))
	if ev.Type != codec.TypeWelcome {
		t.Fatalf("login: %+v", ev)
	}
	lapser, ev := tokenLogin(t, srv, s.token("lapser", "", life))
	if ev.Type != codec.TypeWelcome {
		t.Fatalf("login: %+v", ev)
	}
	keeper.send(&codec.Refresh{Token: s.token("Keeper", "", time.Hour), Ref: "r1"}) // the same account, case-folded
	ack := keeper.untilAck("r1")
	if ack.Expires < time.Now().Add(50*time.Minute).UnixMilli() {
		t.Fatalf("refresh ack %+v does not carry the new expiry", ack)
	}
	keeper.send(&codec.Refresh{Token: s.token("someone-else", "", time.Hour), Ref: "r2"})
	if e := keeper.until("refused refresh", func(e codec.Event) bool { return e.Ref == "r2" }); e.Code != codec.CodeBadToken {
		t.Fatalf("a refresh for another account got %+v", e)
	}
	lapser.untilBye(codec.ReasonTokenExpired)
	// The lapser's bye came after the first token's end and the grace:
	// the keeper, whose first token ended as long ago, still answers.
	keeper.send(&codec.Ping{})
	keeper.until("pong", func(e codec.Event) bool { return e.Type == codec.TypePong })
	if got := srv.Stats().Closes[codec.ReasonTokenExpired]; got != 1 {
		t.Fatalf("closes by token_expired = %d, want 1", got)
	}
}

// TestAccountSessions: two sessions of one account share its nick: a DM
// reaches both and is kept for the account, the lobby shows the nick
// once, and left comes when the last session leaves.
func TestAccountSessions(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "required", func(c *Config) { c.MaxSessionsPerUser = 2 })
	watcher, _ := tokenLogin(t, srv, s.token("wendy", "", time.Hour))
	phone, w1 := tokenLogin(t, srv, s.token("Amy", "amy", time.Hour))
	watcher.until("amy joined", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == "amy" })
	laptop, w2 := tokenLogin(t, srv, s.token("amy", "amy", time.Hour))
	if w1.Type != codec.TypeWelcome || w2.Type != codec.TypeWelcome || w2.Nick != "amy" || w2.DMEpoch != w1.DMEpoch {
		t.Fatalf("welcomes %+v and %+v: want both as amy, with one DM epoch", w1, w2)
	}
	if _, ev := tokenLogin(t, srv, s.token("amy", "amy", time.Hour)); ev.Code != codec.CodeTooManySessions {
		t.Fatalf("a third session got %+v, want too_many_sessions", ev)
	}
	if _, ev := tokenLogin(t, srv, s.token("mallory", "amy", time.Hour)); ev.Code != codec.CodeNickTaken {
		t.Fatalf("another account named amy got %+v, want nick_taken", ev)
	}
	watcher.send(&codec.Who{Room: codec.Lobby, Ref: "w"})
	users := watcher.until("who", func(e codec.Event) bool { return e.Type == codec.TypeUsers })
	if users.Count != 2 || strings.Join(users.Nicks, ",") != "amy,wendy" {
		t.Fatalf("who lobby = %d %v, want amy once and wendy", users.Count, users.Nicks)
	}
	watcher.send(&codec.DM{To: "AMY", Body: "hello both", Ref: "d"})
	sent := watcher.untilAck("d")
	for _, c := range []*tclient{phone, laptop} {
		m := c.until("the dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.To != "" })
		if m.Body != "hello both" || m.From != "wendy" || m.Seq != 1 {
			t.Fatalf("dm %+v, want wendy's with seq 1 in amy's DMs", m)
		}
	}
	if sent.Seq != 1 {
		t.Fatalf("wendy's ack %+v: want seq 1 in her own DMs", sent)
	}
	// A DM amy's phone sends reaches her laptop too, as her DMs' seq 2.
	phone.send(&codec.DM{To: "wendy", Body: "from the phone", Ref: "p"})
	if ack := phone.untilAck("p"); ack.Seq != 2 {
		t.Fatalf("phone's ack %+v, want seq 2", ack)
	}
	if m := laptop.until("the echo", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Body == "from the phone" }); m.Seq != 2 || m.To != "wendy" {
		t.Fatalf("laptop got %+v", m)
	}
	laptop.send(&codec.History{DM: true, Ref: "h"})
	page := laptop.until("dm history", func(e codec.Event) bool { return e.Type == codec.TypeHistory })
	if !page.DM || len(page.Msgs) != 2 || page.Msgs[0].Body != "hello both" || page.Msgs[1].Seq != 2 || page.Epoch != w1.DMEpoch {
		t.Fatalf("dm history %+v", page)
	}
	since := uint64(1)
	laptop.send(&codec.History{DM: true, Since: &since, Ref: "h2"})
	if page := laptop.until("dm history since 1", func(e codec.Event) bool { return e.Type == codec.TypeHistory }); len(page.Msgs) != 1 || page.Msgs[0].Seq != 2 {
		t.Fatalf("dm history since 1: %+v", page)
	}
	phone.send(&codec.Quit{})
	phone.expectBye(codec.ReasonQuit)
	laptop.send(&codec.Quit{})
	laptop.expectBye(codec.ReasonQuit)
	left := watcher.until("amy left", func(e codec.Event) bool { return e.Type == codec.TypeLeft || e.Type == codec.TypeJoined })
	if left.Type != codec.TypeLeft || left.Nick != "amy" || left.Reason != codec.ReasonQuit {
		t.Fatalf("watcher got %+v after both sessions quit, want one left", left)
	}
	// Nothing more about amy: the first session's quit said nothing.
	watcher.send(&codec.Ping{})
	if ev := watcher.next(); ev.Type != codec.TypePong {
		t.Fatalf("after left: %+v, want only the pong", ev)
	}
}

// TestGuestsAndNickLogins: with auth optional a login without a token is
// a guest whose nick cannot be an account's; without auth no DM is kept.
func TestGuestsAndNickLogins(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", nil)
	guest := dial(t, srv)
	w := guest.login("amy")
	if w.Nick != "~amy" || w.DMEpoch != "" || w.Expires != 0 {
		t.Fatalf("guest welcome %+v, want ~amy without DMs or expiry", w)
	}
	acct, w2 := tokenLogin(t, srv, s.token("amy", "", time.Hour))
	if w2.Nick != "amy" {
		t.Fatalf("the account amy next to guest ~amy got %+v", w2)
	}
	other := dial(t, srv)
	other.send(&codec.Login{Nick: "~bob"})
	other.expectError(codec.CodeBadNick)
	acct.send(&codec.DM{To: "~amy", Body: "hi guest", Ref: "d"})
	if ack := acct.untilAck("d"); ack.Seq != 1 {
		t.Fatalf("account's ack %+v: its sent DM is kept as seq 1", ack)
	}
	if m := guest.until("dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != 0 || m.From != "amy" {
		t.Fatalf("guest got %+v: a guest's DMs are not kept, so carry no seq", m)
	}
	guest.send(&codec.History{DM: true, Ref: "h"})
	guest.expectError(codec.CodeBadRequest)
	guest.send(&codec.Refresh{Token: s.token("amy", "", time.Hour), Ref: "r"})
	guest.expectError(codec.CodeBadRequest)

	open := startServer(t, Config{Addr: "127.0.0.1:0"}) // auth off
	a, b := loggedIn(t, open, "ann"), loggedIn(t, open, "ben")
	a.send(&codec.DM{To: "ben", Body: "x", Ref: "d"})
	if ack := a.untilAck("d"); ack.Seq != 0 {
		t.Fatalf("without auth a DM is not kept: ack %+v", ack)
	}
	if m := b.until("dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != 0 {
		t.Fatalf("without auth: %+v", m)
	}
	if open.Stats().Inboxes != 0 {
		t.Fatal("an inbox was made without auth")
	}
}

// TestBadLoginsPerAddress: failed logins from one address past the limit
// close its sessions with bye flood; the sessions of others go on.
func TestBadLoginsPerAddress(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "required", func(c *Config) { c.RateLimit = -1 })
	good, _ := tokenLogin(t, srv, s.token("good", "", time.Hour))
	c := dial(t, srv)
	for i := 0; i < hub.BadLoginsPerAddress; i++ {
		c.send(&codec.Login{Token: "garbage", Ref: "x"})
		c.expectError(codec.CodeBadToken)
	}
	c.send(&codec.Login{Token: "garbage", Ref: "x"})
	c.untilBye(codec.ReasonFlood)
	good.send(&codec.Ping{})
	good.expect(codec.TypePong)
}
