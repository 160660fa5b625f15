package client

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"parley/api"
	"parley/codec"
	"parley/server"
	"parley/server/auth"
	"parley/server/tlstest"
)

// tokens signs tokens for a test server that requires them.
type tokens struct {
	alg  string
	key  any
	pub  string
	mu   sync.Mutex
	sub  string
	ttl  time.Duration
	made atomic.Int64
}

func newTokens(t *testing.T, sub string, ttl time.Duration) *tokens {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := auth.WriteKeyPair(priv, pub); err != nil {
		t.Fatal(err)
	}
	alg, key, err := auth.LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &tokens{alg: alg, key: key, pub: pub, sub: sub, ttl: ttl}
}

// source is an Options.Token that counts the tokens it made.
func (tk *tokens) source(context.Context) (string, error) {
	tk.mu.Lock()
	sub, ttl := tk.sub, tk.ttl
	tk.mu.Unlock()
	tk.made.Add(1)
	return auth.Sign(tk.alg, tk.key, auth.Token{Subject: sub, KeyID: "k", TTL: ttl}, time.Now())
}

// TestTokenRefreshKeepsTheSession: with tokens that live 2 s and a grace
// of 100 ms, the client refreshes before each expiry, so the session
// outlives several tokens; the source is asked for each.
func TestTokenRefreshKeepsTheSession(t *testing.T) {
	tk := newTokens(t, "amy", 2*time.Second)
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}, TokenGrace: 100 * time.Millisecond})
	c, err := Dial(ctxT(t), srv.Addr().String(), Options{Token: tk.source})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Nick() != "amy" {
		t.Fatalf("nick %q, want the token's", c.Nick())
	}
	id := c.ID()
	deadline := time.Now().Add(4500 * time.Millisecond) // past two tokens' lives
	for time.Now().Before(deadline) {
		if _, err := c.Say(ctxT(t), "", "alive"); err != nil {
			t.Fatalf("say at %s: %v", time.Until(deadline), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.ID() != id {
		t.Fatal("the session was replaced: the token expired")
	}
	if n := tk.made.Load(); n < 3 {
		t.Fatalf("%d tokens made, want the login's and at least two refreshes", n)
	}
	if srv.Stats().Closes[codec.ReasonTokenExpired] != 0 {
		t.Fatal("a session was closed for its token")
	}
}

// TestTokenSourceOnReconnect: every reconnect asks the source again, and
// a TLS dial works the same way.
func TestTokenSourceOnReconnect(t *testing.T) {
	tk := newTokens(t, "amy", time.Hour)
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, t.TempDir(), 1)
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}, TLSAddr: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	proxy := newProxy(t, srv.TLSAddr().String())
	c, err := Dial(ctxT(t), proxy.addr, Options{Token: tk.source, Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tk.mu.Lock()
	tk.sub = "Amy" // the file was rotated: the same account, another token
	tk.mu.Unlock()
	proxy.cut()
	next(t, c, EventReconnected)
	if n := tk.made.Load(); n < 2 {
		t.Fatalf("%d tokens made, want one per connection", n)
	}
	if _, err := c.Say(ctxT(t), "", "back"); err != nil {
		t.Fatal(err)
	}
}

// TestDMsCaughtUpAfterReconnect: direct messages that reach the account
// while this session is away (another of its sessions is online, so they
// are delivered and kept) come to it as Filled events after it
// reconnects, each once, before nothing is lost.
func TestDMsCaughtUpAfterReconnect(t *testing.T) {
	tk := newTokens(t, "amy", time.Hour)
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}, NickHold: -1})
	addr := srv.Addr().String()
	release := make(chan struct{})
	var dials atomic.Int64
	var live atomic.Pointer[net.Conn]
	dialer := func(ctx context.Context, a string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			live.Store(&c)
		}
		return c, err
	}
	phone, err := Dial(ctxT(t), addr, Options{Token: tk.source, Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Dial: dialer})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	laptop, err := Dial(ctxT(t), addr, Options{Token: tk.source})
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.Close()
	bobTok := newTokensWithKey(tk, "bob")
	bob, err := Dial(ctxT(t), addr, Options{Token: bobTok.source})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.DM(ctxT(t), "amy", "before"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, phone, codec.TypeMsg); ev.Body != "before" || ev.Seq != 1 {
		t.Fatalf("phone got %+v", ev)
	}
	(*live.Load()).Close() // the phone's connection drops; its redial waits
	next(t, phone, EventReconnecting)
	for _, body := range []string{"while away 1", "while away 2"} {
		if err := bob.DM(ctxT(t), "amy", body); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, laptop, codec.TypeMsg); ev.Body != "before" {
		t.Fatalf("laptop got %+v", ev)
	}
	next(t, laptop, codec.TypeMsg)
	next(t, laptop, codec.TypeMsg) // both reached the account
	close(release)
	var got []string
	for len(got) < 3 {
		ev := next(t, phone, codec.TypeMsg)
		if ev.Filled != (ev.Body != "live") {
			t.Fatalf("%+v: Filled should mark exactly the caught-up ones", ev)
		}
		got = append(got, ev.Body)
		if len(got) == 2 {
			if err := bob.DM(ctxT(t), "amy", "live"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := "while away 1,while away 2,live"; strings.Join(got, ",") != want {
		t.Fatalf("phone got %v after reconnecting, want %s", got, want)
	}
	msgs, more, err := phone.DMHistory(ctxT(t), 4, 2) // the two before seq 4
	if err != nil || more != true || len(msgs) != 2 || msgs[0].Body != "while away 1" || msgs[1].Seq != 3 {
		t.Fatalf("DMHistory = %+v, more %v, %v", msgs, more, err)
	}
}

// newTokensWithKey signs for another account with tk's key.
func newTokensWithKey(tk *tokens, sub string) *tokens {
	return &tokens{alg: tk.alg, key: tk.key, pub: tk.pub, sub: sub, ttl: tk.ttl}
}

// TestNoReconnectAfterDisconnect: when the application ends the
// account's sessions through the server API, a client that reconnects
// after drops stops instead, with the bye's reason.
func TestNoReconnectAfterDisconnect(t *testing.T) {
	tk := newTokens(t, "amy", time.Hour)
	keyFile := filepath.Join(t.TempDir(), "app.key")
	key := strings.Repeat("k", 40)
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}, APIAddr: "127.0.0.1:0", APIKeys: []string{keyFile}})
	c, err := Dial(ctxT(t), srv.Addr().String(), Options{Token: tk.source, Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	app := api.NewClient("http://"+srv.APIAddr().String(), key, nil)
	if _, err := app.Disconnect(ctxT(t), api.Disconnect{Account: "amy", Message: "closed"}); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventDisconnected)
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "disconnected") {
		t.Fatalf("disconnected with %v, want the bye's reason", ev.Err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events must close after disconnected")
	}
}
