package server

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"parley/codec"
	"parley/server/natstest"
)

// TestTyping: a typing notice reaches the room's other members and a
// DM's recipient, never its sender; a second one within TypingEvery is
// dropped; it is never in history; a room whose presence is counted gets
// none; bad requests are refused.
func TestTyping(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1, PresenceLimit: 3})
	amy, bob := loggedIn(t, srv, "amy"), loggedIn(t, srv, "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	typingOrMsg := func(ev codec.Event) bool { return ev.Type == codec.TypeTyping || ev.Type == codec.TypeMsg }

	amy.send(&codec.Typing{Room: "den"})
	if ev := bob.until("amy typing", typingOrMsg); ev.Type != codec.TypeTyping || ev.Room != "den" || ev.Nick != "amy" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.send(&codec.Typing{Room: "den"}) // within TypingEvery: dropped
	amy.send(&codec.Say{Room: "den", Body: "after", Ref: "s"})
	if ev := amy.until("the say's ack", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping || ev.Ref == "s" }); ev.Type == codec.TypeTyping {
		t.Fatalf("amy got her own typing: %+v", ev)
	}
	if ev := bob.until("the message", typingOrMsg); ev.Type != codec.TypeMsg || ev.Body != "after" {
		t.Fatalf("bob got %+v, want the message: the second typing was within %s", ev, codec.TypingEvery)
	}

	amy.send(&codec.Typing{To: "bob"})
	if ev := bob.until("amy typing to bob", typingOrMsg); ev.Type != codec.TypeTyping || ev.To != "bob" || ev.Nick != "amy" || ev.Room != "" {
		t.Fatalf("bob got %+v", ev)
	}
	bob.send(&codec.History{Room: "den", Ref: "h"})
	page := bob.until("history", func(ev codec.Event) bool { return ev.Type == codec.TypeHistory })
	if len(page.Msgs) != 1 || page.Msgs[0].Type != codec.TypeMsg {
		t.Fatalf("history holds %+v", page.Msgs)
	}

	// A room over the presence limit gets no typing.
	var big []*tclient
	for i := range 4 {
		c := loggedIn(t, srv, fmt.Sprint("m", i))
		c.joinRoom("big")
		big = append(big, c)
	}
	big[0].send(&codec.Typing{Room: "big"})
	big[0].send(&codec.Say{Room: "big", Body: "marker"})
	if ev := big[1].until("the marker", typingOrMsg); ev.Type != codec.TypeMsg {
		t.Fatalf("a member of a counted room got %+v", ev)
	}

	amy.refused(&codec.Typing{Ref: "t1"}, "t1", codec.CodeBadRequest)
	amy.refused(&codec.Typing{Room: "den", To: "bob", Ref: "t2"}, "t2", codec.CodeBadRequest)
	amy.refused(&codec.Typing{Room: "elsewhere", Ref: "t3"}, "t3", codec.CodeNotInRoom)
}

// TestTypingDroppedFirst: a member with bytes unsent gets no typing
// notice, while one that keeps up does; the messages it is behind on all
// arrive.
func TestTypingDroppedFirst(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1})
	amy, bob := loggedIn(t, srv, "amy"), loggedIn(t, srv, "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	raw, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetReadBuffer(16 << 10)
	_, _ = raw.Write(append(codec.MustEncode(&codec.Login{Nick: "slow"}), codec.MustEncode(&codec.Join{Room: "den", Ref: "j"})...))
	amy.until("slow joined", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Nick == "slow" && ev.Room == "den" })
	body := strings.Repeat("x", 4000)
	sent := 0
	// More unsent than a member that reads could hold for a moment: the
	// bytes are the one that does not read. Under the room budget (2 MiB),
	// so that it gets every message.
	eventually(t, "bytes unsent to the member that does not read", func() bool {
		for range 20 {
			amy.send(&codec.Say{Room: "den", Body: body})
			sent++
		}
		return srv.Stats().OutboundBytes > 256<<10
	})
	amy.send(&codec.Typing{Room: "den"})
	amy.send(&codec.Say{Room: "den", Body: "marker"})
	if ev := bob.until("amy typing", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping }); ev.Nick != "amy" {
		t.Fatalf("bob got %+v", ev)
	}
	slow := wrap(t, raw) // reads from now on
	got := 0
	for {
		ev := slow.until("the marker", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping || ev.Type == codec.TypeMsg })
		if ev.Type == codec.TypeTyping {
			t.Fatalf("the member behind got a typing notice after %d messages", got)
		}
		if ev.Body == "marker" {
			break
		}
		got++
	}
	if got != sent {
		t.Fatalf("the member behind got %d of %d messages", got, sent)
	}
}

// TestClusterTyping: typing reaches a room's members and a user on
// another node.
func TestClusterTyping(t *testing.T) {
	nodes := startCluster(t, natstest.Start(t), 2)
	amy, bob := loggedIn(t, nodes[0], "amy"), loggedIn(t, nodes[1], "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	amy.until("bob in den", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Nick == "bob" && ev.Room == "den" })
	amy.send(&codec.Typing{Room: "den"})
	if ev := bob.until("amy typing in den", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping }); ev.Room != "den" || ev.Nick != "amy" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.send(&codec.Typing{To: "bob"})
	if ev := bob.until("amy typing to bob", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping }); ev.To != "bob" || ev.Nick != "amy" {
		t.Fatalf("bob got %+v", ev)
	}
}
