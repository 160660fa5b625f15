package server

import (
	"fmt"
	"strings"
	"testing"

	"parley/codec"
)

// TestRecoverableErrors checks every error code that leaves the session
// open: each request gets its error, with its ref, and the session then
// still answers ping.
func TestRecoverableErrors(t *testing.T) {
	srv := startServer(t, Config{MaxBody: 10})
	pre := dial(t, srv)
	pre.send(&codec.Say{Body: "hi", Ref: "p"})
	if e := pre.expectError(codec.CodeNotLoggedIn); e.Ref != "p" {
		t.Fatalf("ref = %q", e.Ref)
	}
	pre.send(&codec.Login{Nick: "bad nick"})
	pre.expectError(codec.CodeBadNick)
	pre.send(&codec.Login{Nick: "a\u202eb"})
	pre.expectError(codec.CodeBadNick)
	pre.send(&codec.Login{})
	pre.expectError(codec.CodeBadRequest)

	c := loggedIn(t, srv, "amy")
	cases := []struct {
		name string
		raw  []byte
		code codec.Code
	}{
		{"bad json", rawFrame(`{"type":"say",`), codec.CodeBadJSON},
		{"unknown type", rawFrame(`{"type":"dance","ref":"r"}`), codec.CodeUnknownType},
		{"missing type", rawFrame(`{"body":"x"}`), codec.CodeBadRequest},
		{"wrong kind", rawFrame(`{"type":"say","body":7,"ref":"r"}`), codec.CodeBadRequest},
		{"long ref", rawFrame(`{"type":"ping","ref":"` + strings.Repeat("r", 65) + `"}`), codec.CodeBadRequest},
		{"second login", codec.MustEncode(&codec.Login{Nick: "amy2", Ref: "r"}), codec.CodeAlreadyLoggedIn},
		{"bad room", codec.MustEncode(&codec.Join{Room: "no spaces", Ref: "r"}), codec.CodeBadRoom},
		{"missing room", codec.MustEncode(&codec.Join{Ref: "r"}), codec.CodeBadRequest},
		{"not in room", codec.MustEncode(&codec.Say{Room: "elsewhere", Body: "x", Ref: "r"}), codec.CodeNotInRoom},
		{"leave not in room", codec.MustEncode(&codec.Leave{Room: "elsewhere", Ref: "r"}), codec.CodeNotInRoom},
		{"empty body", codec.MustEncode(&codec.Say{Ref: "r"}), codec.CodeBadRequest},
		{"body too large", codec.MustEncode(&codec.Say{Body: "12345678901", Ref: "r"}), codec.CodeBodyTooLarge},
		{"long say id", codec.MustEncode(&codec.Say{Body: "x", ID: strings.Repeat("i", 65), Ref: "r"}), codec.CodeBadRequest},
		{"say id with a newline", codec.MustEncode(&codec.Say{Body: "x", ID: "a\nb", Ref: "r"}), codec.CodeBadRequest},
		{"dm body too large", codec.MustEncode(&codec.DM{To: "amy", Body: "12345678901", Ref: "r"}), codec.CodeBodyTooLarge},
		{"dm bad nick", codec.MustEncode(&codec.DM{To: "a b", Body: "x", Ref: "r"}), codec.CodeBadNick},
		{"dm missing to", codec.MustEncode(&codec.DM{Body: "x", Ref: "r"}), codec.CodeBadRequest},
		{"no such user", codec.MustEncode(&codec.DM{To: "ghost", Body: "x", Ref: "r"}), codec.CodeNoSuchUser},
		{"who bad room", codec.MustEncode(&codec.Who{Room: "a/b", Ref: "r"}), codec.CodeBadRoom},
	}
	for _, tc := range cases {
		c.sendRaw(tc.raw)
		e := c.expect(codec.TypeError)
		if e.Code != tc.code {
			t.Errorf("%s: code %s (%s), want %s", tc.name, e.Code, e.Message, tc.code)
		}
		if strings.Contains(string(tc.raw), `"ref":"r"`) && e.Ref != "r" {
			t.Errorf("%s: ref %q, want r", tc.name, e.Ref)
		}
		if e.Message == "" {
			t.Errorf("%s: empty message", tc.name)
		}
	}
	c.send(&codec.Ping{})
	c.expect(codec.TypePong)
}

// TestSayIDReachesMembers: a say's id travels with its message to every
// member (so a client can tell a message sent twice), and an id of 64
// bytes is accepted.
func TestSayIDReachesMembers(t *testing.T) {
	srv := startServer(t, Config{})
	amy := loggedIn(t, srv, "amy")
	bob := loggedIn(t, srv, "bob")
	id := strings.Repeat("é", 32)
	amy.send(&codec.Say{Body: "once", ID: id, Ref: "s"})
	seq := amy.untilAck("s").Seq
	got := bob.until("amy's message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "once" })
	if got.ID != id || got.Seq != seq {
		t.Fatalf("bob got %+v, want id %q and seq %d", got, id, seq)
	}
	amy.send(&codec.Say{Body: "plain", Ref: "p"})
	amy.untilAck("p")
	if got := bob.until("the plain one", func(ev codec.Event) bool { return ev.Body == "plain" }); got.ID != "" {
		t.Fatalf("a message without id arrived with id %q", got.ID)
	}
}

func TestTooManyRooms(t *testing.T) {
	srv := startServer(t, Config{RoomsPerSession: 3})
	c := loggedIn(t, srv, "amy") // lobby is room 1
	for i := 0; i < 2; i++ {
		c.send(&codec.Join{Room: fmt.Sprint("r", i), Ref: "j"})
		c.expect(codec.TypeAck)
	}
	c.send(&codec.Join{Room: "one-more", Ref: "j"})
	c.expectError(codec.CodeTooManyRooms)
	c.send(&codec.Join{Room: "r0", Ref: "again"})
	if ack := c.expect(codec.TypeAck); ack.Ref != "again" {
		t.Fatalf("joining a room one is in must succeed: %+v", ack)
	}
}

// TestFatalFrameErrors checks the errors after which the stream cannot be
// trusted: error, bye protocol_error, close; the other sessions see a
// disconnect and go on.
func TestFatalFrameErrors(t *testing.T) {
	srv := startServer(t, Config{MaxFrame: 1024, MaxBody: 512})
	watcher := loggedIn(t, srv, "watcher")
	cases := []struct {
		name string
		raw  []byte
		code codec.Code
	}{
		{"zero length", []byte{0, 0, 0, 0}, codec.CodeBadFrame},
		{"oversized", []byte{0, 0, 4, 1}, codec.CodeFrameTooLarge},
		{"4 GiB", []byte{0xff, 0xff, 0xff, 0xff}, codec.CodeFrameTooLarge},
		{"array", rawFrame(`["login"]`), codec.CodeBadFrame},
		{"invalid utf-8", rawFrame("{\"type\":\"say\",\"body\":\"\xff\"}"), codec.CodeBadFrame},
	}
	for i, tc := range cases {
		c := dial(t, srv)
		nick := fmt.Sprint("victim", i)
		c.login(nick)
		watcher.expect(codec.TypeJoined)
		c.sendRaw(tc.raw)
		c.expectError(tc.code)
		c.expectBye(codec.ReasonProtocolError)
		if ev := watcher.expect(codec.TypeLeft); ev.Nick != nick || ev.Reason != codec.ReasonDisconnect {
			t.Fatalf("%s: left = %+v", tc.name, ev)
		}
	}
	watcher.send(&codec.Ping{})
	watcher.expect(codec.TypePong)
}

// TestPanicClosesOnlyThatSession injects a panic into one session's
// request handling.
func TestPanicClosesOnlyThatSession(t *testing.T) {
	srv := startServer(t, Config{beforeHandle: func(_ string, req *codec.Request) {
		if req.Body == "boom" {
			panic("injected")
		}
	}})
	a, b := loggedIn(t, srv, "a"), loggedIn(t, srv, "b")
	a.expect(codec.TypeJoined)
	b.send(&codec.Say{Body: "boom"})
	b.expectError(codec.CodeInternal)
	b.expectBye(codec.ReasonInternalError)
	if ev := a.expect(codec.TypeLeft); ev.Nick != "b" || ev.Reason != codec.ReasonDisconnect {
		t.Fatalf("left = %+v", ev)
	}
	a.send(&codec.Say{Body: "still here", Ref: "s"})
	a.expect(codec.TypeAck)
	eventually(t, "the panicking session to be gone", func() bool { return srv.Stats().Online == 1 })
}

func TestPingPongBeforeLoginAndQuit(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	c.send(&codec.Ping{})
	c.expect(codec.TypePong)
	c.send(&codec.Pong{})
	c.send(&codec.Quit{})
	c.expectBye(codec.ReasonQuit)
}
