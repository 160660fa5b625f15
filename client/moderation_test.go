package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"parley/codec"
	"parley/server"
	"parley/server/auth"
)

// TestModerationCalls: the typed calls against a real server. A banned
// client learns it left, forgets the room (a reconnect does not try to
// rejoin it), and its join is refused; the room list and the audit log
// read back what was done.
func TestModerationCalls(t *testing.T) {
	as := accountServer(t)
	amy, eve := as("amy"), as("eve")
	for _, c := range []*Client{amy, eve} {
		if err := c.Join(ctxT(t), "den"); err != nil {
			t.Fatal(err)
		}
	}
	if err := eve.Kick(ctxT(t), "den", ByNick("amy"), ""); !errors.Is(err, codec.ErrForbidden) {
		t.Fatalf("a member's kick: %v", err)
	}
	if err := amy.SetTopic(ctxT(t), "den", "welcome"); err != nil {
		t.Fatal(err)
	}
	if err := amy.Ban(ctxT(t), "den", ByNick("eve"), time.Hour, "spam"); err != nil {
		t.Fatal(err)
	}
	deadline := ctxT(t)
	for left := false; !left; {
		select {
		case ev := <-eve.Events():
			if left = ev.Type == codec.TypeLeft && ev.Nick == "eve"; left && ev.Reason != codec.ReasonBan {
				t.Fatalf("left with %q", ev.Reason)
			}
		case <-deadline.Done():
			t.Fatal("the banned client was not told it left")
		}
	}
	for _, r := range eve.Rooms() {
		if r == "den" {
			t.Fatal("the banned client still counts den among its rooms")
		}
	}
	if err := eve.Join(ctxT(t), "den"); !errors.Is(err, codec.ErrBanned) {
		t.Fatalf("a banned join: %v", err)
	}
	if err := amy.Unban(ctxT(t), "den", ByAccount("eve")); err != nil {
		t.Fatal(err)
	}
	rooms, total, _, err := amy.ListRooms(ctxT(t), 0, 10)
	if err != nil || total < 1 || len(rooms) != total {
		t.Fatalf("rooms %+v total %d: %v", rooms, total, err)
	}
	entries, more, err := amy.Audit(ctxT(t), "den", 0, 0)
	if err != nil || more || len(entries) != 3 || entries[0].Action != codec.TypeTopic || entries[1].Action != codec.TypeBan ||
		entries[1].Target != "eve" || entries[1].Until == 0 || entries[2].Action != codec.TypeUnban {
		t.Fatalf("audit %+v more %v: %v", entries, more, err)
	}
}

// accountServer starts a server that takes tokens and returns a function
// that connects a client as an account.
func accountServer(t *testing.T) func(sub string) *Client {
	tk := newTokens(t, "amy", time.Hour)
	srv, _ := runServer(t, "127.0.0.1:0", server.Config{AuthKeys: []string{tk.pub}})
	return func(sub string) *Client {
		c, err := Dial(ctxT(t), srv.Addr().String(), Options{Token: func(ctx context.Context) (string, error) {
			return auth.Sign(tk.alg, tk.key, auth.Token{Subject: sub, KeyID: "k", TTL: time.Hour}, time.Now())
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}
