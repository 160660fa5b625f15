package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"parley/codec"
)

// Server-wide moderation (docs/PROTOCOL.md): admins ban accounts and
// addresses, revoke tokens and lock the server down, over the protocol
// and the admin port.

// adminPost sends a JSON body to the admin port and returns the status.
func adminPost(t *testing.T, srv *Server, method, path string, body any) (int, string) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://"+srv.AdminAddr().String()+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// TestServerBanAccount: an admin's ban ends every session of the account
// with bye banned (its rooms see left banned) and refuses its logins;
// members cannot ban; the ban is listed, lifted, and logged.
func TestServerBanAccount(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.RateLimit = -1 })
	root := account(t, srv, s, "root", jwt.MapClaims{"role": "admin"})
	amy := account(t, srv, s, "amy", nil)
	eve, eve2 := account(t, srv, s, "eve", nil), account(t, srv, s, "eve", nil)
	amy.joinRoom("den")
	eve.joinRoom("den")

	amy.refused(&codec.ServerBan{Type: codec.TypeServerBan, Account: "eve", Ref: "b0"}, "b0", codec.CodeForbidden)
	amy.refused(&codec.ListBans{Ref: "l0"}, "l0", codec.CodeForbidden)
	root.ok(&codec.ServerBan{Type: codec.TypeServerBan, Account: "eve", Reason: "abuse", Ref: "b1"}, "b1")
	eve.untilBye(codec.ReasonBanned)
	eve2.untilBye(codec.ReasonBanned)
	amy.untilLeft("eve", "den", codec.ReasonBanned)
	c, ev := tokenLogin(t, srv, s.tokenWith("eve", nil))
	if ev.Type != codec.TypeError || ev.Code != codec.CodeBanned || !strings.Contains(ev.Message, "from this server by root: abuse") {
		t.Fatalf("a banned account's login: %+v", ev)
	}
	c.conn.Close()

	root.send(&codec.ListBans{Ref: "l1"})
	list := root.until("bans", func(ev codec.Event) bool { return ev.Type == codec.TypeServerBans })
	if list.Total != 1 || list.Bans[0].Account != "eve" || list.Bans[0].Reason != "abuse" || list.Bans[0].By != "root" || list.Lockdown != "off" {
		t.Fatalf("bans %+v", list)
	}
	root.ok(&codec.ServerBan{Type: codec.TypeServerUnban, Account: "eve", Ref: "u1"}, "u1")
	account(t, srv, s, "eve", nil)

	// A timed ban ends by itself, and the end is logged.
	root.ok(&codec.ServerBan{Type: codec.TypeServerBan, Account: "zed", Duration: i64(1), Ref: "b2"}, "b2")
	_, ev = tokenLogin(t, srv, s.tokenWith("zed", nil))
	if ev.Code != codec.CodeBanned {
		t.Fatalf("zed logged in while banned: %+v", ev)
	}
	eventually(t, "the timed ban's end", func() bool {
		c, ev := tokenLogin(t, srv, s.tokenWith("zed", nil))
		c.conn.Close()
		return ev.Type == codec.TypeWelcome
	})
	want, got := "[server_ban eve server_unban eve server_ban zed server_ban_end zed]", ""
	poll := 0
	eventually(t, "the ban's end in the audit log", func() bool { // the sweep runs on the next tick
		poll++
		ref := fmt.Sprint("a", poll)
		root.send(&codec.ReadAudit{Ref: ref})
		audit := root.until("audit", func(ev codec.Event) bool { return ev.Type == codec.TypeAudit && ev.Ref == ref })
		var actions []string
		for _, e := range audit.Entries {
			actions = append(actions, e.Action+" "+e.Target)
		}
		got = jsonish(actions)
		return len(audit.Entries) >= 4
	})
	if got != want {
		t.Fatalf("audit %s, want %s", got, want)
	}
}

func jsonish(v []string) string {
	b := "["
	for i, s := range v {
		if i > 0 {
			b += " "
		}
		b += s
	}
	return b + "]"
}

// TestServerBanAddress: a ban of an address from the admin port ends the
// sessions from it and refuses its new connections at admission, on the
// protocol port (bye banned) and the web port (403); unbanning lets it
// back. The admin port refuses a change that is not JSON.
func TestServerBanAddress(t *testing.T) {
	srv := startServer(t, Config{AdminAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	amy := loggedIn(t, srv, "amy")
	if code, _ := adminPost(t, srv, "POST", "/moderation/bans", nil); code != http.StatusUnsupportedMediaType {
		t.Fatalf("a ban without a JSON body: %d", code)
	}
	if code, body := adminPost(t, srv, "POST", "/moderation/bans", map[string]any{"address": "not an address"}); code != http.StatusBadRequest {
		t.Fatalf("a bad address: %d %s", code, body)
	}
	if code, body := adminPost(t, srv, "POST", "/moderation/bans", map[string]any{"address": "127.0.0.0/8", "reason": "test"}); code != http.StatusOK {
		t.Fatalf("ban: %d %s", code, body)
	}
	amy.untilBye(codec.ReasonBanned)
	dial(t, srv).expectBye(codec.ReasonBanned)
	web, err := net.Dial("tcp", srv.WSAddr().String()) // refused before a request is read
	if err != nil {
		t.Fatal(err)
	}
	_ = web.SetReadDeadline(time.Now().Add(waitFor))
	status, _ := bufio.NewReader(web).ReadString('\n')
	web.Close()
	if !strings.HasPrefix(status, "HTTP/1.1 403") {
		t.Fatalf("the web port answered a banned address %q", status)
	}
	code, body := adminPost(t, srv, "GET", "/moderation/bans", nil)
	var bans BansAnswer
	if err := json.Unmarshal([]byte(body), &bans); err != nil || code != 200 || len(bans.Bans) != 1 || bans.Bans[0].Address != "127.0.0.0/8" {
		t.Fatalf("bans %d %s", code, body)
	}
	if code, body := adminPost(t, srv, "DELETE", "/moderation/bans?address=127.0.0.0/8", nil); code != http.StatusOK {
		t.Fatalf("unban: %d %s", code, body)
	}
	_, metrics := adminPost(t, srv, "GET", "/metrics", nil)
	for _, want := range []string{`parley_moderation_actions_total{action="server_ban"} 1`, `parley_moderation_actions_total{action="server_unban"} 1`,
		`parley_moderation_actions_total{action="kick"} 0`, `parley_connections_refused_total{limit="banned"} 2`, "parley_audit_entries 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	loggedIn(t, srv, "amy")
}

// TestRevokeAndLockdown: a revoked account's sessions end with bye
// token_revoked and its old tokens are refused at login and refresh,
// its new ones taken; a token revoked by its jti likewise; lockdown
// refuses guests, then all but admins.
func TestRevokeAndLockdown(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1 })
	root := account(t, srv, s, "root", jwt.MapClaims{"role": "admin"})
	old := s.tokenWith("amy", jwt.MapClaims{"iat": time.Now().Add(-time.Minute).Unix()})
	amy, ev := tokenLogin(t, srv, old)
	if ev.Type != codec.TypeWelcome {
		t.Fatal(ev)
	}
	root.ok(&codec.Revoke{Account: "amy", Ref: "r1"}, "r1")
	amy.untilBye(codec.ReasonTokenRevoked)
	if _, ev := tokenLogin(t, srv, old); ev.Code != codec.CodeBadToken {
		t.Fatalf("a revoked token logged in: %+v", ev)
	}
	fresh := s.tokenWith("amy", jwt.MapClaims{"iat": time.Now().Add(time.Second).Unix()})
	amy, _ = tokenLogin(t, srv, fresh)
	amy.refused(&codec.Refresh{Token: old, Ref: "rf"}, "rf", codec.CodeBadToken)

	byID := s.tokenWith("bob", jwt.MapClaims{"jti": "t-1"})
	bob, _ := tokenLogin(t, srv, byID)
	root.ok(&codec.Revoke{JTI: "t-1", Ref: "r2"}, "r2")
	bob.untilBye(codec.ReasonTokenRevoked)
	if _, ev := tokenLogin(t, srv, byID); ev.Code != codec.CodeBadToken {
		t.Fatalf("a token revoked by id logged in: %+v", ev)
	}
	account(t, srv, s, "bob", jwt.MapClaims{"jti": "t-2"})
	root.refused(&codec.Revoke{Account: "amy", JTI: "x", Ref: "r3"}, "r3", codec.CodeBadRequest)

	root.refused(&codec.SetLockdown{Level: "panic", Ref: "k0"}, "k0", codec.CodeBadRequest)
	root.ok(&codec.SetLockdown{Level: "accounts", Ref: "k1"}, "k1")
	guest := dial(t, srv)
	guest.send(&codec.Login{Nick: "gus"})
	guest.expectError(codec.CodeForbidden)
	account(t, srv, s, "cleo", nil)
	root.ok(&codec.SetLockdown{Level: "admins", Ref: "k2"}, "k2")
	if _, ev := tokenLogin(t, srv, s.tokenWith("dora", nil)); ev.Code != codec.CodeForbidden {
		t.Fatalf("lockdown admins let dora in: %+v", ev)
	}
	account(t, srv, s, "root", jwt.MapClaims{"role": "admin"})
	amy.refused(&codec.SetLockdown{Level: "off", Ref: "k3"}, "k3", codec.CodeForbidden)
	root.ok(&codec.SetLockdown{Level: "off", Ref: "k4"}, "k4")
	guest = dial(t, srv)
	guest.send(&codec.Login{Nick: "gus"})
	guest.expect(codec.TypeWelcome)
}

// TestServerRulesSurviveRestart: with --data-dir, server bans and the
// lockdown are kept across a restart.
func TestServerRulesSurviveRestart(t *testing.T) {
	s := newSigner(t)
	cfg := Config{AuthKeys: s.keySpec, AuthAudience: "chat", Auth: "optional", DataDir: t.TempDir(), RateLimit: -1}
	first := startServerUntil(t, cfg)
	root := account(t, first.srv, s, "root", jwt.MapClaims{"role": "admin"})
	root.ok(&codec.ServerBan{Type: codec.TypeServerBan, Account: "eve", Ref: "b"}, "b")
	root.ok(&codec.SetLockdown{Level: "accounts", Ref: "l"}, "l")
	first.stop(t)
	second := startServerUntil(t, cfg)
	if _, ev := tokenLogin(t, second.srv, s.tokenWith("eve", nil)); ev.Code != codec.CodeBanned {
		t.Fatalf("after a restart eve logged in: %+v", ev)
	}
	guest := dial(t, second.srv)
	guest.send(&codec.Login{Nick: "gus"})
	guest.expectError(codec.CodeForbidden)
}
