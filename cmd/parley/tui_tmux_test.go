package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"
)

// TestTUIInTmux runs the real binary in a tmux pane: it types, switches
// rooms, resizes the window and reads the screen back. .ci/run installs
// tmux; without it the test is skipped.
func TestTUIInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	bin := buildBinary(t)
	addr := startServer(t)
	// A tmux server of this test process's own: t.TempDir's last element
	// is the same ("001") in every process.
	socket := fmt.Sprintf("parley-test-%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", "chat", "-x", "72", "-y", "16", bin+" chat --addr "+addr+" --nick 小明")
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	screen := func() string { return tmux("capture-pane", "-p", "-t", "chat") }
	waitScreen := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			s := screen()
			if strings.Contains(s, want) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("screen lacks %q:\n%s", want, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitScreen("welcome, 小明")
	waitScreen("lobby (1 member) · connected · 小明@")

	bob := startChat(t, "--addr", addr, "--nick", "bob")
	bob.waitOutput(t, "* welcome, bob")
	waitScreen("bob joined lobby")
	bob.say(t, "你好 小明")
	waitScreen("[lobby] bob: 你好 小明")

	tmux("send-keys", "-t", "chat", "大家好，我是小明。This line is long enough that it has to wrap at the edge.", "Enter")
	bob.waitOutput(t, "[lobby] 小明: 大家好，我是小明。This line is long enough that it has to wrap at the edge.")
	tmux("send-keys", "-t", "chat", "/dm bob psst", "Enter")
	bob.waitOutput(t, "[dm] 小明: psst")
	tmux("send-keys", "-t", "chat", "/join go", "Enter")
	waitScreen("go (1 member) · connected")
	tmux("send-keys", "-t", "chat", "Up", "")
	waitScreen("> /join go")

	tmux("resize-window", "-t", "chat", "-x", "40", "-y", "12")
	s := waitScreen("go (1 member)")
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if w := runewidth.StringWidth(line); w > 40 {
			t.Fatalf("line of %d cells after resizing to 40:\n%s", w, s)
		}
	}
	tmux("send-keys", "-t", "chat", "C-u", "/quit", "Enter")
	bob.waitOutput(t, "* 小明 left lobby (quit)")
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
