package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"parley/codec"
)

// chromiumPath finds a Chromium to drive, or "" when none is installed
// (.ci/run installs Debian's chromium).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns the Chromium to drive, or skips the test.
func needChromium(t *testing.T) string {
	t.Helper()
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no Chromium installed (apt-get install chromium): the browser test needs one")
	}
	return chrome
}

// browserPage is one tab of the web chat.
type browserPage struct {
	t   *testing.T
	ctx context.Context
}

func (p *browserPage) run(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 4*waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// eval runs JavaScript on the page and returns its value.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 4*waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (p *browserPage) waitFor(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 4*waitFor)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		show, cancel := context.WithTimeout(p.ctx, waitFor)
		defer cancel()
		shown, _ := chromedp.Run(show, chromedp.Evaluate[string](`document.body.innerText + "\n--- frames:\n" + parleyDebug.state.trace.join("\n")`))
		p.t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, shown)
	}
}

// say types text into the input and sends it.
func (p *browserPage) say(text string) {
	p.t.Helper()
	p.run(chromedp.SetValue(chromedp.CSS("#input"), text), chromedp.Click(chromedp.CSS("#send")))
}

// shows is a condition: the open view shows a message holding text.
func shows(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li")].some(li => li.textContent.includes(%q))`, text)
}

// seqOf is the seq the open view shows for the message holding text.
func (p *browserPage) seqOf(text string) string {
	return eval[string](p, fmt.Sprintf(`([...document.querySelectorAll("#messages li")].find(li => li.textContent.includes(%q)) || {dataset: {}}).dataset.seq || ""`, text))
}

// newBrowser starts a headless Chromium for the test and returns a
// function that opens a tab in it.
func newBrowser(t *testing.T, chrome string) func() *browserPage {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1100, 720), chromedp.Flag("lang", "en-US"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}
	return func() *browserPage {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		// The tab lives as long as the context of its first run: give it
		// one without a timeout; actions then run under timeouts of their own.
		if err := chromedp.Do(ctx); err != nil {
			t.Fatal(err)
		}
		return &browserPage{t: t, ctx: ctx}
	}
}

// login opens the page at url and logs in as nick.
func (p *browserPage) login(url, nick string) {
	p.t.Helper()
	p.run(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-nick")),
		chromedp.SetValue(chromedp.CSS("#login-nick"), nick), chromedp.Click(chromedp.CSS("#login-button")))
	p.waitFor(nick+" connected", `document.getElementById("status").textContent === "connected"`)
}

// TestBrowserChat drives two pages of the web chat in a real headless
// Chromium: login, the lobby, a room, a DM, and a dropped connection that
// recovers the messages said meanwhile; a TCP client sees the same
// conversation with the same seqs. It saves a screenshot (in
// $PARLEY_SCREENSHOT when set, else in the test's temporary directory).
func TestBrowserChat(t *testing.T) {
	chrome := needChromium(t)
	srv := startServer(t, Config{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	page := newBrowser(t, chrome)
	url := "http://" + srv.WSAddr().String() + "/"
	login := func(p *browserPage, nick string) { p.login(url, nick) }
	tcp := loggedIn(t, srv, "observer")
	amy, ming := page(), page()
	login(amy, "amy")
	login(ming, "小明")

	amy.say("hello from the browser")
	ming.waitFor("amy's lobby message", shows("hello from the browser"))
	lobbyMsg := tcp.until("amy's lobby message", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.From == "amy" })
	if got := ming.seqOf("hello from the browser"); got != fmt.Sprint(lobbyMsg.Seq) {
		t.Fatalf("the page shows seq %q, TCP got %d", got, lobbyMsg.Seq)
	}

	tcp.joinRoom("golang")
	amy.say("/join golang")
	ming.say("/join golang")
	ming.waitFor("the golang room", `document.getElementById("title").textContent.startsWith("#golang")`)
	ming.say("中文也可以: a long line " + strings.Repeat("that wraps ", 12))
	amy.waitFor("小明's golang message", shows("中文也可以"))
	tcp.until("小明's golang message", func(e codec.Event) bool {
		return e.Type == codec.TypeMsg && e.Room == "golang" && strings.HasPrefix(e.Body, "中文")
	})

	amy.say("/dm 小明 a secret")
	ming.waitFor("the DM in the side list", `[...document.querySelectorAll("#dms li")].some(li => li.dataset.name === "amy" && li.querySelector(".unread").textContent === "1")`)
	ming.run(chromedp.Click(chromedp.CSS(`#dms li[data-name="amy"]`)))
	ming.waitFor("the DM", shows("a secret"))
	ming.run(chromedp.Click(chromedp.CSS(`#rooms li[data-name="golang"]`)))
	amy.run(chromedp.Click(chromedp.CSS(`#rooms li[data-name="golang"]`))) // /dm opened the DM view

	// 小明's connection drops and stays down for a while; two messages are
	// said meanwhile, one from the browser and one from TCP.
	eval[any](ming, `parleyDebug.drop(1500), null`)
	ming.waitFor("the drop", `document.getElementById("status").dataset.state === "reconnecting"`)
	amy.say("said while you were away")
	tcp.send(&codec.Say{Room: "golang", Body: "and one from TCP", Ref: "away"})
	awaySeq := tcp.untilAck("away").Seq
	ming.waitFor("the reconnect", `document.getElementById("status").textContent === "connected"`)
	ming.waitFor("the missed messages", shows("said while you were away")+" && "+shows("and one from TCP"))
	if got := ming.seqOf("and one from TCP"); got != fmt.Sprint(awaySeq) {
		t.Fatalf("after the resume the page shows seq %q for TCP's message, want %d", got, awaySeq)
	}
	if recovered := ming.seqOf("could not all be recovered"); recovered != "" {
		t.Fatal("the resume said messages were lost")
	}
	ming.say("back again")
	tcp.until("小明 back", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Body == "back again" })

	png, err := chromedp.Run(ming.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	// On a phone-sized screen the side list folds behind the menu button
	// and the input stays in reach.
	amy.run(chromedp.EmulateViewport(390, 760))
	amy.waitFor("the phone layout", `getComputedStyle(document.getElementById("side")).display === "none" && getComputedStyle(document.getElementById("menu")).display !== "none" && document.getElementById("input").getBoundingClientRect().bottom <= innerHeight`)
	amy.run(chromedp.Click(chromedp.CSS("#menu")))
	amy.waitFor("the side list opened", `getComputedStyle(document.getElementById("side")).display !== "none"`)
	amy.run(chromedp.Click(chromedp.CSS(`#rooms li[data-name="lobby"]`)))
	amy.waitFor("the lobby on the phone", shows("hello from the browser"))
	path := os.Getenv("PARLEY_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "web-chat.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
