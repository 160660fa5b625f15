package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"parley/server"
	"parley/server/natstest"
	"parley/server/servertest"
	"parley/server/tlstest"
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

// TestServeBadConfigs: each configuration an operator gets wrong stops
// serve with a message that names the flag and says what to do, as the
// last line printed, with exit status 2.
func TestServeBadConfigs(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--out", filepath.Join(dir, "app")}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("keygen: %s", errOut.String())
	}
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, dir, 1)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "data")
	servertest.Start(t, server.Config{Addr: "127.0.0.1:0", DataDir: held})

	cases := []struct {
		name string
		args []string
		want []string // in the last line
	}{
		{"TLS files without a TLS listener", []string{"--tls-cert", cert, "--tls-key", key}, []string{"--tls-cert and --tls-key", "--tls-addr", "--ws-addr"}},
		{"a TLS listener without files", []string{"--tls-addr", "127.0.0.1:0"}, []string{"--tls-addr needs --tls-cert and --tls-key"}},
		{"a private key as the auth key", []string{"--auth-key", filepath.Join(dir, "app.key")}, []string{"app.key is a private key", "public key", ".pub"}},
		{"a missing auth key", []string{"--auth-key", filepath.Join(dir, "none.pub")}, []string{"auth key", "none.pub", "no such file"}},
		{"a TLS key that is not one", []string{"--tls-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", junk}, []string{"--tls-key", "junk.pem", "no PEM private key"}},
		{"a TLS certificate that is not one", []string{"--tls-addr", "127.0.0.1:0", "--tls-cert", junk, "--tls-key", key}, []string{"--tls-cert", "junk.pem", "no PEM certificate"}},
		{"certificate and key swapped", []string{"--tls-addr", "127.0.0.1:0", "--tls-cert", key, "--tls-key", cert}, []string{"--tls-cert", "--tls-key", "swap them"}},
		{"a data dir another server holds", []string{"--data-dir", held}, []string{held, "in use by another parley", "another --data-dir"}},
		{"required auth without a key", []string{"--auth", "required"}, []string{"--auth required needs --auth-key"}},
		{"an unknown flag", []string{"--bogus"}, []string{"unknown flag: --bogus"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "error"}, c.args...), strings.NewReader(""), &out, &errOut)
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			last := lines[len(lines)-1]
			if c.name == "an unknown flag" {
				if len(lines) != 2 || last != "Run 'parley serve --help' for its flags." {
					t.Fatalf("stderr buries the error: %q", errOut.String())
				}
				last = lines[0]
			}
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errOut.String())
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Fatalf("the message %q lacks %q", last, w)
				}
			}
		})
	}
}
