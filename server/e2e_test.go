package server

import (
	"fmt"
	"strings"
	"testing"

	"parley/codec"
)

func TestLoginWelcomeAndJoined(t *testing.T) {
	srv := startServer(t, Config{})
	amy := dial(t, srv)
	w := amy.login("amy")
	if w.Nick != "amy" || w.Room != codec.Lobby || w.Online != 0 || len(w.ID) != 36 {
		t.Fatalf("welcome = %+v", w)
	}
	bob := dial(t, srv)
	if w := bob.login("bob"); w.Online != 1 {
		t.Fatalf("bob's welcome online = %d, want 1", w.Online)
	}
	if j := amy.expect(codec.TypeJoined); j.Nick != "bob" || j.Room != codec.Lobby {
		t.Fatalf("joined = %+v", j)
	}
}

func TestThreeClientsSeeJoinsMessagesLeavesInOrder(t *testing.T) {
	srv := startServer(t, Config{})
	a, b, c := loggedIn(t, srv, "a"), loggedIn(t, srv, "b"), loggedIn(t, srv, "c")
	a.expect(codec.TypeJoined)
	a.expect(codec.TypeJoined)
	b.expect(codec.TypeJoined)
	for _, cl := range []*tclient{a, b, c} {
		cl.send(&codec.Join{Room: "go", Ref: "j"})
		cl.expect(codec.TypeAck)
	}
	// a saw b and c join "go"; b saw c.
	if ev := a.expect(codec.TypeJoined); ev.Nick != "b" || ev.Room != "go" {
		t.Fatalf("a: %+v", ev)
	}
	a.expect(codec.TypeJoined)
	b.expect(codec.TypeJoined)
	const n = 50
	for i := 1; i <= n; i++ {
		sender := []*tclient{a, b, c}[i%3]
		sender.send(&codec.Say{Room: "go", Body: fmt.Sprint(i), Ref: fmt.Sprint(i)})
		if ack := sender.expect(codec.TypeAck); ack.Seq != uint64(i) || ack.Ref != fmt.Sprint(i) {
			t.Fatalf("ack = %+v, want seq %d", ack, i)
		}
		for _, other := range []*tclient{a, b, c} {
			if other == sender {
				continue
			}
			m := other.expect(codec.TypeMsg)
			if m.Seq != uint64(i) || m.Body != fmt.Sprint(i) || m.Room != "go" || m.TS == 0 {
				t.Fatalf("msg = %+v, want seq %d", m, i)
			}
		}
	}
	c.send(&codec.Leave{Room: "go", Ref: "l"})
	c.expect(codec.TypeAck)
	for _, cl := range []*tclient{a, b} {
		if ev := cl.expect(codec.TypeLeft); ev.Nick != "c" || ev.Reason != codec.ReasonLeave || ev.Room != "go" {
			t.Fatalf("left = %+v", ev)
		}
	}
	c.send(&codec.Quit{})
	c.expectBye(codec.ReasonQuit)
	for _, cl := range []*tclient{a, b} {
		if ev := cl.expect(codec.TypeLeft); ev.Nick != "c" || ev.Reason != codec.ReasonQuit || ev.Room != codec.Lobby {
			t.Fatalf("left = %+v", ev)
		}
	}
}

func TestSayDefaultsToLobbyAndSkipsSender(t *testing.T) {
	srv := startServer(t, Config{})
	a, b := loggedIn(t, srv, "a"), loggedIn(t, srv, "b")
	a.expect(codec.TypeJoined)
	a.send(&codec.Say{Body: "hi"})
	if m := b.expect(codec.TypeMsg); m.From != "a" || m.Room != codec.Lobby || m.Seq != 1 {
		t.Fatalf("msg = %+v", m)
	}
	// a gets no copy and, without ref, no ack: the next frame is the pong.
	a.send(&codec.Ping{})
	a.expect(codec.TypePong)
}

func TestDirectMessagesReachOnlyTheTarget(t *testing.T) {
	srv := startServer(t, Config{})
	a, b, c := loggedIn(t, srv, "amy"), loggedIn(t, srv, "Bob"), loggedIn(t, srv, "cat")
	a.expect(codec.TypeJoined)
	a.expect(codec.TypeJoined)
	b.expect(codec.TypeJoined)
	a.send(&codec.DM{To: "BOB", Body: "psst", Ref: "d"})
	if ack := a.expect(codec.TypeAck); ack.Ref != "d" || ack.Seq != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	if m := b.expect(codec.TypeMsg); m.From != "amy" || m.To != "Bob" || m.Body != "psst" || m.Room != "" || m.Seq != 0 {
		t.Fatalf("dm = %+v", m)
	}
	// c must get nothing: its next frame is the answer to its own ping.
	c.send(&codec.Ping{})
	c.expect(codec.TypePong)
	b.send(&codec.Ping{})
	b.expect(codec.TypePong)
	a.send(&codec.DM{To: "nobody", Body: "x", Ref: "n"})
	if e := a.expectError(codec.CodeNoSuchUser); e.Ref != "n" {
		t.Fatalf("error ref = %q", e.Ref)
	}
}

func TestNicksAreCaseInsensitive(t *testing.T) {
	srv := startServer(t, Config{})
	loggedIn(t, srv, "Straße")
	for i, nick := range []string{"STRASSE", "straße", "strasse"} {
		c := dial(t, srv)
		c.send(&codec.Login{Nick: nick, Ref: "l"})
		if e := c.expectError(codec.CodeNickTaken); e.Ref != "l" {
			t.Fatalf("%s: ref %q", nick, e.Ref)
		}
		// The session may try again with another nick.
		if w := c.login(fmt.Sprintf("other%d", i)); w.Type != codec.TypeWelcome {
			t.Fatal("retry failed")
		}
	}
}

func TestWhoListsAndPages(t *testing.T) {
	srv := startServer(t, Config{})
	var clients []*tclient
	for i := 0; i < 5; i++ {
		clients = append(clients, loggedIn(t, srv, fmt.Sprintf("u%d", 4-i)))
	}
	a := clients[0]
	a.send(&codec.Who{Ref: "w"})
	u := a.until("users", isUsers)
	if u.Count != 5 || strings.Join(u.Nicks, ",") != "u0,u1,u2,u3,u4" || u.More || u.Ref != "w" {
		t.Fatalf("users = %+v", u)
	}
	a.send(&codec.Who{Room: codec.Lobby, After: "U2"})
	u = a.until("users", isUsers)
	if u.Count != 5 || strings.Join(u.Nicks, ",") != "u3,u4" || u.Room != codec.Lobby {
		t.Fatalf("users after u2 = %+v", u)
	}
	a.send(&codec.Who{Room: "empty"})
	if u = a.until("users", isUsers); u.Count != 0 || len(u.Nicks) != 0 {
		t.Fatalf("users of a missing room = %+v", u)
	}
}

func isUsers(ev codec.Event) bool { return ev.Type == codec.TypeUsers }
