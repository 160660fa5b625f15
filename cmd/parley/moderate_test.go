package main

import (
	"bytes"
	"strings"
	"testing"

	"parley/server"
	"parley/server/servertest"
)

// TestModerationCommands drives a live server's admin port with the
// subcommands an operator uses: ban, bans, lockdown, audit, unban and
// revoke, and a refusal's exit code and message.
func TestModerationCommands(t *testing.T) {
	srv := servertest.Start(t, server.Config{AdminAddr: "127.0.0.1:0"})
	admin := srv.AdminAddr().String()
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append(args, "--admin-addr", admin), strings.NewReader(""), &out, &errOut); code != wantCode {
			t.Fatalf("parley %v: exit %d, want %d: %s%s", args, code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	cli(0, "ban", "--account", "Eve", "--duration", "1h", "--reason", "spam")
	cli(0, "ban", "--address", "203.0.113.0/24")
	out := cli(0, "bans")
	for _, want := range []string{"lockdown: off", "eve ", "spam", "203.0.113.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("bans lacks %q:\n%s", want, out)
		}
	}
	if out := cli(0, "lockdown", "accounts"); !strings.Contains(out, "lockdown: accounts") {
		t.Errorf("lockdown printed %q", out)
	}
	if out := cli(1, "lockdown", "everything"); !strings.Contains(out, "bad_request") {
		t.Errorf("a bad level printed %q", out)
	}
	cli(0, "unban", "--address", "203.0.113.0/24")
	cli(0, "revoke", "--jti", "t-1")
	if out := cli(1, "revoke"); !strings.Contains(out, "bad_request") {
		t.Errorf("revoke without a target printed %q", out)
	}
	out = cli(0, "audit")
	for _, want := range []string{"server_ban", "server_unban", "lockdown", "revoke", "admin-port", "eve"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
}
