package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/client"
	"parley/codec"
	"parley/server"
	"parley/server/servertest"
)

const waitFor = 5 * time.Second

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t *testing.T) string {
	return servertest.Start(t, server.Config{}).Addr().String()
}

// cli is `parley chat` running in-process with piped stdin and captured
// output.
type cli struct {
	stdin  *io.PipeWriter
	out    *syncBuffer
	errOut *syncBuffer
	code   chan int
}

func startChat(t *testing.T, args ...string) *cli {
	t.Helper()
	r, w := io.Pipe()
	c := &cli{stdin: w, out: &syncBuffer{}, errOut: &syncBuffer{}, code: make(chan int, 1)}
	go func() { c.code <- run(append([]string{"chat"}, args...), r, c.out, c.errOut) }()
	t.Cleanup(func() { w.Close() })
	return c
}

func (c *cli) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// waitOutput waits until the output holds want.
func (c *cli) waitOutput(t *testing.T, want string) {
	t.Helper()
	servertest.Eventually(t, waitFor, fmt.Sprintf("the output to hold %q", want), func() error {
		if !strings.Contains(c.out.String(), want) {
			return fmt.Errorf("output:\n%s\nstderr:\n%s", c.out.String(), c.errOut.String())
		}
		return nil
	})
}

func (c *cli) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case code := <-c.code:
		return code
	case <-time.After(waitFor):
		t.Fatal("parley chat did not exit")
		return -1
	}
}

func TestChatLineModeEndToEnd(t *testing.T) {
	addr := startServer(t)
	amy := startChat(t, "--addr", addr, "--nick", "amy", "--plain")
	amy.waitOutput(t, "* welcome, amy: you are in lobby, nobody else is online")
	bob := startChat(t, "--addr", addr, "--nick", "bob")
	bob.waitOutput(t, "* welcome, bob")
	amy.waitOutput(t, "* bob joined lobby")

	bob.say(t, "hello amy")
	amy.waitOutput(t, "[lobby] bob: hello amy")
	amy.say(t, "hi bob")
	bob.waitOutput(t, "[lobby] amy: hi bob")
	amy.say(t, "/dm bob secret")
	bob.waitOutput(t, "[dm] amy: secret")
	bob.say(t, "/who")
	bob.waitOutput(t, "* lobby (2): amy, bob")
	bob.say(t, "/join go")
	bob.waitOutput(t, "* you joined go, and talk there now")
	bob.say(t, "/leave nowhere")
	bob.waitOutput(t, "! not_in_room: not in room \"nowhere\"")
	if strings.Contains(amy.out.String(), "secret") && !strings.Contains(amy.out.String(), "[dm]") {
		t.Fatal("a DM leaked into the room")
	}

	bob.stdin.Close() // end of input: quit, wait for bye, exit 0
	if code := bob.exitCode(t); code != 0 {
		t.Fatalf("bob exited %d: %s", code, bob.errOut.String())
	}
	bob.waitOutput(t, "* the server said bye (quit)")
	amy.waitOutput(t, "* bob left lobby (quit)")
	amy.say(t, "quit")
	if code := amy.exitCode(t); code != 0 {
		t.Fatalf("amy exited %d", code)
	}
}

func TestChatAsksForNickAgain(t *testing.T) {
	addr := startServer(t)
	amy := startChat(t, "--addr", addr, "--nick", "amy")
	amy.waitOutput(t, "* welcome, amy")
	other := startChat(t, "--addr", addr, "--nick", "AMY")
	other.say(t, "zoe")
	other.waitOutput(t, "* welcome, zoe")
	errText := other.errOut.String()
	if !strings.Contains(errText, "! nick_taken:") || !strings.Contains(errText, "请输入昵称") {
		t.Fatalf("stderr = %q", errText)
	}
}

func TestChatJSONMode(t *testing.T) {
	addr := startServer(t)
	c := startChat(t, "--addr", addr, "--nick", "amy", "--json")
	c.waitOutput(t, `{"type":"welcome"`)
	c.say(t, "/who")
	c.waitOutput(t, `{"type":"users","room":"lobby","count":1,"nicks":["amy"],"more":false`)
	c.stdin.Close()
	if code := c.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	c.waitOutput(t, `{"type":"bye","reason":"quit"}`)
}

func TestChatUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errOut syncBuffer
	code := run([]string{"chat", "--addr", addr, "--nick", "x"}, strings.NewReader(""), &out, &errOut)
	want := "parley: cannot connect to " + addr + ": connection refused\n"
	if code != 1 || errOut.String() != want {
		t.Fatalf("exit %d, stderr %q; want 1, %q", code, errOut.String(), want)
	}
}

func TestBadFlagsExit2(t *testing.T) {
	var out, errOut syncBuffer
	if code := run([]string{"chat", "--bogus"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), "unknown flag: --bogus") || !strings.HasSuffix(errOut.String(), "Run 'parley chat --help' for its flags.\n") {
		t.Fatalf("stderr = %q", errOut.String())
	}
	if code := run([]string{"serve", "--max-frame", "lots"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Fatalf("bad size: exit %d", code)
	}
}

// TestChatSurvivesServerRestart: the server stops (bye shutdown) and starts
// again on the same address; parley chat reconnects, logs in with the same
// nick, and chatting goes on.
func TestChatSurvivesServerRestart(t *testing.T) {
	addr := servertest.FixedAddr(t)
	srv := servertest.Start(t, server.Config{Addr: addr})
	amy := startChat(t, "--addr", addr, "--nick", "amy")
	amy.waitOutput(t, "* welcome, amy")
	servertest.Stop(t, srv)
	amy.waitOutput(t, "* the server said bye (shutdown)")
	amy.waitOutput(t, "; reconnecting")
	amy.say(t, "typed while the server was down")
	servertest.Start(t, server.Config{Addr: addr})
	amy.waitOutput(t, "* reconnected")
	// The line waited for the reconnect and was said then.
	reader, err := client.Dial(context.Background(), addr, client.Options{Nick: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	servertest.Eventually(t, waitFor, "amy's line typed while the server was down in the lobby's history", func() error {
		msgs, _, err := reader.History(context.Background(), codec.Lobby, 0, 10)
		if err != nil || len(msgs) != 1 || msgs[0].From != "amy" || msgs[0].Body != "typed while the server was down" {
			return fmt.Errorf("history %+v, %v\n%s", msgs, err, amy.out.String())
		}
		return nil
	})
	bob := startChat(t, "--addr", addr, "--nick", "bob")
	bob.waitOutput(t, "* welcome, bob")
	bob.say(t, "are you back?")
	amy.waitOutput(t, "[lobby] bob: are you back?")
	amy.say(t, "yes")
	bob.waitOutput(t, "[lobby] amy: yes")
}
