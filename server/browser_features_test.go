package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"parley/codec"
)

// texts is a JavaScript expression: the texts of the open view's lines.
const texts = `[...document.querySelectorAll("#messages li")].map(li => li.textContent)`

// TestBrowserReloadResumes: a reload keeps the tab's session: the same
// nick at once (the resume token, not a 30 s wait), its rooms and the room
// on screen, and the messages said while it reloaded, each once and with
// the seqs TCP sees.
func TestBrowserReloadResumes(t *testing.T) {
	chrome := needChromium(t)
	srv := startServer(t, Config{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	url := "http://" + srv.WSAddr().String() + "/"
	amy := newBrowser(t, chrome)()
	amy.login(url, "amy")
	tcp := loggedIn(t, srv, "observer")
	tcp.joinRoom("golang")
	amy.say("/join golang")
	amy.waitFor("the golang room", `document.getElementById("title").textContent.startsWith("#golang")`)
	tcp.send(&codec.Say{Room: "golang", Body: "before the reload", Ref: "b"})
	tcp.untilAck("b")
	amy.waitFor("the first message", shows("before the reload"))
	amy.say("mine before the reload")
	amy.waitFor("amy's message acked", `[...document.querySelectorAll("#messages li.mine")].some(li => li.dataset.seq)`)

	// Reload while the server holds the page's next messages back: the
	// page is away between its old connection's close and the new login.
	amy.run(chromedp.Reload())
	tcp.send(&codec.Say{Room: "golang", Body: "during the reload", Ref: "d"})
	during := tcp.untilAck("d").Seq
	amy.waitFor("connected after the reload", `document.getElementById("status").textContent === "connected"`)
	amy.waitFor("the room on screen again", `document.getElementById("title").textContent === "#golang · amy"`)
	amy.waitFor("the messages back", shows("before the reload")+" && "+shows("mine before the reload")+" && "+shows("during the reload"))
	if got := amy.seqOf("during the reload"); got != fmt.Sprint(during) {
		t.Fatalf("the page shows seq %q for the message said during the reload, TCP got %d", got, during)
	}
	lines := eval[[]string](amy, texts)
	for _, want := range []string{"observerbefore the reload", "amymine before the reload", "observerduring the reload"} {
		n := 0
		for _, l := range lines {
			if strings.HasSuffix(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%q shown %d times after the reload:\n%s", want, n, strings.Join(lines, "\n"))
		}
	}
	if eval[bool](amy, `!document.getElementById("login").hidden`) {
		t.Fatal("the reload shows the login form")
	}
	rooms := eval[[]string](amy, `[...document.querySelectorAll("#rooms li")].map(li => li.dataset.name)`)
	if strings.Join(rooms, ",") != "lobby,golang" {
		t.Fatalf("rooms after the reload: %v", rooms)
	}
	amy.say("after the reload")
	if m := tcp.until("amy after the reload", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Room == "golang" }); m.From != "amy" || m.Body != "after the reload" {
		t.Fatalf("TCP got %+v", m)
	}
	amy.waitFor("the session saved", `(sessionStorage.getItem("parley.session") || "").includes('"golang"')`)
	if eval[int](amy, `localStorage.length`) != 0 {
		t.Fatal("the page wrote to localStorage")
	}
}

// TestBrowserConversation: the web chat's views stay true under joins,
// leaves and messages: member counts, notice order, the join/leave
// summary, unread counts in the title and on the phone's menu, links,
// mentions, a refused DM, and input kept when a message is too long.
// With $PARLEY_SCREENSHOTS set it saves the desktop, phone and dark
// screenshots the README shows there.
func TestBrowserConversation(t *testing.T) {
	chrome := needChromium(t)
	srv := startServer(t, Config{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	url := "http://" + srv.WSAddr().String() + "/"
	tab := newBrowser(t, chrome)
	tcp := loggedIn(t, srv, "bob")
	tcp.send(&codec.Say{Body: "first words of the day", Ref: "s0"})
	tcp.untilAck("s0")
	amy := tab()
	amy.login(url, "amy")
	amy.waitFor("the lobby's history", shows("first words of the day"))
	tcp.send(&codec.Say{Body: "and the next ones", Ref: "s1"})
	tcp.untilAck("s1")
	amy.waitFor("bob's message", shows("and the next ones"))
	lines := eval[[]string](amy, texts)
	welcome, before, after := -1, -1, -1
	for i, l := range lines {
		switch {
		case strings.Contains(l, "welcome, amy"):
			welcome = i
		case strings.HasSuffix(l, "first words of the day"):
			before = i
		case strings.HasSuffix(l, "and the next ones"):
			after = i
		}
	}
	if !(before < welcome && welcome < after) {
		t.Fatalf("lines out of order (history %d, welcome %d, later message %d):\n%s", before, welcome, after, strings.Join(lines, "\n"))
	}

	// Five join, two leave: one summary line; the count is the names listed.
	var guests []*tclient
	for i := range 5 {
		guests = append(guests, loggedIn(t, srv, fmt.Sprint("guest", i)))
	}
	amy.waitFor("five joins", `document.querySelectorAll("#members li").length === 7`)
	for _, g := range guests[:2] {
		g.send(&codec.Quit{})
	}
	amy.waitFor("two leaves", `document.querySelectorAll("#members li").length === 5`)
	if c := eval[string](amy, `document.getElementById("member-count").textContent`); c != "(5)" {
		t.Fatalf("member count %s over 5 names", c)
	}
	summaries := eval[[]string](amy, `[...document.querySelectorAll("#messages li.notice")].map(li => li.textContent).filter(t => t.includes("joined") || t.includes(" left"))`)
	if len(summaries) != 1 || !strings.Contains(summaries[0], "joined") || !strings.Contains(summaries[0], "left") {
		t.Fatalf("join/leave lines: %q", summaries)
	}

	// A link is a link, with rel noopener noreferrer; javascript: is text;
	// a mention of amy is highlighted.
	tcp.send(&codec.Say{Body: "amy: see https://example.com/a?b=1. and javascript:alert(1)", Ref: "s2"})
	tcp.untilAck("s2")
	amy.waitFor("the link", `document.querySelectorAll("#messages a").length === 1`)
	link := eval[map[string]string](amy, `(a => ({href: a.href, rel: a.rel, text: a.textContent, mention: String(a.closest("li").classList.contains("mention"))}))(document.querySelector("#messages a"))`)
	if link["href"] != "https://example.com/a?b=1" || link["rel"] != "noopener noreferrer" || link["text"] != "https://example.com/a?b=1" || link["mention"] != "true" {
		t.Fatalf("link %v", link)
	}
	if eval[bool](amy, `[...document.querySelectorAll("a")].some(a => a.href.startsWith("javascript"))`) {
		t.Fatal("a javascript: URL became a link")
	}

	// Too long: refused before sending, and the text stays in the box.
	long := strings.Repeat("x", 5000)
	amy.say(long)
	amy.waitFor("the too-long notice", shows("Too long to send"))
	if v := eval[int](amy, `document.getElementById("input").value.length`); v != 5000 {
		t.Fatalf("the input holds %d characters after a too-long message, want 5000", v)
	}
	eval[any](amy, `document.getElementById("input").value = "", null`)

	// A DM to nobody: a human error, the line back in the box, and no
	// conversation left open.
	amy.say("/dm nobody hello?")
	amy.waitFor("the DM refused", shows("Nobody of that name is online"))
	if eval[int](amy, `document.querySelectorAll("#dms li").length`) != 0 || eval[string](amy, `document.getElementById("input").value`) != "/dm nobody hello?" {
		t.Fatal("a refused DM opened a conversation or lost the line")
	}
	eval[any](amy, `document.getElementById("input").value = "", null`)
	amy.say("/me waves")
	tcp.until("amy's action", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Body == "/me waves" })
	amy.waitFor("the action line", `[...document.querySelectorAll("#messages li.action")].some(li => li.textContent.endsWith("* amy waves"))`)

	// On a phone, a DM while amy reads the lobby: the menu's badge and the
	// title count it.
	shoot := screenshots(t, amy)
	shoot("web-chat-desktop.png")
	amy.run(chromedp.EmulateViewport(390, 760))
	tcp.send(&codec.DM{To: "amy", Body: "psst", Ref: "d"})
	tcp.untilAck("d")
	amy.waitFor("the menu badge", `document.getElementById("menu-badge").textContent === "1" && getComputedStyle(document.getElementById("menu-badge")).display !== "none"`)
	if title := eval[string](amy, `document.title`); !strings.HasPrefix(title, "(1) ") || !strings.HasSuffix(title, "Parley") {
		t.Fatalf("title %q", title)
	}
	if eval[bool](amy, `document.documentElement.scrollHeight > innerHeight || document.body.scrollHeight > innerHeight`) {
		t.Fatal("the page scrolls as a whole")
	}
	if fs := eval[string](amy, `getComputedStyle(document.getElementById("input")).fontSize`); fs != "16px" {
		t.Fatalf("input font size %s: phones zoom in below 16px", fs)
	}
	shoot("web-chat-phone.png")
	amy.run(chromedp.Click(chromedp.CSS("#menu")), chromedp.Click(chromedp.CSS(`#dms li[data-name="bob"]`)))
	amy.waitFor("the DM read", shows("psst")+` && document.title === "Parley"`)

	// Dark mode follows the system's.
	amy.run(chromedp.EmulateViewport(1100, 720), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	amy.waitFor("dark mode", `(c => c.slice(4, -1).split(",").map(Number).reduce((a, b) => a + b) < 150)(getComputedStyle(document.body).backgroundColor)`)
	amy.run(chromedp.Click(chromedp.CSS(`#rooms li[data-name="lobby"]`)))
	shoot("web-chat-dark.png")
}

// screenshots returns a function saving a screenshot of p under name, in
// $PARLEY_SCREENSHOTS when set (make screenshots: docs/), else in the
// test's temporary directory.
func screenshots(t *testing.T, p *browserPage) func(name string) {
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	return func(name string) {
		t.Helper()
		png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowserLoginKnowsAuth: the page asks /info whether the server takes
// nicks or tokens, and shows the fields that apply; a refused token is
// told in words. /favicon.ico is the page's icon.
func TestBrowserLoginKnowsAuth(t *testing.T) {
	s := newSigner(t)
	srv := authServer(t, s, "required", func(c *Config) { c.WSAddr = "127.0.0.1:0" })
	base := "http://" + srv.WSAddr().String()
	res, err := http.Get(base + "/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Auth    string `json:"auth"`
		MaxBody int    `json:"max_body"`
	}
	err = json.NewDecoder(res.Body).Decode(&info)
	res.Body.Close()
	if err != nil || info.Auth != "required" || info.MaxBody != codec.DefaultMaxBody {
		t.Fatalf("/info = %+v, %v", info, err)
	}
	res, err = http.Get(base + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	icon, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(icon), "<svg") {
		t.Fatalf("/favicon.ico: %d %q", res.StatusCode, icon)
	}

	chrome := needChromium(t)
	p := newBrowser(t, chrome)()
	p.run(chromedp.Navigate(base + "/"))
	p.waitFor("the token form", `document.getElementById("nick-field").hidden && !document.getElementById("token-field").hidden && document.getElementById("login-hint").textContent.includes("requires a token")`)
	p.run(chromedp.SetValue(chromedp.CSS("#login-token"), "not-a-token"), chromedp.Click(chromedp.CSS("#login-button")))
	p.waitFor("the refusal in words", `document.getElementById("login-error").textContent.startsWith("The token was refused")`)
}

// TestBrowserGovernsARoom: in a real Chromium, the owner of a room sets
// its topic (shown in the bar), sees its members' roles, and kicks and
// bans from the member list; the kicked member, a TCP client, is told;
// a second page finds the room in the public list and joins it by a
// click, topic and all.
func TestBrowserGovernsARoom(t *testing.T) {
	chrome := needChromium(t)
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.WSAddr = "127.0.0.1:0"; c.RateLimit = -1 })
	base := "http://" + srv.WSAddr().String() + "/"
	open := newBrowser(t, chrome)
	amy := open()
	amy.run(chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#login-token")),
		chromedp.SetValue(chromedp.CSS("#login-token"), s.tokenWith("amy", nil)), chromedp.Click(chromedp.CSS("#login-button")))
	amy.waitFor("amy connected", `document.getElementById("status").textContent === "connected"`)
	amy.say("/join den")
	amy.waitFor("den open", `document.getElementById("title").textContent.startsWith("#den")`)
	bob := account(t, srv, s, "bob", nil)
	bob.joinRoom("den")
	amy.say("/topic all things den")
	amy.waitFor("the topic in the bar", `document.getElementById("topic").textContent === "all things den"`)
	bob.until("the topic", func(ev codec.Event) bool { return ev.Type == codec.TypeTopic && ev.Topic == "all things den" })
	amy.say("/who")
	amy.waitFor("amy marked owner, bob with buttons", `(() => {
		const me = document.querySelector('#members li[data-nick="amy"]'), b = document.querySelector('#members li[data-nick="bob"]');
		return !!(me && me.textContent.includes("owner") && !me.querySelector("button") && b && b.querySelector("button.kick") && b.querySelector("button.op"));
	})()`)
	amy.run(chromedp.Click(chromedp.CSS(`#members li[data-nick="bob"] button.kick`)))
	bob.untilLeft("bob", "den", codec.ReasonKick)
	amy.waitFor("the kick shown", shows("bob kicked by amy"))

	// Typing, both ways.
	bob.joinRoom("den")
	bob.send(&codec.Typing{Room: "den"})
	amy.waitFor("bob typing shown", `document.getElementById("typing").textContent === "bob is typing…"`)
	amy.run(chromedp.SendKeys(chromedp.CSS("#input"), "hmm"))
	bob.until("amy typing", func(ev codec.Event) bool { return ev.Type == codec.TypeTyping && ev.Nick == "amy" && ev.Room == "den" })
	eval[string](amy, `document.getElementById("input").value = ""`)

	gus := open()
	gus.login(base, "gus")
	// The list is a snapshot rebuilt at most once a second: ask until it
	// holds den.
	gus.waitFor("den in the public list", `(() => {
		const ok = [...document.querySelectorAll("#public-rooms li")].some(li => li.dataset.name === "den" && li.textContent.includes("all things den"));
		if (!ok && Date.now() - (window.lastAsk || 0) > 200) { window.lastAsk = Date.now(); document.getElementById("list-rooms").click(); }
		return ok;
	})()`)
	gus.run(chromedp.Click(chromedp.CSS(`#public-rooms li[data-name="den"]`)))
	gus.waitFor("den joined with its topic", `document.getElementById("title").textContent.startsWith("#den") && document.getElementById("topic").textContent === "all things den"`)
	gus.say("/kick amy")
	gus.waitFor("a guest refused", shows("You do not hold the role"))
	amy.waitFor("gus in amy's member list", `!!document.querySelector('#members li[data-nick="~gus"] button.ban')`)
	amy.run(chromedp.Click(chromedp.CSS(`#members li[data-nick="~gus"] button.kick`)))
	gus.waitFor("gus told it was removed", `document.getElementById("title").textContent.startsWith("#lobby") && `+shows("you were removed from den (kick)"))
}

// TestBrowserMessageFeatures: the web chat of an account that was away
// shows the direct message left for it, counts the unread messages and
// the mention of a room from its read marker and draws "new since you
// left" before them; its hover actions reply (shown as a quote), react
// (a chip), edit and delete, and a TCP member sees each; that member's
// edit and reaction change the message on the page.
func TestBrowserMessageFeatures(t *testing.T) {
	chrome := needChromium(t)
	s := newSigner(t)
	srv := authServer(t, s, "optional", func(c *Config) { c.WSAddr = "127.0.0.1:0"; c.RateLimit = -1 })
	base := "http://" + srv.WSAddr().String() + "/"
	bob := account(t, srv, s, "bob", nil)
	bob.joinRoom("den")
	away := account(t, srv, s, "amy", nil)
	away.joinRoom("den")
	m1 := bob.said("den", "before you left", "s1")
	away.ok(&codec.Mark{Room: "den", Seq: m1, Ref: "m"}, "m")
	away.send(&codec.Quit{})
	away.untilBye(codec.ReasonQuit)
	bob.waitOffline("amy")
	m2 := bob.said("den", "after you left, @amy", "s2")
	bob.send(&codec.DM{To: "amy", Body: "ping me when back", Ref: "d"})
	waited := bob.answer("d").Seq

	amy := newBrowser(t, chrome)()
	amy.run(chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#login-token")),
		chromedp.SetValue(chromedp.CSS("#login-token"), s.tokenWith("amy", nil)), chromedp.Click(chromedp.CSS("#login-button")))
	amy.waitFor("the waiting DM in the side list", `(() => { const d = document.querySelector('#dms li[data-name="bob"]'); return !!d && d.querySelector(".unread").textContent === "1"; })()`)
	// A new device: the rooms the account reads are joined, with their counts.
	amy.waitFor("den joined, counted unread, with a mention", `(() => { const r = document.querySelector('#rooms li[data-name="den"] .unread'); return !!r && r.textContent === "1" && r.classList.contains("mentioned"); })()`)
	amy.run(chromedp.Click(chromedp.CSS(`#rooms li[data-name="den"]`)))
	amy.waitFor("the separator before the new message", `(() => {
		const lis = [...document.querySelectorAll("#messages li")], i = lis.findIndex(li => li.classList.contains("since"));
		return i >= 0 && lis[i+1] && lis[i+1].dataset.seq === "`+fmt.Sprint(m2)+`" && lis.slice(0, i).some(li => li.dataset.seq === "`+fmt.Sprint(m1)+`");
	})()`)
	msg := func(seq uint64) string {
		return fmt.Sprintf(`document.querySelector('#messages li[data-seq="%d"]')`, seq)
	}

	// React and reply from the hover bar.
	eval[bool](amy, msg(m2)+`.querySelector('.acts button[title="react 👍"]').click() || true`)
	if ev := bob.until("amy's reaction", func(ev codec.Event) bool { return ev.Type == codec.TypeReaction }); ev.Of != m2 || ev.Emoji != "👍" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.waitFor("amy's chip", msg(m2)+`?.querySelector(".chip.me")?.textContent === "👍 1"`)
	eval[bool](amy, msg(m2)+`.querySelector(".acts button.reply").click() || true`)
	amy.waitFor("the reply bar", `!document.getElementById("composing").hidden`)
	amy.say("sure")
	reply := bob.until("amy's reply", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.From == "amy" })
	if reply.ReplyTo != m2 || reply.Body != "sure" {
		t.Fatalf("bob got %+v", reply)
	}
	amy.waitFor("the quote above the reply", msg(reply.Seq)+`?.querySelector(".quote")?.textContent === "↪ bob: after you left, @amy"`)

	// Edit and delete her own.
	eval[bool](amy, msg(reply.Seq)+`.querySelector(".acts button.edit").click() || true`)
	amy.waitFor("the input holds the text", `document.getElementById("input").value === "sure"`)
	amy.say("sure thing")
	if ev := bob.until("amy's edit", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited }); ev.Of != reply.Seq || ev.Body != "sure thing" {
		t.Fatalf("bob got %+v", ev)
	}
	amy.waitFor("edited on the page", msg(reply.Seq)+`?.textContent.includes("sure thing (edited)")`)
	eval[bool](amy, msg(reply.Seq)+`.querySelector(".acts button.delete").click() || true`)
	bob.until("amy's delete", func(ev codec.Event) bool { return ev.Type == codec.TypeDeleted && ev.Of == reply.Seq })
	amy.waitFor("the tombstone", msg(reply.Seq)+`?.textContent.includes("message deleted")`)
	if eval[bool](amy, msg(m2)+`.querySelector(".acts button.edit") !== null`) {
		t.Fatal("the page offers to edit bob's message")
	}

	// Bob's edit and reaction reach the page.
	bob.ok(&codec.Edit{Room: "den", Seq: m2, Body: "after you left (fixed)", Ref: "e"}, "e")
	bob.ok(&codec.React{Room: "den", Seq: m2, Emoji: "🎉", Ref: "r"}, "r")
	amy.waitFor("bob's edit and reaction", msg(m2)+`?.textContent.includes("after you left (fixed) (edited)") && [...`+msg(m2)+`.querySelectorAll(".chip")].map(c => c.textContent).join(",") === "👍 1,🎉 1"`)

	// Direct messages: bob edits the one that waited for amy; amy edits
	// hers from the hover bar.
	bob.ok(&codec.Edit{DM: true, Seq: waited, Body: "ping me when you are back", Ref: "de"}, "de")
	amy.run(chromedp.Click(chromedp.CSS(`#dms li[data-name="bob"]`)))
	amy.waitFor("bob's edited message", shows("ping me when you are back (edited)"))
	amy.say("back now")
	dm := bob.until("amy's direct message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "" })
	amy.waitFor("amy's message numbered", `[...document.querySelectorAll("#messages li.mine")].some(li => li.dataset.seq && li.textContent.includes("back now"))`)
	eval[bool](amy, `[...document.querySelectorAll("#messages li.mine")].find(li => li.textContent.includes("back now")).querySelector(".acts button.edit").click() || true`)
	amy.say("back now, hi")
	if ev := bob.until("the edit of amy's message", func(ev codec.Event) bool { return ev.Type == codec.TypeEdited && ev.Room == "" }); ev.Of != dm.Seq || ev.Body != "back now, hi" {
		t.Fatalf("bob got %+v for %+v", ev, dm)
	}
	amy.waitFor("amy's edit shown", shows("back now, hi (edited)"))
}
