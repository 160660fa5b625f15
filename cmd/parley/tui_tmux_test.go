package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-runewidth"

	"parley/client"
	"parley/codec"
	"parley/server"
	"parley/server/servertest"
)

// pane is `parley chat` running full-screen in a tmux pane of a tmux
// server of this test's own.
type pane struct {
	t      *testing.T
	socket string
}

// startPane runs bin with args in a new tmux session of w×h cells. .ci/run
// installs tmux; without it the test is skipped.
func startPane(t *testing.T, w, h int, command string) *pane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	// t.TempDir's last element is the same ("001") in every process: name
	// the tmux server after this process and the test.
	p := &pane{t: t, socket: fmt.Sprintf("parley-test-%d-%s", os.Getpid(), t.Name())}
	p.tmux("new-session", "-d", "-s", "chat", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", p.socket, "kill-server").Run() })
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.socket}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys types keys ("Enter", "Up", or text) into the pane.
func (p *pane) keys(keys ...string) {
	p.t.Helper()
	p.tmux(append([]string{"send-keys", "-t", "chat"}, keys...)...)
}

func (p *pane) screen() string { p.t.Helper(); return p.tmux("capture-pane", "-p", "-t", "chat") }

// waitScreen waits until the screen shows every one of want.
func (p *pane) waitScreen(want ...string) string {
	p.t.Helper()
	var s string
	servertest.Eventually(p.t, waitFor, fmt.Sprintf("the screen to show %q", want), func() error {
		s = p.screen()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return fmt.Errorf("it lacks %q:\n%s", w, s)
			}
		}
		return nil
	})
	return s
}

// TestTUIInTmux runs the real binary in a tmux pane: it types, switches
// rooms, resizes the window and reads the screen back.
func TestTUIInTmux(t *testing.T) {
	bin := buildBinary(t)
	addr := startServer(t)
	p := startPane(t, 72, 16, bin+" chat --addr "+addr+" --nick 小明")
	p.waitScreen("welcome, 小明")
	p.waitScreen("lobby (1 member) · connected · 小明@")

	bob := startChat(t, "--addr", addr, "--nick", "bob")
	bob.waitOutput(t, "* welcome, bob")
	p.waitScreen("bob joined lobby")
	bob.say(t, "你好 小明")
	p.waitScreen("[lobby] bob: 你好 小明")

	p.keys("大家好，我是小明。This line is long enough that it has to wrap at the edge.", "Enter")
	bob.waitOutput(t, "[lobby] 小明: 大家好，我是小明。This line is long enough that it has to wrap at the edge.")
	// Acked: shown without the sending mark and with its number, its
	// continuation indented.
	p.waitScreen("大家好，我是小明。This line is long", "#2")
	if s := p.screen(); strings.Contains(s, "edge. …") {
		t.Fatalf("the acked line still shows the sending mark:\n%s", s)
	}
	p.keys("/dm bob psst", "Enter")
	bob.waitOutput(t, "[dm] 小明: psst")
	p.keys("/join go", "Enter")
	p.waitScreen("go (1 member) · connected")
	p.keys("Up", "")
	p.waitScreen("> /join go")

	// The terminal's cursor is at the caret, where input methods look.
	p.keys("C-u", "ab你")
	p.waitScreen("> ab你")
	if pos := strings.TrimSpace(p.tmux("display", "-p", "-t", "chat", "#{cursor_x},#{cursor_y}")); pos != "6,15" {
		t.Fatalf("cursor at %s, want 6,15 (after \"> ab你\" on the last line)", pos)
	}
	p.keys("C-u")

	p.tmux("resize-window", "-t", "chat", "-x", "40", "-y", "12")
	s := p.waitScreen("go (1 member)")
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if w := runewidth.StringWidth(line); w > 40 {
			t.Fatalf("line of %d cells after resizing to 40:\n%s", w, s)
		}
	}
	p.keys("C-u", "/quit", "Enter")
	bob.waitOutput(t, "* 小明 left lobby (quit)")
}

// TestTUILinesGoWhereTyped: typed at once, a /room and the line after it
// reach the room switched to; /room to a room the user is not in is
// refused; a DM to nobody is shown failed.
func TestTUILinesGoWhereTyped(t *testing.T) {
	bin := buildBinary(t)
	addr := startServer(t)
	bob := startChat(t, "--addr", addr, "--nick", "bob", "--room", "中文")
	bob.waitOutput(t, "* welcome, bob")
	p := startPane(t, 80, 20, bin+" chat --addr "+addr+" --nick amy")
	p.waitScreen("welcome, amy")
	p.keys("/join 中文", "Enter", "/room lobby", "Enter", "for the lobby", "Enter", "/room 中文", "Enter", "msg meant for 中文", "Enter")
	bob.waitOutput(t, "[中文] amy: msg meant for 中文")
	bob.waitOutput(t, "[lobby] amy: for the lobby")
	if strings.Contains(bob.out.String(), "[lobby] amy: msg meant") || strings.Contains(bob.out.String(), "[中文] amy: for the lobby") {
		t.Fatalf("a line went to the wrong room:\n%s", bob.out.String())
	}
	p.keys("/room nowhere", "Enter", "still in 中文", "Enter")
	p.waitScreen("you are not in nowhere: /join nowhere to enter it")
	bob.waitOutput(t, "[中文] amy: still in 中文")
	p.keys("/dm nobody hi there", "Enter")
	p.waitScreen("[→ nobody] amy: hi there  ✗ not sent: nobody of that name is online")
	p.keys("Up")
	p.waitScreen("> /dm nobody hi there")
}

// TestTUIOutages: with --data-dir, the server restarts under the chat. One
// line tells of the outage however many attempts it takes; a line typed
// while the server is down waits and is said after the reconnect; the
// user's own message said before is not shown again by the resume. Then
// the server comes back with another token key: the chat's token is
// refused, and it stops trying, saying so.
func TestTUIOutages(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	keygen := func(name string) string {
		var out, errOut bytes.Buffer
		if code := run([]string{"keygen", "--out", filepath.Join(dir, name)}, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("keygen exited %d: %s", code, errOut.String())
		}
		return filepath.Join(dir, name)
	}
	key, other := keygen("app"), keygen("other")
	var tok, errOut bytes.Buffer
	if code := run([]string{"token", "--key", key + ".key", "--sub", "u-1", "--name", "amy", "--ttl", "1h"}, strings.NewReader(""), &tok, &errOut); code != 0 {
		t.Fatalf("token exited %d: %s", code, errOut.String())
	}
	tokFile := writeToken(t, dir, "amy.jwt", tok.String())
	addr := servertest.FixedAddr(t)
	cfg := server.Config{Addr: addr, DataDir: filepath.Join(dir, "data"), AuthKeys: []string{key + ".pub"}}
	srv := servertest.Start(t, cfg)

	p := startPane(t, 80, 20, bin+" chat --addr "+addr+" --token-file "+tokFile)
	p.waitScreen("welcome, amy")
	p.keys("said before the restart", "Enter")
	p.waitScreen("amy: said before the restart  #1\n")

	servertest.Stop(t, srv)
	p.waitScreen("connection lost", "reconnecting (attempt 3)")
	p.keys("typed offline", "Enter")
	p.waitScreen("typed offline …", "1 waiting to send")
	srv = servertest.Start(t, cfg)
	s := p.waitScreen("reconnected", "amy: typed offline  #2\n")
	if n := strings.Count(s, "connection lost"); n != 1 {
		t.Fatalf("%d lines tell of one outage:\n%s", n, s)
	}
	if n := strings.Count(s, "said before the restart"); n != 1 {
		t.Fatalf("the user's own message is shown %d times after the resume:\n%s", n, s)
	}
	reader, err := client.Dial(context.Background(), addr, client.Options{Token: func(context.Context) (string, error) { return strings.TrimSpace(tok.String()), nil }})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := reader.History(context.Background(), codec.Lobby, 0, 10)
	reader.Close()
	if err != nil || len(msgs) != 2 || msgs[1].Body != "typed offline" {
		t.Fatalf("the lobby's history is %+v (%v), want the line typed offline last", msgs, err)
	}

	servertest.Stop(t, srv)
	cfg.AuthKeys = []string{other + ".pub"}
	servertest.Start(t, cfg)
	s = p.waitScreen("the server refused the login (bad_token", "· disconnected ·")
	if n := strings.Count(s, "connection lost"); n != 2 {
		t.Fatalf("%d lines tell of two outages:\n%s", n, s)
	}
}

// buildBinary builds this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
