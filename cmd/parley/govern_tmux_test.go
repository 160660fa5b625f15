package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"parley/client"
	"parley/codec"

	"parley/server"
	"parley/server/servertest"
)

// TestTUIGovernsARoom: in the full-screen chat, the owner of a room sets
// its topic, names an operator, sees the roles in /who, lists the rooms,
// bans someone, who is told and kept out, and reads the audit log; the
// member in line mode sees each action as the room is told of it.
func TestTUIGovernsARoom(t *testing.T) {
	bin, dir, addr := accountsServer(t)
	token := func(sub string) string { return writeToken(t, dir, sub+".jwt", mintToken(t, dir, "--sub", sub)) }

	amy := startPane(t, 100, 30, bin+" chat --addr "+addr+" --token-file "+token("amy"))
	amy.waitScreen("welcome, amy")
	amy.keys("/join den", "Enter")
	amy.waitScreen("den (1 member) · connected")
	bob := startChat(t, "--addr", addr, "--token-file", token("bob"), "--plain")
	bob.waitOutput(t, "* welcome, bob")
	bob.say(t, "/join den")
	amy.waitScreen("bob joined den")
	eve := startChat(t, "--addr", addr, "--token-file", token("eve"), "--plain")
	eve.waitOutput(t, "* welcome, eve")
	eve.say(t, "/join den")
	amy.waitScreen("eve joined den")

	amy.keys("/topic all things den", "Enter")
	bob.waitOutput(t, "* den topic: all things den (set by amy)")
	bob.say(t, "/topic mine now")
	bob.waitOutput(t, "! forbidden:")
	amy.keys("/op bob", "Enter")
	bob.waitOutput(t, "* amy made bob an operator of den")
	amy.keys("/who", "Enter")
	amy.waitScreen("den (3): amy (owner), bob (op), eve")
	amy.keys("/rooms", "Enter")
	amy.waitScreen("den (3): all things den")

	bob.say(t, "/ban eve 1h spam")
	eve.waitOutput(t, "* eve was banned from den by bob until")
	eve.waitOutput(t, "* eve left den (ban)")
	amy.waitScreen("eve left den (ban)")
	eve.say(t, "/join den")
	eve.waitOutput(t, "! banned:")
	amy.keys("/audit", "Enter")
	amy.waitScreen("amy topic", "amy op bob", "bob ban eve until")
	amy.keys("/help", "Enter")
	amy.waitScreen("/kick nick [why]")

	// Typing, both ways: a client's notice shows in the status line, and
	// text typed (not sent) tells the room.
	carl := accountClient(t, addr, dir, "carl")
	if err := carl.Join(context.Background(), "den"); err != nil {
		t.Fatal(err)
	}
	if err := carl.Typing(context.Background(), "den"); err != nil {
		t.Fatal(err)
	}
	amy.waitScreen("carl is typing…")
	amy.keys("still thinking")
	deadline := time.After(waitFor)
	for typing := false; !typing; {
		select {
		case ev := <-carl.Events():
			typing = ev.Type == codec.TypeTyping && ev.Nick == "amy" && ev.Room == "den"
		case <-deadline:
			t.Fatal("carl was not told amy is typing")
		}
	}
}

// accountsServer builds the binary and starts a server that takes the
// tokens of a new key; it returns the binary, the key's directory and
// the server's address.
func accountsServer(t *testing.T) (bin, dir, addr string) {
	bin, dir = buildBinary(t), keygen(t)
	addr = servertest.Start(t, server.Config{AuthKeys: []string{filepath.Join(dir, "app.pub")}, RateLimit: -1}).Addr().String()
	return bin, dir, addr
}

// accountClient connects the client library to addr as the account sub.
func accountClient(t *testing.T, addr, dir, sub string) *client.Client {
	c, err := client.Dial(context.Background(), addr, client.Options{Token: func(context.Context) (string, error) {
		return mintToken(t, dir, "--sub", sub), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
