package client

import (
	"errors"
	"testing"

	"parley/codec"
)

// TestConversationCalls: the typed calls against a real server, and the
// events each brings the other member; a read marker reaches the next
// login; a direct message waits for an offline account; an amendment's
// seq counts toward where the client resumes.
func TestConversationCalls(t *testing.T) {
	as := accountServer(t)
	amy, bob := as("amy"), as("bob")
	for _, c := range []*Client{amy, bob} {
		if err := c.Join(ctxT(t), "den"); err != nil {
			t.Fatal(err)
		}
	}
	next := func(c *Client, typ string) Event {
		t.Helper()
		ctx := ctxT(t)
		for {
			select {
			case ev := <-c.Events():
				if ev.Type == typ && (ev.Room == "den" || ev.Room == "") {
					return ev
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", typ)
			}
		}
	}
	m, err := amy.Say(ctxT(t), "den", "helo @bob")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(bob, codec.TypeMsg); len(ev.Mentions) != 1 || ev.Mentions[0] != "bob" {
		t.Fatalf("bob got %+v", ev)
	}
	if _, err := amy.Edit(ctxT(t), "den", m, "hello @bob"); err != nil {
		t.Fatal(err)
	}
	if ev := next(bob, codec.TypeEdited); ev.Of != m || ev.Body != "hello @bob" {
		t.Fatalf("bob got %+v", ev)
	}
	if _, err := bob.Edit(ctxT(t), "den", m, "mine"); !errors.Is(err, codec.ErrForbidden) {
		t.Fatalf("bob's edit of amy's message: %v", err)
	}
	if _, err := bob.React(ctxT(t), "den", m, "🎉", false); err != nil {
		t.Fatal(err)
	}
	if ev := next(amy, codec.TypeReaction); ev.Emoji != "🎉" || ev.From != "bob" {
		t.Fatalf("amy got %+v", ev)
	}
	r, err := bob.Reply(ctxT(t), "den", m, "thanks")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(amy, codec.TypeMsg); ev.ReplyTo != m || ev.Seq != r {
		t.Fatalf("amy got %+v", ev)
	}
	if _, err := bob.Reply(ctxT(t), "den", 999, "to nothing"); !errors.Is(err, codec.ErrNotFound) {
		t.Fatalf("a reply to nothing: %v", err)
	}
	d, err := amy.Delete(ctxT(t), "den", m)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(bob, codec.TypeDeleted); ev.Of != m || ev.Seq != d {
		t.Fatalf("bob got %+v", ev)
	}
	if got, err := bob.Mark(ctxT(t), "den", d); err != nil || got != d {
		t.Fatalf("mark: %d, %v", got, err)
	}
	if err := bob.DMAccount(ctxT(t), "carl", "for when you come"); err != nil {
		t.Fatal(err)
	}
	carl := as("carl")
	if ev := next(carl, codec.TypeMsg); ev.Body != "for when you come" || ev.From != "bob" {
		t.Fatalf("carl got %+v", ev)
	}
	bob2 := as("bob")
	if ev := next(bob2, codec.TypeMarks); len(ev.Marks) != 1 || ev.Marks[0].Seq != d {
		t.Fatalf("bob's next login got %+v", ev)
	}
	bob.mu.Lock()
	at := bob.marks["den"].seq
	bob.mu.Unlock()
	if at != d {
		t.Fatalf("bob resumes den from %d, want %d: an amendment's seq was not counted", at, d)
	}
}
