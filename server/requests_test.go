package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/codec"
)

// TestWhoCostAndAfter: who costs ten frames of the flood budget, pages
// through the sorted index, and refuses an oversized after before folding
// it.
func TestWhoCostAndAfter(t *testing.T) {
	srv := startServer(t, Config{RateLimit: 0.001, RateBurst: 40})
	c := loggedIn(t, srv, "amy")
	answers := map[string]int{}
	for i := 0; i < 5; i++ {
		c.send(&codec.Who{Ref: fmt.Sprint(i)})
	}
	for i := 0; i < 5; i++ {
		ev := c.until("an answer", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers || ev.Type == codec.TypeError })
		answers[ev.Type+string(ev.Code)]++
	}
	// Login takes 1 of the 40 frames, each who 10: three fit.
	if answers["users"] != 3 || answers["errorrate_limited"] != 2 {
		t.Fatalf("answers to 5 who within a burst of 40 frames: %v, want 3 users and 2 rate_limited", answers)
	}
	srv2 := startServer(t, Config{})
	c2 := loggedIn(t, srv2, "bob")
	c2.send(&codec.Who{After: strings.Repeat("ａ", 20000), Ref: "w"})
	if ev := c2.expectError(codec.CodeBadRequest); ev.Ref != "w" {
		t.Fatalf("error %+v", ev)
	}
}

// TestWhoOnlinePagesInOrder: the sorted index pages every user once, in
// order, across pages, while users come and go.
func TestWhoOnlinePagesInOrder(t *testing.T) {
	// 1,200 logins take minutes on a loaded machine with the race
	// detector: nobody may time out meanwhile.
	srv := startServer(t, Config{RateLimit: -1, IdleTimeout: time.Hour, Heartbeat: time.Hour})
	var want []string
	for i := 0; i < 1200; i++ {
		nick := fmt.Sprintf("u%04d", i)
		want = append(want, nick)
		c := dial(t, srv)
		c.send(&codec.Login{Nick: nick})
	}
	reaches(t, "every login", 1200, func() int { return srv.Stats().Online })
	asker := loggedIn(t, srv, "zz")
	want = append(want, "zz")
	sort.Strings(want)
	var got []string
	after := ""
	for {
		asker.send(&codec.Who{After: after, Ref: "w"})
		ev := asker.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers })
		if ev.Count != 1201 {
			t.Fatalf("count %d", ev.Count)
		}
		got = append(got, ev.Nicks...)
		if !ev.More {
			break
		}
		after = ev.Nicks[len(ev.Nicks)-1]
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged %d nicks, want %d in order", len(got), len(want))
	}
}

// TestConfusableNicks: nicks that look like one online are refused, as
// are invisible ones and ones that mix scripts.
func TestConfusableNicks(t *testing.T) {
	srv := startServer(t, Config{})
	loggedIn(t, srv, "admin")
	loggedIn(t, srv, "bob")
	cases := map[string]codec.Code{
		"аdmin":       codec.CodeBadNick,   // Cyrillic а
		"bοb":         codec.CodeBadNick,   // Greek ο
		"ａｄｍｉｎ":       codec.CodeNickTaken, // full width
		"𝐚𝐝𝐦𝐢𝐧":       codec.CodeBadNick,   // mathematical bold
		"admın":       codec.CodeNickTaken, // dotless i
		"adminʼ":      codec.CodeBadNick,   // modifier apostrophe
		"admin\u3164": codec.CodeBadNick,   // Hangul filler
		"\u3164":      codec.CodeBadNick,
		"ADMIN":       codec.CodeNickTaken,
		"a\x01b":      codec.CodeBadNick,
		"a\u200bdmin": codec.CodeBadNick, // zero-width space
		"\u202eadmin": codec.CodeBadNick,
	}
	c := dial(t, srv)
	for nick, code := range cases {
		c.send(&codec.Login{Nick: nick, Ref: nick})
		if ev := c.expectError(code); ev.Ref != nick {
			t.Fatalf("%q: %+v", nick, ev)
		}
	}
	c.send(&codec.Login{Nick: "小明"})
	if ev := c.expect(codec.TypeWelcome); ev.Nick != "小明" {
		t.Fatalf("welcome %+v", ev)
	}
}

// TestControlCharactersAndDuplicateKeys: bodies with terminal escapes
// and other controls are refused (newline and tab pass), duplicate keys
// make a frame bad_json, and room names fold like nicks.
func TestControlCharactersAndDuplicateKeys(t *testing.T) {
	srv := startServer(t, Config{})
	a, b := loggedIn(t, srv, "amy"), loggedIn(t, srv, "ben")
	a.expect(codec.TypeJoined)
	for _, body := range []string{"\x1b[31mred", "bell\x07", "cr\r", "del\x7f", "c1\u0085"} {
		a.send(&codec.Say{Body: body, Ref: "s"})
		a.expectError(codec.CodeBadRequest)
	}
	a.send(&codec.Say{Body: "two\nlines\tand a tab", Ref: "ok"})
	a.untilAck("ok")
	if ev := b.expect(codec.TypeMsg); ev.Body != "two\nlines\tand a tab" {
		t.Fatalf("body %q", ev.Body)
	}
	a.sendRaw(rawFrame(`{"type":"say","type":"dm","to":"ben","body":"x"}`))
	a.expectError(codec.CodeBadJSON)
	a.send(&codec.Join{Room: "LOBBY", Ref: "j"})
	a.untilAck("j")
	a.send(&codec.Say{Room: "Lobby", Body: "same room", Ref: "s2"})
	a.untilAck("s2")
	if ev := b.expect(codec.TypeMsg); ev.Room != codec.Lobby {
		t.Fatalf("room %q", ev.Room)
	}
	a.send(&codec.Join{Room: "Golang"})
	b.send(&codec.Join{Room: "GOLANG", Ref: "g"})
	b.untilAck("g")
	a.send(&codec.Who{Room: "golang", Ref: "w"})
	if ev := a.until("users", func(ev codec.Event) bool { return ev.Type == codec.TypeUsers }); ev.Count != 2 || ev.Room != "golang" {
		t.Fatalf("who golang = %+v", ev)
	}
}

// syncBuf is a log sink for tests.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLifecycleLogsAtDebug: at info, connections cost no log line each;
// one line per interval counts them, and repeated warnings are rate
// limited.
func TestLifecycleLogsAtDebug(t *testing.T) {
	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := startServer(t, Config{Logger: logger, StatsInterval: 50 * time.Millisecond, MaxConns: 50})
	for i := 0; i < 50; i++ {
		c := loggedIn(t, srv, fmt.Sprint("u", i))
		defer func() { c.send(&codec.Quit{}) }()
	}
	for i := 0; i < 30; i++ {
		c := dial(t, srv)
		c.expectBye(codec.ReasonServerFull)
	}
	// The counters lines count what changed since the one before: 50
	// logins in all, over one line or more.
	eventually(t, "counters lines with the logins", func() bool { return sumField(logs.String(), "logins=") == 50 })
	out := logs.String()
	for _, per := range []string{"connection opened", "msg=login", "connection closed"} {
		if strings.Contains(out, per) {
			t.Fatalf("a line per connection at info: %q\n%s", per, out)
		}
	}
	if n := strings.Count(out, "connection refused"); n != 1 {
		t.Fatalf("%d refusal warnings for 30 refusals, want 1 (rate limited)\n%s", n, out)
	}
}

// TestJoinBudget: join/leave toggling runs out of its budget.
func TestJoinBudget(t *testing.T) {
	srv := startServer(t, Config{JoinRate: 0.001, JoinBurst: 6})
	toggler := loggedIn(t, srv, "toggler")
	limited := 0
	for i := 0; i < 10; i++ {
		var m codec.Message = &codec.Join{Room: fmt.Sprint("r", i/2), Ref: "t"}
		if i%2 == 1 {
			m = &codec.Leave{Room: fmt.Sprint("r", i/2), Ref: "t"}
		}
		if i >= 6 {
			m = &codec.Join{Room: fmt.Sprint("x", i), Ref: "t"}
		}
		toggler.send(m)
		ev := toggler.until("an answer", func(ev codec.Event) bool { return ev.Ref == "t" })
		if ev.Type == codec.TypeError {
			if ev.Code != codec.CodeRateLimited {
				t.Fatalf("toggle %d: %s", i, ev.Code)
			}
			limited++
		}
	}
	if limited != 4 {
		t.Fatalf("%d of 10 toggles rate limited, want 4 (burst 6)", limited)
	}
}

// TestPresenceHysteresis: a room that went over the presence limit keeps
// counting changes until it is a tenth below the limit, so members going
// back and forth at the limit do not cost a frame to everyone each time.
func TestPresenceHysteresis(t *testing.T) {
	srv := startServer(t, Config{JoinRate: -1, PresenceLimit: 20, PresenceInterval: time.Hour})
	watcher := loggedIn(t, srv, "watcher")
	watcher.joinRoom("r")
	var members []*tclient
	for i := 0; i < 20; i++ {
		c := loggedIn(t, srv, fmt.Sprint("m", i))
		c.joinRoom("r")
		members = append(members, c)
	}
	// 21 members: over the limit. One leaves (20, at the limit), then
	// another toggles between 19 and 20, never a tenth under the limit.
	members[0].send(&codec.Leave{Room: "r", Ref: "l"})
	members[0].untilAck("l")
	watcher.send(&codec.Ping{})
	for ev := watcher.next(); ev.Type != codec.TypePong; ev = watcher.next() {
	}
	toggler := members[2]
	for i := 0; i < 6; i++ {
		var m codec.Message = &codec.Leave{Room: "r", Ref: "t"}
		if i%2 == 1 {
			m = &codec.Join{Room: "r", Ref: "t"}
		}
		toggler.send(m)
		toggler.untilAck("t")
	}
	watcher.send(&codec.Ping{})
	individual := 0
	for ev := watcher.next(); ev.Type != codec.TypePong; ev = watcher.next() {
		if (ev.Type == codec.TypeJoined || ev.Type == codec.TypeLeft) && ev.Nick == "m2" {
			individual++
		}
	}
	if individual != 0 {
		t.Fatalf("watcher got %d individual notices of the toggler near the limit", individual)
	}
}
