package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"parley/codec"
)

// Rooms people run (docs/PROTOCOL.md): every request over real sockets,
// with tokens signed here, its success and its refusals.

// tokenWith is a valid token for sub (its name too) with more claims.
func (s *signer) tokenWith(sub string, extra jwt.MapClaims) string {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "aud": "chat"}
	for k, v := range extra {
		c[k] = v
	}
	return s.sign(jwt.SigningMethodEdDSA, s.ed, "ed1", c)
}

// account logs in sub with extra claims (in a cluster, again while the
// nick's claim answers unavailable) and fails the test otherwise.
func account(t *testing.T, srv *Server, s *signer, sub string, extra jwt.MapClaims) *tclient {
	t.Helper()
	c, ev := clusterLogin(t, srv, s.tokenWith(sub, extra))
	if ev.Type != codec.TypeWelcome {
		t.Fatalf("login of %s: %+v", sub, ev)
	}
	return c
}

// answer waits for the ack or the error of the request with ref.
func (c *tclient) answer(ref string) codec.Event {
	c.t.Helper()
	return c.until("answer "+ref, func(ev codec.Event) bool {
		return (ev.Type == codec.TypeAck || ev.Type == codec.TypeError) && ev.Ref == ref
	})
}

// refused sends m (whose ref is ref) and fails unless it gets code.
func (c *tclient) refused(m codec.Message, ref string, code codec.Code) codec.Event {
	c.t.Helper()
	c.send(m)
	ev := c.answer(ref)
	if ev.Type != codec.TypeError || ev.Code != code {
		c.t.Fatalf("%s: got %+v, want error %s", ref, ev, code)
	}
	return ev
}

// ok sends m (whose ref is ref) and fails unless it is acked.
func (c *tclient) ok(m codec.Message, ref string) {
	c.t.Helper()
	c.send(m)
	if ev := c.answer(ref); ev.Type != codec.TypeAck {
		c.t.Fatalf("%s: got %+v, want an ack", ref, ev)
	}
}

func act(typ, room, nick, ref string) *codec.Target {
	return &codec.Target{Type: typ, Room: room, Nick: nick, Ref: ref}
}

func i64(v int64) *int64 { return &v }

// untilLeft waits for nick's left frame in room with reason.
func (c *tclient) untilLeft(nick, room string, reason codec.Reason) {
	c.t.Helper()
	ev := c.until(nick+" leaving "+room, func(ev codec.Event) bool {
		return ev.Type == codec.TypeLeft && ev.Nick == nick && ev.Room == room
	})
	if ev.Reason != reason {
		c.t.Fatalf("%s left %s with reason %q, want %q", nick, room, ev.Reason, reason)
	}
}

// TestRoomRolesKickMute: the creator owns the room; only the owner names
// operators; operators kick and mute members but not the owner or each
// other; a kicked member may come back; a muted one reads but cannot say
// until unmuted; nick logins and guests hold no role.
func TestRoomRolesKickMute(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.RateLimit = -1 })
	amy := account(t, srv, s, "amy", nil)
	bob := account(t, srv, s, "bob", nil)
	carl := account(t, srv, s, "carl", nil)
	dora := account(t, srv, s, "dora", nil)
	for _, c := range []*tclient{amy, bob, carl, dora} {
		c.joinRoom("den") // amy first: the room's creator
	}
	guest := loggedIn(t, srv, "gus")
	guest.joinRoom("den")

	bob.refused(act(codec.TypeKick, "den", "carl", "k0"), "k0", codec.CodeForbidden)
	bob.refused(act(codec.TypeOp, "den", "carl", "o0"), "o0", codec.CodeForbidden)
	amy.ok(act(codec.TypeOp, "den", "bob", "o1"), "o1")
	amy.ok(act(codec.TypeOp, "den", "dora", "o2"), "o2")
	carl.until("the op notice", func(ev codec.Event) bool {
		return ev.Type == codec.TypeMod && ev.Action == codec.TypeOp && ev.Nick == "bob" && ev.By == "amy"
	})
	bob.refused(act(codec.TypeKick, "den", "amy", "k1"), "k1", codec.CodeForbidden)  // the owner
	bob.refused(act(codec.TypeKick, "den", "dora", "k2"), "k2", codec.CodeForbidden) // another operator
	bob.refused(act(codec.TypeDeop, "den", "dora", "d1"), "d1", codec.CodeForbidden) // the owner's power
	guest.refused(act(codec.TypeKick, "den", "carl", "k3"), "k3", codec.CodeForbidden)
	amy.refused(act(codec.TypeOp, "den", "~gus", "o3"), "o3", codec.CodeBadRequest) // a guest holds no role

	kick := act(codec.TypeKick, "den", "carl", "k4")
	kick.Reason = "cool off"
	bob.ok(kick, "k4")
	ev := carl.until("the kick notice", func(ev codec.Event) bool { return ev.Type == codec.TypeMod && ev.Action == codec.TypeKick })
	if ev.Nick != "carl" || ev.By != "bob" || ev.Reason != "cool off" {
		t.Fatalf("kick notice %+v", ev)
	}
	carl.untilLeft("carl", "den", codec.ReasonKick)
	amy.untilLeft("carl", "den", codec.ReasonKick)
	carl.refused(&codec.Say{Room: "den", Body: "still here?", Ref: "s0"}, "s0", codec.CodeNotInRoom)
	carl.joinRoom("den") // a kick is not a ban

	// An operator can kick a guest, which has no account.
	bob.ok(act(codec.TypeKick, "den", "~gus", "k5"), "k5")
	guest.untilLeft("~gus", "den", codec.ReasonKick)

	mute := act(codec.TypeMute, "den", "carl", "m1")
	bob.ok(mute, "m1")
	carl.refused(&codec.Say{Room: "den", Body: "hello?", Ref: "s1"}, "s1", codec.CodeMuted)
	amy.send(&codec.Say{Room: "den", Body: "you can read this", Ref: "s2"})
	amy.untilAck("s2")
	carl.until("amy's message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == "you can read this" })
	carl.ok(&codec.Say{Room: "lobby", Body: "muted in den only", Ref: "s3"}, "s3")
	bob.ok(act(codec.TypeUnmute, "den", "carl", "m2"), "m2")
	carl.ok(&codec.Say{Room: "den", Body: "back", Ref: "s4"}, "s4")

	// A nick login on a server without tokens: no room has an owner.
	plain := startServer(t, Config{})
	x, y := loggedIn(t, plain, "x"), loggedIn(t, plain, "y")
	x.joinRoom("r")
	y.joinRoom("r")
	x.refused(act(codec.TypeKick, "r", "y", "k"), "k", codec.CodeForbidden)
	x.refused(&codec.SetTopic{Room: "r", Topic: "t", Ref: "t"}, "t", codec.CodeForbidden)
}

// TestRoomBans: a ban removes the account at once and keeps it out, by
// reconnecting and by a second device, until it ends or is lifted; the
// owner cannot ban itself but an admin can ban the owner.
func TestRoomBans(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.JoinRate, c.RateLimit = -1, -1 })
	amy := account(t, srv, s, "amy", nil)
	eve := account(t, srv, s, "eve", nil)
	eve2 := account(t, srv, s, "eve", nil) // a second device
	amy.joinRoom("den")
	eve.joinRoom("den")
	eve2.joinRoom("den")

	ban := act(codec.TypeBan, "den", "eve", "b1")
	ban.Reason = "spam"
	amy.ok(ban, "b1")
	for _, c := range []*tclient{eve, eve2} {
		c.untilLeft("eve", "den", codec.ReasonBan)
	}
	amy.untilLeft("eve", "den", codec.ReasonBan)
	ev := eve.refused(&codec.Join{Room: "den", Ref: "j1"}, "j1", codec.CodeBanned)
	if !strings.Contains(ev.Message, "spam") {
		t.Fatalf("the ban's error does not say why: %q", ev.Message)
	}
	eve.refused(&codec.Say{Room: "den", Body: "x", Ref: "s"}, "s", codec.CodeNotInRoom)
	again := account(t, srv, s, "eve", nil) // reconnecting
	again.refused(&codec.Join{Room: "den", Ref: "j2"}, "j2", codec.CodeBanned)

	amy.refused(act(codec.TypeBan, "den", "amy", "b2"), "b2", codec.CodeForbidden)             // the owner
	amy.ok(&codec.Target{Type: codec.TypeUnban, Room: "den", Account: "EVE", Ref: "u1"}, "u1") // by account, case-folded
	again.ok(&codec.Join{Room: "den", Ref: "j3"}, "j3")

	// A timed ban ends by itself.
	timed := &codec.Target{Type: codec.TypeBan, Room: "den", Account: "eve", Duration: i64(1), Ref: "b3"}
	amy.ok(timed, "b3")
	notice := again.until("the ban notice", func(ev codec.Event) bool { return ev.Type == codec.TypeMod && ev.Action == codec.TypeBan })
	if notice.Until == 0 {
		t.Fatal("a timed ban's notice has no until")
	}
	again.untilLeft("eve", "den", codec.ReasonBan)
	again.refused(&codec.Join{Room: "den", Ref: "j4"}, "j4", codec.CodeBanned)
	time.Sleep(time.Until(time.UnixMilli(notice.Until)) + 50*time.Millisecond) // the server said when it ends
	again.ok(&codec.Join{Room: "den", Ref: "j5"}, "j5")

	// An offline account can be banned by account, and an admin can ban
	// the owner.
	amy.ok(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "zed", Ref: "b4"}, "b4")
	zed := account(t, srv, s, "zed", nil)
	zed.refused(&codec.Join{Room: "den", Ref: "j6"}, "j6", codec.CodeBanned)
	root := account(t, srv, s, "root", jwt.MapClaims{"role": "admin"})
	root.ok(act(codec.TypeBan, "den", "amy", "b5"), "b5")
	amy.untilLeft("amy", "den", codec.ReasonBan)
	root.ok(&codec.Join{Room: "den", Ref: "j7"}, "j7")
}

// TestPrivateRoomsHide: a private room lets in its invited accounts and
// those whose token names it, and to everyone else answers who, history
// and the room list as a room that does not exist.
func TestPrivateRoomsHide(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.JoinRate, c.RateLimit = -1, -1 })
	amy := account(t, srv, s, "amy", nil)
	amy.joinRoom("vault")
	amy.ok(&codec.SetPrivate{Room: "vault", Private: true, Ref: "p"}, "p")
	out := account(t, srv, s, "out", nil)

	answers := func(room string) string {
		out.send(&codec.Who{Room: room, Ref: "w"})
		w := out.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers })
		out.send(&codec.History{Room: room, Ref: "h"})
		h := out.answer("h")
		return fmt.Sprintf("who %d %v %v; history %s %s", w.Count, w.Nicks, w.More,
			h.Code, strings.ReplaceAll(h.Message, room, "ROOM"))
	}
	if hidden, missing := answers("vault"), answers("nowhere"); hidden != missing {
		t.Fatalf("a private room answers %q, a missing one %q", hidden, missing)
	}
	out.send(&codec.ListRooms{Ref: "l"})
	list := out.until("rooms", func(ev codec.Event) bool { return ev.Type == codec.TypeRooms })
	for _, r := range list.Rooms {
		if r.Room == "vault" {
			t.Fatal("the room list shows a private room")
		}
	}
	out.refused(&codec.Join{Room: "vault", Ref: "j1"}, "j1", codec.CodeInviteOnly)
	amy.ok(act(codec.TypeInvite, "vault", "out", "i"), "i")
	out.ok(&codec.Join{Room: "vault", Ref: "j2"}, "j2")
	claimed := account(t, srv, s, "cleo", jwt.MapClaims{"rooms": []string{"vault"}})
	claimed.ok(&codec.Join{Room: "vault", Ref: "j3"}, "j3")
	other := account(t, srv, s, "other", jwt.MapClaims{"rooms": []string{"elsewhere"}})
	other.refused(&codec.Join{Room: "vault", Ref: "j4"}, "j4", codec.CodeInviteOnly)
	amy.ok(&codec.SetPrivate{Room: "vault", Private: false, Ref: "p2"}, "p2")
	other.ok(&codec.Join{Room: "vault", Ref: "j5"}, "j5")
}

// TestTopicsAndRoomList: operators set the topic, which members get on
// change and joiners on join; the room list is sorted by members, paged,
// and shows topics; bad topics are refused.
func TestTopicsAndRoomList(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.RateLimit = -1 })
	amy := account(t, srv, s, "amy", nil)
	bob := account(t, srv, s, "bob", nil)
	carl := account(t, srv, s, "carl", nil)
	amy.joinRoom("big")
	bob.joinRoom("big")
	carl.joinRoom("big")
	amy.joinRoom("mid")
	bob.joinRoom("mid")
	amy.joinRoom("small")

	bob.refused(&codec.SetTopic{Room: "big", Topic: "mine", Ref: "t0"}, "t0", codec.CodeForbidden)
	amy.refused(&codec.SetTopic{Room: "big", Topic: strings.Repeat("x", codec.MaxTopic+1), Ref: "t1"}, "t1", codec.CodeBadRequest)
	amy.refused(&codec.SetTopic{Room: "big", Topic: "bell\x07", Ref: "t2"}, "t2", codec.CodeBadRequest)
	amy.ok(&codec.SetTopic{Room: "big", Topic: "all things big", Ref: "t3"}, "t3")
	ev := bob.until("the topic", func(ev codec.Event) bool { return ev.Type == codec.TypeTopic })
	if ev.Topic != "all things big" || ev.By != "amy" || ev.Room != "big" {
		t.Fatalf("topic frame %+v", ev)
	}
	dora := account(t, srv, s, "dora", nil)
	dora.send(&codec.Join{Room: "big", Ref: "j"})
	dora.untilAck("j")
	if ev := dora.expect(codec.TypeTopic); ev.Topic != "all things big" {
		t.Fatalf("the joiner got topic %+v", ev)
	}

	// The snapshot is rebuilt at most once a second: wait for one that
	// counts dora, then page through it.
	var first codec.Event
	eventually(t, "a room list with dora in big", func() bool {
		dora.send(&codec.ListRooms{Limit: iptr(2), Ref: "l1"})
		first = dora.until("rooms", func(ev codec.Event) bool { return ev.Type == codec.TypeRooms })
		return len(first.Rooms) == 2 && first.Rooms[0].Room == "big" && first.Rooms[0].Count == 4
	})
	// big and lobby both have 4 members: the name breaks the tie.
	if first.Total != 4 || !first.More || first.Rooms[1].Room != "lobby" || first.Rooms[0].Topic != "all things big" {
		t.Fatalf("first page %+v", first)
	}
	dora.send(&codec.ListRooms{Offset: 2, Limit: iptr(2), Ref: "l2"})
	second := dora.until("rooms", func(ev codec.Event) bool { return ev.Type == codec.TypeRooms })
	if len(second.Rooms) != 2 || second.More || second.Rooms[0].Room != "mid" || second.Rooms[1].Room != "small" {
		t.Fatalf("second page %+v", second)
	}
	dora.refused(&codec.ListRooms{Limit: iptr(codec.RoomsPage + 1), Ref: "l3"}, "l3", codec.CodeBadRequest)
}

func iptr(v int) *int { return &v }

// TestModerationBadInput: durations, reasons and targets that break the
// rules get bad_request or no_such_user, and change nothing.
func TestModerationBadInput(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.RateLimit = -1 })
	amy := account(t, srv, s, "amy", nil)
	amy.joinRoom("den")
	for i, d := range []int64{0, -1, codec.MaxDuration + 1} {
		ref := fmt.Sprint("d", i)
		amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "x", Duration: i64(d), Ref: ref}, ref, codec.CodeBadRequest)
	}
	amy.refused(&codec.Target{Type: codec.TypeKick, Room: "den", Account: "x", Duration: i64(5), Ref: "k"}, "k", codec.CodeBadRequest)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "x", Reason: strings.Repeat("r", codec.MaxReason+1), Ref: "r"}, "r", codec.CodeBadRequest)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "x", Reason: "\x1b[2J", Ref: "r2"}, "r2", codec.CodeBadRequest)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Nick: "nobody", Ref: "n"}, "n", codec.CodeNoSuchUser)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Nick: "amy", Account: "amy", Ref: "b"}, "b", codec.CodeBadRequest)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "den", Ref: "none"}, "none", codec.CodeBadRequest)
	amy.refused(&codec.Target{Type: codec.TypeBan, Room: "bad room", Account: "x", Ref: "br"}, "br", codec.CodeBadRoom)
	amy.refused(&codec.Target{Type: codec.TypeKick, Room: "den", Account: "x", Ref: "k2"}, "k2", codec.CodeNotInRoom)
	amy.send(&codec.ReadAudit{Room: "den", Ref: "a"})
	if ev := amy.until("audit", func(ev codec.Event) bool { return ev.Type == codec.TypeAudit }); len(ev.Entries) != 0 {
		t.Fatalf("refused requests were logged: %+v", ev.Entries)
	}
}

// TestAuditLogSurvivesRestart: every action is logged in order, a room's
// operators page its entries and admins everything; with --data-dir the
// log, owners, bans and topics survive a restart.
func TestAuditLogSurvivesRestart(t *testing.T) {
	s := newSigner(t)
	dir := t.TempDir()
	cfg := Config{AuthKeys: s.keySpec, AuthAudience: "chat", DataDir: dir, JoinRate: -1, RateLimit: -1}
	first := startServerUntil(t, cfg)
	amy := account(t, first.srv, s, "amy", nil)
	bob := account(t, first.srv, s, "bob", nil)
	amy.joinRoom("den")
	bob.joinRoom("den")
	amy.ok(act(codec.TypeOp, "den", "bob", "1"), "1")
	amy.ok(&codec.SetTopic{Room: "den", Topic: "kept", Ref: "2"}, "2")
	amy.ok(&codec.Target{Type: codec.TypeBan, Room: "den", Account: "eve", Reason: "spam", Ref: "3"}, "3")
	amy.ok(&codec.Target{Type: codec.TypeMute, Room: "den", Account: "zed", Duration: i64(3600), Ref: "4"}, "4")
	bob.ok(&codec.SetPrivate{Room: "den", Private: true, Ref: "5"}, "5")
	amy.joinRoom("other")
	amy.ok(&codec.SetTopic{Room: "other", Topic: "elsewhere", Ref: "6"}, "6")
	bob.refused(&codec.ReadAudit{Room: "other", Ref: "7"}, "7", codec.CodeForbidden)
	bob.refused(&codec.ReadAudit{Ref: "8"}, "8", codec.CodeForbidden)
	want := []string{"op bob", "topic ", "ban eve", "mute zed", "private "}
	check := func(c *tclient, room string, want []string) {
		t.Helper()
		c.send(&codec.ReadAudit{Room: room, Ref: "a"})
		ev := c.until("audit", func(ev codec.Event) bool { return ev.Type == codec.TypeAudit || ev.Type == codec.TypeError })
		var got []string
		for _, e := range ev.Entries {
			got = append(got, e.Action+" "+e.Target)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("audit of %q: %v (%+v), want %v", room, got, ev, want)
		}
	}
	check(bob, "den", want)
	first.stop(t)

	second := startServerUntil(t, cfg)
	root := account(t, second.srv, s, "root", jwt.MapClaims{"role": "admin"})
	check(root, "", append(append([]string{}, want...), "topic "))
	eve := account(t, second.srv, s, "eve", nil)
	eve.refused(&codec.Join{Room: "den", Ref: "j"}, "j", codec.CodeBanned)
	amy2 := account(t, second.srv, s, "amy", nil)
	amy2.send(&codec.Join{Room: "den", Ref: "j"})
	amy2.untilAck("j")
	if ev := amy2.expect(codec.TypeTopic); ev.Topic != "kept" {
		t.Fatalf("topic after the restart %+v", ev)
	}
	amy2.ok(&codec.Target{Type: codec.TypeDeop, Room: "den", Account: "bob", Ref: "9"}, "9") // still the owner
	outsider := account(t, second.srv, s, "out", nil)
	outsider.refused(&codec.Join{Room: "den", Ref: "j"}, "j", codec.CodeInviteOnly)
}

// TestGovernanceCostsBudget: with default flood control, the governance
// requests cost more than a frame each, so a burst of them is refused
// long before a burst of frames would be.
func TestGovernanceCostsBudget(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", nil)
	amy := account(t, srv, s, "amy", nil)
	for i := 0; ; i++ {
		ref := fmt.Sprint("l", i)
		amy.send(&codec.ListRooms{Ref: ref})
		// Refused for its cost, the request's error carries its ref; a
		// frame that found the budget empty is dropped, and the error
		// that says so (at most one a second) carries none.
		if ev := amy.until("rooms "+ref, func(ev codec.Event) bool {
			return ev.Ref == ref || ev.Type == codec.TypeError && ev.Code == codec.CodeRateLimited && ev.Ref == ""
		}); ev.Type == codec.TypeError {
			if ev.Code != codec.CodeRateLimited {
				t.Fatalf("rooms %d: %+v", i, ev)
			}
			// About burst/(cost+1) pass; uncharged, about burst would.
			if i >= DefaultRateBurst/2 {
				t.Fatalf("%d rooms requests passed a burst of %d frames: each was not charged %d", i, DefaultRateBurst, roomsCostFrames)
			}
			return
		}
	}
}

// roomsCostFrames is what docs/PROTOCOL.md says a rooms request costs.
const roomsCostFrames = 10

// TestOwnershipGoesWithTheRoom: a room that dies with nothing but its
// owner in its rules is created anew by the next join, whose account owns
// it; a room whose rules say more keeps its owner after it empties.
func TestOwnershipGoesWithTheRoom(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "", func(c *Config) { c.RateLimit, c.JoinRate = -1, -1 })
	amy := account(t, srv, s, "amy", nil)
	bob := account(t, srv, s, "bob", nil)
	amy.joinRoom("tmp")
	amy.joinRoom("kept")
	amy.ok(&codec.SetTopic{Room: "kept", Topic: "mine", Ref: "t"}, "t")
	amy.ok(&codec.Leave{Room: "tmp", Ref: "l1"}, "l1")
	amy.ok(&codec.Leave{Room: "kept", Ref: "l2"}, "l2")
	bob.joinRoom("tmp")
	bob.ok(&codec.SetTopic{Room: "tmp", Topic: "bob's now", Ref: "t1"}, "t1")
	bob.joinRoom("kept")
	bob.refused(&codec.SetTopic{Room: "kept", Topic: "bob's?", Ref: "t2"}, "t2", codec.CodeForbidden)

	// A room a guest created exists: the account that joins it next does
	// not own it.
	guests := authServer(t, s, "optional", func(c *Config) { c.RateLimit, c.JoinRate = -1, -1 })
	gus := loggedIn(t, guests, "gus")
	gus.joinRoom("guests")
	cleo := account(t, guests, s, "cleo", nil)
	cleo.joinRoom("guests")
	cleo.refused(&codec.SetTopic{Room: "guests", Topic: "mine?", Ref: "t3"}, "t3", codec.CodeForbidden)
}
