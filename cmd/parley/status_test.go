package main

import (
	"bytes"
	"strings"
	"testing"

	"parley/codec"
	"parley/server"
	"parley/server/servertest"
)

// TestStatus reads a live server's admin endpoint and prints its summary.
func TestStatus(t *testing.T) {
	srv := servertest.Start(t, server.Config{AdminAddr: "127.0.0.1:0"})
	c, err := join(srv.Addr().String(), "amy")
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	if _, err := c.conn.Write(codec.MustEncode(&codec.Say{Body: "hi"})); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--admin-addr", srv.AdminAddr().String(), "--interval", "50ms"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{": ready", "online     1 sessions, 1 users, 1 rooms", "conns      tcp 1", "cluster    single node"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	if code := run([]string{"status", "--admin-addr", "127.0.0.1:1"}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Fatalf("an unreachable admin endpoint: exit %d", code)
	}
}
