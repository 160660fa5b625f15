package main

import (
	"bytes"
	"strings"
	"testing"

	"parley/server/natstest"
)

// The cluster flags reach the server: a bad node id is a usage error, and
// a NATS server that does not answer stops serve with a clear message.
func TestServeClusterFlags(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"serve", "--addr", "127.0.0.1:0", "--nats", "nats://127.0.0.1:1", "--node-id", "no spaces"}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "node id") {
		t.Fatalf("bad node id: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	down := "nats://" + natstest.FixedAddr(t) // nothing listens there
	code = run([]string{"serve", "--addr", "127.0.0.1:0", "--nats", down, "--log-level", "error"}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "connect to NATS") {
		t.Fatalf("NATS down: exit %d, %q", code, stderr.String())
	}
}
