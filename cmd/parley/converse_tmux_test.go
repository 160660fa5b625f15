package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"parley/client"
	"parley/codec"
)

// TestTUIConversation: in the full-screen chat, messages show their #n;
// the user reacts to one, replies to it, edits and deletes its own;
// another member's edit and reaction change the message on screen; a
// mention elsewhere counts in the status line's unread, which clears
// when the user goes there.
func TestTUIConversation(t *testing.T) {
	bin, dir, addr := accountsServer(t)
	amy := startPane(t, 110, 30, bin+" chat --addr "+addr+" --token-file "+writeToken(t, dir, "amy.jwt", mintToken(t, dir, "--sub", "amy")))
	amy.waitScreen("welcome, amy")
	bob := accountClient(t, addr, dir, "bob")
	ctx := context.Background()
	until := func(what string, match func(client.Event) bool) client.Event {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case ev := <-bob.Events():
				if match(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("bob did not get %s", what)
			}
		}
	}
	for _, room := range []string{"den"} {
		if err := bob.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := bob.Say(ctx, "lobby", "lunch at noon?")
	if err != nil {
		t.Fatal(err)
	}
	amy.waitScreen(fmt.Sprintf("bob: lunch at noon?  #%d", seq))

	amy.keys(fmt.Sprintf("/react #%d 👍", seq), "Enter")
	if ev := until("the reaction", func(ev client.Event) bool { return ev.Type == codec.TypeReaction }); ev.Of != seq || ev.Emoji != "👍" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.waitScreen("lunch at noon?  👍1")
	amy.keys(fmt.Sprintf("/reply #%d yes, see you", seq), "Enter")
	reply := until("the reply", func(ev client.Event) bool { return ev.Type == codec.TypeMsg && ev.From == "amy" })
	if reply.ReplyTo != seq || reply.Body != "yes, see you" {
		t.Fatalf("bob got %+v", reply)
	}
	amy.waitScreen(fmt.Sprintf("amy: ↪#%d yes, see you", seq))
	amy.keys("/edit yes, see you there", "Enter") // her last message
	if ev := until("the edit", func(ev client.Event) bool { return ev.Type == codec.TypeEdited }); ev.Of != reply.Seq || ev.Body != "yes, see you there" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.waitScreen("yes, see you there (edited)")
	if _, err := bob.Edit(ctx, "lobby", seq, "lunch at one?"); err != nil {
		t.Fatal(err)
	}
	amy.waitScreen("bob: lunch at one? (edited)  👍1")
	amy.keys("/delete", "Enter")
	if ev := until("the delete", func(ev client.Event) bool { return ev.Type == codec.TypeDeleted }); ev.Of != reply.Seq {
		t.Fatalf("bob got %+v", ev)
	}
	amy.waitScreen(fmt.Sprintf("amy: ↪#%d (deleted)", seq))

	// Direct messages: amy edits hers, and sees bob edit his.
	amy.keys("/dm bob are you coming?", "Enter")
	dm := until("amy's direct message", func(ev client.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "" })
	amy.keys("/edit dm are you coming at one?", "Enter") // her last direct message
	if ev := until("the edit of it", func(ev client.Event) bool { return ev.Type == codec.TypeEdited && ev.Room == "" }); ev.Of != dm.Seq || ev.Body != "are you coming at one?" {
		t.Fatalf("bob got %+v for %+v", ev, dm)
	}
	amy.waitScreen("amy: are you coming at one? (edited)")
	sent, err := bob.DMSeq(ctx, "amy", "yes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.EditDM(ctx, sent, "yes, at one"); err != nil {
		t.Fatal(err)
	}
	amy.waitScreen("bob: yes, at one (edited)")

	// A mention in a room amy is in but not looking at.
	amy.keys("/join den", "Enter")
	amy.waitScreen("den (2 members)")
	amy.keys("/room lobby", "Enter")
	amy.waitScreen("lobby (2 members)")
	if _, err := bob.Say(ctx, "den", "@amy the table is booked"); err != nil {
		t.Fatal(err)
	}
	amy.waitScreen("unread: den 1 (1@)")
	amy.keys("/room den", "Enter")
	s := amy.waitScreen("den (2 members) · connected")
	if strings.Contains(s, "unread: den") {
		t.Fatalf("den still counts as unread once amy is there:\n%s", s)
	}
}
