package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"parley/codec"
	"parley/server/natstest"
)

// Conversation features (docs/PROTOCOL.md "Edits, deletes, reactions,
// replies and mentions", "Read markers", "Direct messages that wait"):
// every request over real sockets, its success and its refusals.

// said sends a say with ref and returns its seq.
func (c *tclient) said(room, body, ref string) uint64 {
	c.t.Helper()
	c.send(&codec.Say{Room: room, Body: body, Ref: ref})
	ev := c.answer(ref)
	if ev.Type != codec.TypeAck || ev.Seq == 0 {
		c.t.Fatalf("say %s: %+v", ref, ev)
	}
	return ev.Seq
}

// page asks for a room's newest history and returns its messages.
func (c *tclient) page(room string) []codec.Event {
	c.t.Helper()
	ref := "h" + room
	c.send(&codec.History{Room: room, Ref: ref})
	return c.until("history of "+room, func(ev codec.Event) bool { return ev.Type == codec.TypeHistory && ev.Ref == ref }).Msgs
}

func findSeq(msgs []codec.Event, seq uint64) (codec.Event, bool) {
	for _, m := range msgs {
		if m.Type == codec.TypeMsg && m.Seq == seq {
			return m, true
		}
	}
	return codec.Event{}, false
}

// TestEditDelete: the author edits its message and members see the
// edit; nobody else edits it; an operator or the author deletes it; an
// edit or delete of a message that is not there, or deleted, is
// not_found; history returns the edited text and a tombstone; every
// amendment took a seq of its own.
func TestEditDelete(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1; c.MaxBody = 64 })
	amy, bob := account(t, srv, s, "amy", nil), account(t, srv, s, "bob", nil)
	amy.joinRoom("den") // the owner
	bob.joinRoom("den")
	guest := loggedIn(t, srv, "gus")
	guest.joinRoom("den")

	m1 := bob.said("den", "helo", "s1")
	m2 := bob.said("den", "second", "s2")
	m3 := guest.said("den", "from a guest", "s3")
	bob.send(&codec.Edit{Room: "den", Seq: m1, Body: "hello", Ref: "e1"})
	ack := bob.answer("e1")
	if ack.Type != codec.TypeAck || ack.Seq <= m3 {
		t.Fatalf("edit answered %+v, want an ack with a seq after %d", ack, m3)
	}
	ev := amy.until("the edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited })
	if ev.Of != m1 || ev.Body != "hello" || ev.From != "bob" || ev.Seq != ack.Seq || ev.Room != "den" {
		t.Fatalf("amy got %+v", ev)
	}
	amy.refused(&codec.Edit{Room: "den", Seq: m1, Body: "mine now", Ref: "e2"}, "e2", codec.CodeForbidden)
	guest.refused(&codec.Edit{Room: "den", Seq: m1, Body: "mine now", Ref: "e3"}, "e3", codec.CodeForbidden)
	bob.refused(&codec.Edit{Room: "den", Seq: m3, Body: "a guest's", Ref: "e4"}, "e4", codec.CodeForbidden)
	bob.refused(&codec.Edit{Room: "den", Seq: 999, Body: "none", Ref: "e5"}, "e5", codec.CodeNotFound)
	bob.refused(&codec.Edit{Room: "den", Seq: ack.Seq, Body: "an event", Ref: "e6"}, "e6", codec.CodeNotFound)
	bob.refused(&codec.Edit{Room: "den", Seq: m1, Body: strings.Repeat("x", 65), Ref: "e7"}, "e7", codec.CodeBodyTooLarge)
	bob.refused(&codec.Edit{Room: "elsewhere", Seq: m1, Body: "x", Ref: "e8"}, "e8", codec.CodeNotInRoom)
	guest.ok(&codec.Edit{Room: "den", Seq: m3, Body: "a guest, edited", Ref: "e9"}, "e9")

	// Deletes: not by another member; by the author; by the room's owner.
	guest.refused(&codec.Delete{Room: "den", Seq: m2, Ref: "d0"}, "d0", codec.CodeForbidden)
	bob.ok(&codec.Delete{Room: "den", Seq: m2, Ref: "d1"}, "d1")
	ev = amy.until("the delete", func(ev codec.Event) bool { return ev.Type == codec.TypeDeleted })
	if ev.Of != m2 || ev.From != "bob" {
		t.Fatalf("amy got %+v", ev)
	}
	amy.ok(&codec.Delete{Room: "den", Seq: m3, Ref: "d2"}, "d2")
	bob.refused(&codec.Delete{Room: "den", Seq: m2, Ref: "d3"}, "d3", codec.CodeNotFound)
	bob.refused(&codec.Edit{Room: "den", Seq: m2, Body: "back", Ref: "d4"}, "d4", codec.CodeNotFound)
	bob.refused(&codec.React{Room: "den", Seq: m2, Emoji: "👍", Ref: "d5"}, "d5", codec.CodeNotFound)

	msgs := guest.page("den")
	got1, ok1 := findSeq(msgs, m1)
	got2, ok2 := findSeq(msgs, m2)
	got3, _ := findSeq(msgs, m3)
	if !ok1 || got1.Body != "hello" || got1.Edited == 0 || got1.Deleted {
		t.Fatalf("history of the edited message: %+v", got1)
	}
	if !ok2 || !got2.Deleted || got2.Body != "" || got2.From != "bob" {
		t.Fatalf("history of the deleted message: %+v", got2)
	}
	if !got3.Deleted || got3.Body != "" {
		t.Fatalf("history of the message the owner deleted: %+v", got3)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Seq != msgs[i-1].Seq+1 {
			t.Fatalf("history's seqs are not consecutive: %d then %d", msgs[i-1].Seq, msgs[i].Seq)
		}
	}
}

// TestResumeSeesEdits: a member away while a message was edited and
// another deleted learns both when it resumes the room.
func TestResumeSeesEdits(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1 })
	amy, bob := account(t, srv, s, "amy", nil), account(t, srv, s, "bob", nil)
	amy.joinRoom("den")
	bob.send(&codec.Join{Room: "den", Ref: "j"})
	epoch := bob.answer("j").Epoch
	m1 := amy.said("den", "first", "s1")
	m2 := amy.said("den", "second", "s2")
	bob.until("the second", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Seq == m2 })
	bob.conn.Close()

	amy.ok(&codec.Edit{Room: "den", Seq: m1, Body: "first, edited", Ref: "e"}, "e")
	amy.ok(&codec.Delete{Room: "den", Seq: m2, Ref: "d"}, "d")

	back := account(t, srv, s, "bob", nil)
	back.send(&codec.Join{Room: "den", Since: u64(m2), Epoch: epoch, Ref: "j2"})
	edited := back.until("the edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited })
	deleted := back.until("the delete", func(ev codec.Event) bool { return ev.Type == codec.TypeDeleted })
	if edited.Of != m1 || edited.Body != "first, edited" || deleted.Of != m2 || deleted.Seq != edited.Seq+1 {
		t.Fatalf("resume replayed %+v and %+v", edited, deleted)
	}
	if rec := back.until("recovered", func(ev codec.Event) bool { return ev.Type == codec.TypeRecover }); !rec.Recovered {
		t.Fatalf("resume: %+v", rec)
	}
}

// TestReactions: add, add again (nothing changes), remove; members see
// each change; history counts them and says which the reader holds;
// the bounds per user and per message hold; bad reactions are refused.
func TestReactions(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1 })
	amy, bob := account(t, srv, s, "amy", nil), account(t, srv, s, "bob", nil)
	amy.joinRoom("den")
	bob.joinRoom("den")
	m := amy.said("den", "react to me", "s")

	bob.ok(&codec.React{Room: "den", Seq: m, Emoji: "👍", Ref: "r1"}, "r1")
	ev := amy.until("the reaction", func(ev codec.Event) bool { return ev.Type == codec.TypeReaction })
	if ev.Of != m || ev.Emoji != "👍" || ev.From != "bob" || ev.Remove {
		t.Fatalf("amy got %+v", ev)
	}
	bob.send(&codec.React{Room: "den", Seq: m, Emoji: "👍", Ref: "r2"}) // held already
	if ack := bob.answer("r2"); ack.Type != codec.TypeAck || ack.Seq != 0 {
		t.Fatalf("a second identical reaction: %+v, want an ack with seq 0", ack)
	}
	amy.ok(&codec.React{Room: "den", Seq: m, Emoji: "👍", Ref: "r3"}, "r3")
	amy.ok(&codec.React{Room: "den", Seq: m, Emoji: ":party:", Ref: "r4"}, "r4")
	amy.ok(&codec.React{Room: "den", Seq: m, Emoji: ":party:", Remove: true, Ref: "r5"}, "r5")
	amy.ok(&codec.React{Room: "den", Seq: m, Emoji: "👩‍👩‍👧", Ref: "r6"}, "r6")

	msg, _ := findSeq(bob.page("den"), m)
	want := []codec.ReactionCount{{Emoji: "👍", Count: 2, Me: true}, {Emoji: "👩‍👩‍👧", Count: 1}}
	if !slices.Equal(msg.Reactions, want) {
		t.Fatalf("bob's history: reactions %+v, want %+v", msg.Reactions, want)
	}
	msg, _ = findSeq(amy.page("den"), m)
	if len(msg.Reactions) != 2 || !msg.Reactions[1].Me {
		t.Fatalf("amy's history: reactions %+v", msg.Reactions)
	}

	for i, bad := range []string{"", "two words", strings.Repeat("x", codec.MaxEmoji+1), "a\x01"} {
		ref := fmt.Sprint("bad", i)
		bob.refused(&codec.React{Room: "den", Seq: m, Emoji: bad, Ref: ref}, ref, codec.CodeBadRequest)
	}
	// Per user: MaxReactionsPerUser on one message, the one held counted.
	for i := 1; i < codec.MaxReactionsPerUser; i++ {
		bob.ok(&codec.React{Room: "den", Seq: m, Emoji: fmt.Sprint(":e", i, ":"), Ref: fmt.Sprint("u", i)}, fmt.Sprint("u", i))
	}
	bob.refused(&codec.React{Room: "den", Seq: m, Emoji: ":one-more:", Ref: "u-over"}, "u-over", codec.CodeBadRequest)
	// Per message: MaxReactionKinds kinds (the message holds 11 now).
	carl := account(t, srv, s, "carl", nil)
	carl.joinRoom("den")
	for i := 0; i < codec.MaxReactionKinds-11; i++ {
		carl.ok(&codec.React{Room: "den", Seq: m, Emoji: fmt.Sprint(":k", i, ":"), Ref: fmt.Sprint("k", i)}, fmt.Sprint("k", i))
	}
	carl.refused(&codec.React{Room: "den", Seq: m, Emoji: ":kinds-over:", Ref: "k-over"}, "k-over", codec.CodeBadRequest)
	carl.ok(&codec.React{Room: "den", Seq: m, Emoji: "👍", Ref: "k-known"}, "k-known") // a kind it holds is fine
	msg, _ = findSeq(carl.page("den"), m)
	if len(msg.Reactions) != codec.MaxReactionKinds {
		t.Fatalf("%d kinds of reaction, want %d", len(msg.Reactions), codec.MaxReactionKinds)
	}
}

// TestReplies: a reply carries the seq it answers to members and
// history; a reply to a message that is not there, or was deleted, is
// not_found and not sent.
func TestReplies(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1})
	amy, bob := loggedIn(t, srv, "amy"), loggedIn(t, srv, "bob")
	amy.joinRoom("den")
	bob.joinRoom("den")
	m := amy.said("den", "question?", "s")
	bob.send(&codec.Say{Room: "den", Body: "answer", ReplyTo: m, Ref: "r"})
	r := bob.answer("r")
	if ev := amy.until("the reply", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "answer" }); ev.ReplyTo != m {
		t.Fatalf("amy got %+v", ev)
	}
	if got, _ := findSeq(amy.page("den"), r.Seq); got.ReplyTo != m {
		t.Fatalf("history: %+v", got)
	}
	bob.refused(&codec.Say{Room: "den", Body: "to nothing", ReplyTo: 999, Ref: "r2"}, "r2", codec.CodeNotFound)
	amy.ok(&codec.Delete{Room: "den", Seq: m, Ref: "d"}, "d")
	bob.refused(&codec.Say{Room: "den", Body: "to a deleted one", ReplyTo: m, Ref: "r3"}, "r3", codec.CodeNotFound)
	if got := amy.page("den"); got[len(got)-1].Type != codec.TypeDeleted {
		t.Fatalf("a refused reply reached the history: %+v", got[len(got)-1])
	}
}

// TestMentions: @names resolve to members through the naming rule's
// folding and confusables, each once; names of nobody in the room, and
// an @ inside a word, are left as text.
func TestMentions(t *testing.T) {
	srv := startServer(t, Config{RateLimit: -1})
	amy, bob, carl := loggedIn(t, srv, "amy"), loggedIn(t, srv, "Bob"), loggedIn(t, srv, "carl")
	for _, c := range []*tclient{amy, bob, carl} {
		c.joinRoom("den")
	}
	loggedIn(t, srv, "dora") // online, but not in den
	carl.send(&codec.Say{Room: "den", Body: "hi @ＡＭＹ, @B0B and @amy. Also @dora, mail@amy and @nobody", Ref: "s"})
	carl.answer("s")
	ev := amy.until("the message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg })
	if !slices.Equal(ev.Mentions, []string{"amy", "Bob"}) {
		t.Fatalf("mentions %q, want [amy Bob]", ev.Mentions)
	}
	carl.send(&codec.Say{Room: "den", Body: "nobody here", Ref: "s2"})
	carl.answer("s2")
	if ev := bob.until("the second", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "nobody here" }); ev.Mentions != nil {
		t.Fatalf("mentions %q in a message naming nobody", ev.Mentions)
	}
}

// marksOf waits for a marks frame and returns its markers by room (the
// direct messages' under "@dm").
func (c *tclient) marksOf(what string) map[string]codec.MarkInfo {
	c.t.Helper()
	ev := c.until(what, func(ev codec.Event) bool { return ev.Type == codec.TypeMarks })
	out := map[string]codec.MarkInfo{}
	for _, m := range ev.Marks {
		k := m.Room
		if m.DM {
			k = "@dm"
		}
		out[k] = m
	}
	return out
}

// TestReadMarkers: a marker only moves forward; the account's other
// session gets it; a later login gets every marker with the unread
// messages and mentions after it; a nick login keeps none; a marker past
// the room's last seq is refused.
func TestReadMarkers(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1 })
	phone, bob := account(t, srv, s, "amy", nil), account(t, srv, s, "bob", nil)
	laptop := account(t, srv, s, "amy", nil) // a second session of the account
	phone.joinRoom("den")
	bob.joinRoom("den")
	m1 := bob.said("den", "one", "s1")
	m2 := bob.said("den", "two", "s2")

	phone.send(&codec.Mark{Room: "den", Seq: m2, Ref: "m1"})
	if ack := phone.answer("m1"); ack.Type != codec.TypeAck || ack.Seq != m2 {
		t.Fatalf("mark: %+v", ack)
	}
	if got := laptop.marksOf("the marker on the other session")["den"]; got.Seq != m2 {
		t.Fatalf("the other session got %+v", got)
	}
	phone.send(&codec.Mark{Room: "den", Seq: m1, Ref: "m2"}) // back: stays
	if ack := phone.answer("m2"); ack.Type != codec.TypeAck || ack.Seq != m2 {
		t.Fatalf("a mark back answered %+v, want the marker at %d", ack, m2)
	}
	phone.refused(&codec.Mark{Room: "den", Seq: 999, Ref: "m3"}, "m3", codec.CodeBadRequest)
	phone.refused(&codec.Mark{Room: "elsewhere", Seq: 1, Ref: "m4"}, "m4", codec.CodeNotInRoom)
	guest := loggedIn(t, srv, "gus")
	guest.refused(&codec.Mark{DM: true, Seq: 0, Ref: "m5"}, "m5", codec.CodeBadRequest)

	// Unread and mentions, for the next login.
	bob.said("den", "three", "s3")
	bob.said("den", "four, @amy", "s4")
	bob.said("den", "five", "s5")
	phone.said("den", "mine does not count", "s6")
	bob.ok(&codec.DM{To: "amy", Body: "psst", Ref: "d1"}, "d1")
	phone.ok(&codec.Mark{DM: true, Seq: 0, Ref: "m6"}, "m6")
	tablet := account(t, srv, s, "amy", nil)
	marks := tablet.marksOf("the markers at login")
	if den := marks["den"]; den.Seq != m2 || den.Unread != 3 || den.Mentions != 1 {
		t.Fatalf("den at login: %+v, want seq %d, 3 unread, 1 mention", den, m2)
	}
	if dm := marks["@dm"]; dm.Unread != 1 {
		t.Fatalf("direct messages at login: %+v, want 1 unread", dm)
	}
	// Counting reads the first 100 messages after the marker: amy's own
	// is one of them.
	for i := range 120 {
		bob.send(&codec.Say{Room: "den", Body: fmt.Sprint("more ", i)})
	}
	bob.said("den", "the last", "s7")
	if den := account(t, srv, s, "amy", nil).marksOf("the markers with many unread")["den"]; den.Unread != 99 {
		t.Fatalf("den at login: %+v, want 99: the count stops after 100 messages", den)
	}
	// An account that never marked gets no marks frame.
	carl := account(t, srv, s, "carl", nil)
	carl.send(&codec.Ping{})
	if ev := carl.until("the pong", func(ev codec.Event) bool { return ev.Type == codec.TypePong || ev.Type == codec.TypeMarks }); ev.Type != codec.TypePong {
		t.Fatalf("carl got %+v", ev)
	}
}

// TestReadMarkersSurviveRestart: with --data-dir, markers and remembered
// nicks outlive the process, and so does a direct message waiting for an
// account.
func TestReadMarkersSurviveRestart(t *testing.T) {
	s := newSigner(t)
	dir := t.TempDir()
	cfg := Config{DataDir: dir, RateLimit: -1, AuthKeys: s.keySpec, AuthAudience: "chat", Auth: "optional"}
	first := startServerUntil(t, cfg)
	amy, bob := account(t, first.srv, s, "amy", nil), account(t, first.srv, s, "bob", nil)
	amy.joinRoom("den")
	m := amy.said("den", "read up to here", "s")
	amy.ok(&codec.Mark{Room: "den", Seq: m, Ref: "m"}, "m")
	amy.conn.Close()
	bob.waitOffline("amy")
	bob.ok(&codec.DM{To: "amy", Body: "while you were away", Ref: "d"}, "d")
	first.stop(t)

	second := startServerUntil(t, cfg)
	back := account(t, second.srv, s, "amy", nil)
	if dm := back.until("the waiting message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); dm.Body != "while you were away" || dm.From != "bob" {
		t.Fatalf("after the restart amy got %+v", dm)
	}
	if den := back.marksOf("the markers after the restart")["den"]; den.Seq != m {
		t.Fatalf("after the restart: %+v, want seq %d", den, m)
	}
}

// TestOfflineDM: a direct message to an account with no session online,
// by the nick it last used or by its account, is acked and delivered at
// its next login, once, and kept in its direct messages; a nick login
// cannot leave one, nor reach a nick nobody used; an inbox holds at most
// MaxOfflineDMs.
func TestOfflineDM(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1; c.DMRate = -1 })
	amy := account(t, srv, s, "amy", nil)
	bob := account(t, srv, s, "bob", nil)
	bob.conn.Close()
	amy.waitOffline("bob")
	amy.ok(&codec.DM{To: "bob", Body: "are you there?", Ref: "probe"}, "probe")
	amy.ok(&codec.DM{Account: "zed", Body: "welcome, zed", Ref: "z"}, "z")
	guest := loggedIn(t, srv, "gus")
	guest.refused(&codec.DM{To: "bob", Body: "hi", Ref: "g"}, "g", codec.CodeNoSuchUser)
	amy.refused(&codec.DM{To: "nobody", Body: "hi", Ref: "n"}, "n", codec.CodeNoSuchUser)
	amy.refused(&codec.DM{To: "bob", Account: "bob", Body: "hi", Ref: "both"}, "both", codec.CodeBadRequest)

	back := account(t, srv, s, "bob", nil)
	if ev := back.until("the waiting message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); ev.Body != "are you there?" || ev.From != "amy" || ev.Seq == 0 {
		t.Fatalf("bob got %+v", ev)
	}
	back.send(&codec.History{DM: true, Ref: "h"})
	if page := back.until("history", func(ev codec.Event) bool { return ev.Type == codec.TypeHistory }); len(page.Msgs) != 1 || page.Msgs[0].Body != "are you there?" {
		t.Fatalf("bob's direct messages: %+v", page.Msgs)
	}
	again := account(t, srv, s, "bob", nil) // a second session: nothing waits any more
	again.send(&codec.Ping{})
	if ev := again.until("the pong", func(ev codec.Event) bool { return ev.Type == codec.TypePong || ev.Type == codec.TypeMsg }); ev.Type != codec.TypePong {
		t.Fatalf("a second login got %+v", ev)
	}
	zed := account(t, srv, s, "zed", nil)
	if ev := zed.until("zed's message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); ev.Body != "welcome, zed" {
		t.Fatalf("zed got %+v", ev)
	}

	// The bound: MaxOfflineDMs wait for one account, then rate_limited.
	for i := range codec.MaxOfflineDMs {
		amy.ok(&codec.DM{Account: "yan", Body: fmt.Sprint(i), Ref: fmt.Sprint("y", i)}, fmt.Sprint("y", i))
	}
	amy.refused(&codec.DM{Account: "yan", Body: "one too many", Ref: "y-over"}, "y-over", codec.CodeRateLimited)
	yan := account(t, srv, s, "yan", nil)
	for i := range codec.MaxOfflineDMs {
		if ev := yan.until("a waiting message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); ev.Body != fmt.Sprint(i) {
			t.Fatalf("yan's message %d: %+v", i, ev)
		}
	}
}

// waitOffline waits until who no longer lists nick.
func (c *tclient) waitOffline(nick string) {
	c.t.Helper()
	eventually(c.t, nick+" offline", func() bool {
		c.send(&codec.Who{Ref: "w-" + nick})
		w := c.until("who", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers && ev.Ref == "w-"+nick })
		return !slices.Contains(w.Nicks, nick)
	})
}

// TestClusterConversation: on a real embedded NATS with two nodes, an
// edit, a delete, a reaction and a reply made on one node reach members
// on the other and its history; a read marker set on one node reaches
// the account's session on the other and a later login there; a direct
// message left for an offline account through one node is delivered at
// its next login on the other, once.
func TestClusterConversation(t *testing.T) {
	s := newSigner(t)
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 2, func(c *Config) {
		c.AuthKeys, c.AuthAudience, c.RateLimit, c.JoinRate, c.DMRate = s.keySpec, "chat", -1, -1, -1
	})
	amy := account(t, nodes[0], s, "amy", nil)
	amy.joinRoom("den")
	bob := account(t, nodes[1], s, "bob", nil)
	bob.joinRoom("den")
	amy.until("bob joined den", func(ev codec.Event) bool { return ev.Type == codec.TypeJoined && ev.Nick == "bob" && ev.Room == "den" })

	m := amy.said("den", "helo @bob", "s")
	if ev := bob.until("the message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Seq == m }); !slices.Equal(ev.Mentions, []string{"bob"}) {
		t.Fatalf("bob got %+v", ev)
	}
	amy.ok(&codec.Edit{Room: "den", Seq: m, Body: "hello @bob", Ref: "e"}, "e")
	bob.until("the edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited && ev.Of == m })
	bob.ok(&codec.React{Room: "den", Seq: m, Emoji: "👋", Ref: "r"}, "r")
	amy.until("the reaction", func(ev codec.Event) bool { return ev.Type == codec.TypeReaction && ev.Of == m })
	bob.send(&codec.Say{Room: "den", Body: "hi", ReplyTo: m, Ref: "re"})
	reply := bob.answer("re")
	if ev := amy.until("the reply", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "hi" }); ev.ReplyTo != m {
		t.Fatalf("amy got %+v", ev)
	}
	bob.refused(&codec.Edit{Room: "den", Seq: m, Body: "bob's now", Ref: "e2"}, "e2", codec.CodeForbidden)
	if got, _ := findSeq(bob.page("den"), m); got.Body != "hello @bob" || got.Edited == 0 || len(got.Reactions) != 1 || !got.Reactions[0].Me {
		t.Fatalf("history on node 1: %+v", got)
	}
	amy.ok(&codec.Delete{Room: "den", Seq: reply.Seq, Ref: "d"}, "d")
	bob.until("the delete", func(ev codec.Event) bool { return ev.Type == codec.TypeDeleted && ev.Of == reply.Seq })

	// A direct message across nodes, edited by its sender.
	amy.send(&codec.DM{To: "bob", Body: "psst", Ref: "dm"})
	sent := amy.answer("dm").Seq
	got := bob.until("the direct message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "" })
	amy.ok(&codec.Edit{DM: true, Seq: sent, Body: "psst!", Ref: "dme"}, "dme")
	if ev := bob.until("its edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited && ev.Room == "" }); ev.Of != got.Seq || ev.Body != "psst!" {
		t.Fatalf("bob got %+v", ev)
	}

	// A marker set on node 0 is amy's at her next login on node 1, with
	// what came after it.
	amy.ok(&codec.Mark{Room: "den", Seq: m, Ref: "mk"}, "mk")
	bob.said("den", "after the marker, @amy", "s2")
	amy.send(&codec.Quit{})
	amy.untilBye(codec.ReasonQuit)
	bob.waitOffline("amy")
	there := account(t, nodes[1], s, "amy", nil)
	if got := there.marksOf("the markers at login")["den"]; got.Seq != m || got.Unread != 1 || got.Mentions != 1 {
		t.Fatalf("node 1 at login: %+v, want seq %d, 1 unread, 1 mention (bob's reply was deleted)", got, m)
	}
	there.send(&codec.Quit{})
	there.untilBye(codec.ReasonQuit)
	bob.waitOffline("amy")
	amy = account(t, nodes[0], s, "amy", nil)

	// A message left on node 0 for carl, last seen on node 1.
	carl := account(t, nodes[1], s, "carl", nil)
	carl.send(&codec.Quit{})
	carl.untilBye(codec.ReasonQuit)
	amy.waitOffline("carl")
	eventually(t, "node 0 knows carl's nick", func() bool {
		amy.send(&codec.DM{To: "carl", Body: "for later", Ref: "c"})
		return amy.answer("c").Type == codec.TypeAck
	})
	back := account(t, nodes[1], s, "carl", nil)
	if ev := back.until("the waiting message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg }); ev.Body != "for later" || ev.From != "amy" {
		t.Fatalf("carl got %+v", ev)
	}
	back.send(&codec.Quit{})
	back.untilBye(codec.ReasonQuit)
	amy.waitOffline("carl")
	again := account(t, nodes[0], s, "carl", nil)
	again.send(&codec.Ping{})
	if ev := again.until("the pong", func(ev codec.Event) bool { return ev.Type == codec.TypePong || ev.Type == codec.TypeMsg }); ev.Type != codec.TypePong {
		t.Fatalf("a later login got %+v: the message was delivered twice", ev)
	}
}

// TestDMEditDelete: the sender of a direct message edits and deletes it
// by its seq in its own direct messages; the recipient and the sender's
// other session get each change, numbered in their own direct messages;
// history dm returns the message as it is now on both sides; the
// recipient cannot edit the sender's message; a nick login keeps no
// direct messages to amend.
func TestDMEditDelete(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit, c.DMRate = -1, -1 })
	amy, bob := account(t, srv, s, "amy", nil), account(t, srv, s, "bob", nil)
	amy2 := account(t, srv, s, "amy", nil)
	amy.send(&codec.DM{To: "bob", Body: "helo", Ref: "d"})
	sent := amy.answer("d").Seq
	got := bob.until("the message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg })
	if got.ID == "" || got.Account != "amy" {
		t.Fatalf("bob got %+v: a direct message from an account carries its id and account", got)
	}
	amy.send(&codec.Edit{DM: true, Seq: sent, Body: "hello", Ref: "e"})
	if ack := amy.answer("e"); ack.Type != codec.TypeAck || ack.Seq <= sent {
		t.Fatalf("the edit answered %+v", ack)
	}
	ev := bob.until("the edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited })
	if ev.ID != got.ID || ev.Of != got.Seq || ev.Body != "hello" || ev.To != "bob" || ev.From != "amy" || ev.Seq <= got.Seq || ev.Room != "" {
		t.Fatalf("bob got %+v for the message %+v", ev, got)
	}
	if ev := amy2.until("the edit on amy's other session", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited }); ev.Of != sent {
		t.Fatalf("amy's other session got %+v", ev)
	}
	bob.refused(&codec.Edit{DM: true, Seq: got.Seq, Body: "mine", Ref: "e2"}, "e2", codec.CodeForbidden)
	amy.refused(&codec.Edit{DM: true, Seq: 999, Body: "x", Ref: "e3"}, "e3", codec.CodeNotFound)
	page := func(c *tclient, ref string) []codec.Event {
		c.send(&codec.History{DM: true, Ref: ref})
		return c.until("dm history", func(ev codec.Event) bool { return ev.Type == codec.TypeHistory && ev.Ref == ref }).Msgs
	}
	if msgs := page(bob, "h1"); msgs[0].Body != "hello" || msgs[0].Edited == 0 || msgs[1].Type != codec.TypeEdited {
		t.Fatalf("bob's direct messages: %+v", msgs)
	}
	amy.ok(&codec.Delete{DM: true, Seq: sent, Ref: "x"}, "x")
	if ev := bob.until("the delete", func(ev codec.Event) bool { return ev.Type == codec.TypeDeleted }); ev.ID != got.ID || ev.Of != got.Seq {
		t.Fatalf("bob got %+v", ev)
	}
	if msgs := page(bob, "h2"); !msgs[0].Deleted || msgs[0].Body != "" {
		t.Fatalf("bob's direct messages after the delete: %+v", msgs)
	}
	if msgs := page(amy, "h3"); !msgs[0].Deleted {
		t.Fatalf("amy's direct messages after the delete: %+v", msgs)
	}
	amy.refused(&codec.Edit{DM: true, Seq: sent, Body: "back", Ref: "e4"}, "e4", codec.CodeNotFound)
	guest := loggedIn(t, srv, "gus")
	guest.refused(&codec.Edit{DM: true, Seq: 1, Body: "x", Ref: "g"}, "g", codec.CodeBadRequest)
}

// TestOfflineDMsPayTheirCost: with the default flood control, a direct
// message left for an offline account costs 10 frames, so one connection
// that leaves them for many accounts at once is refused after about its
// burst's worth, and the refused ones are not kept.
func TestOfflineDMsPayTheirCost(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", nil) // default flags
	amy := account(t, srv, s, "amy", nil)
	const tries = 15 // and their logins below stay within the per-address connection burst
	for i := range tries {
		amy.send(&codec.DM{Account: fmt.Sprint("acct-", i), Body: "welcome", Ref: fmt.Sprint("o", i)})
	}
	// Past the budget a DM is refused with its ref, or flood control
	// drops the frame itself (one rate_limited without a ref says so).
	acked := map[int]bool{}
	for refused := false; !refused; {
		ev := amy.until("a refusal", func(ev codec.Event) bool { return ev.Type == codec.TypeAck || ev.Type == codec.TypeError })
		var i int
		switch _, err := fmt.Sscanf(ev.Ref, "o%d", &i); {
		case ev.Code == codec.CodeRateLimited:
			refused = true
		case ev.Type == codec.TypeAck && err == nil:
			acked[i] = true
		default:
			t.Fatalf("%+v", ev)
		}
	}
	delivered := 0
	for i := range tries {
		c := account(t, srv, s, fmt.Sprint("acct-", i), nil)
		c.send(&codec.Ping{})
		got := c.until("the pong", func(ev codec.Event) bool { return ev.Type == codec.TypePong || ev.Type == codec.TypeMsg }).Type == codec.TypeMsg
		if got {
			delivered++
		}
		if acked[i] && !got {
			t.Fatalf("acct-%d's message was acked and not delivered", i)
		}
	}
	if delivered == 0 || delivered > 11 {
		t.Fatalf("%d of %d kept: at 10 frames each, a burst of 100 holds about 10", delivered, tries)
	}
}

// TestClusterFollowerAmendsOlderMessages: a node that starts following a
// room after messages were said there (and edited) reads them from the
// log into its history: its member reacts to and replies to them, and
// its history shows them as they are now.
func TestClusterFollowerAmendsOlderMessages(t *testing.T) {
	s := newSigner(t)
	nats := natstest.Start(t)
	nodes := startClusterWith(t, nats, 2, func(c *Config) {
		c.AuthKeys, c.AuthAudience, c.RateLimit, c.JoinRate = s.keySpec, "chat", -1, -1
	})
	amy := account(t, nodes[0], s, "amy", nil)
	amy.joinRoom("den")
	m1 := amy.said("den", "first", "s1")
	m2 := amy.said("den", "secnod", "s2")
	amy.ok(&codec.Edit{Room: "den", Seq: m2, Body: "second", Ref: "e"}, "e")

	bob := account(t, nodes[1], s, "bob", nil) // node 1 has never followed den
	bob.joinRoom("den")
	eventually(t, "node 1 holds den's older messages as they are now", func() bool {
		got, ok := findSeq(bob.page("den"), m2)
		return ok && got.Body == "second" && got.Edited > 0
	})
	bob.ok(&codec.React{Room: "den", Seq: m1, Emoji: "👍", Ref: "r"}, "r")
	if ev := amy.until("bob's reaction", func(ev codec.Event) bool { return ev.Type == codec.TypeReaction }); ev.Of != m1 {
		t.Fatalf("amy got %+v", ev)
	}
	bob.send(&codec.Say{Room: "den", Body: "yes", ReplyTo: m2, Ref: "re"})
	if ack := bob.answer("re"); ack.Type != codec.TypeAck {
		t.Fatalf("a reply to an older message through node 1: %+v", ack)
	}
	if got, _ := findSeq(bob.page("den"), m1); len(got.Reactions) != 1 || !got.Reactions[0].Me {
		t.Fatalf("node 1's history of the message bob reacted to: %+v", got)
	}
}
