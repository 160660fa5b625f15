package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"parley/server/servertest"
	"parley/server/tlstest"
)

// TestTokensAndTLSEndToEnd runs what the README shows: keygen, a server
// with the public key and a TLS listener, a token from parley token, and
// parley chat over TLS with --token-file, which a second device shares;
// then a new certificate is served after SIGHUP to new connections while
// the open ones go on.
func TestTokensAndTLSEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := keygen(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--out", filepath.Join(dir, "app")}, strings.NewReader(""), &out, &errOut); code == 0 {
		t.Fatal("keygen overwrote an existing key")
	}
	token := func(sub, name string) string { return mintToken(t, dir, "--sub", sub, "--name", name) }
	tokFile := filepath.Join(dir, "amy.jwt")
	if err := os.WriteFile(tokFile, []byte(token("u-42", "amy")), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	ca.WriteCA(t, caFile)
	cert, key := ca.Issue(t, dir, 100)
	tlsAddr := servertest.FixedAddr(t)
	srv := startServerProcess(t, bin, "--auth-key", filepath.Join(dir, "app.pub"), "--tls-addr", tlsAddr, "--tls-cert", cert, "--tls-key", key, "--nick-hold", "0")

	phone := startChat(t, "--addr", tlsAddr, "--tls-ca", caFile, "--token-file", tokFile, "--plain")
	phone.waitOutput(t, "* welcome, amy: you are in lobby, nobody else is online")
	laptop := startChat(t, "--addr", srv.addr, "--token-file", tokFile, "--plain")
	laptop.waitOutput(t, "* welcome, amy")
	bob := startChat(t, "--addr", srv.addr, "--token-file", writeToken(t, dir, "bob.jwt", token("u-7", "bob")), "--plain")
	bob.waitOutput(t, "* welcome, bob")
	bob.say(t, "/dm amy to both devices")
	phone.waitOutput(t, "[dm] bob: to both devices")
	laptop.waitOutput(t, "[dm] bob: to both devices")
	bob.say(t, "/who")
	bob.waitOutput(t, "* lobby (2): amy, bob")
	phone.say(t, "/dm bob from the phone")
	bob.waitOutput(t, "[dm] amy: from the phone")
	laptop.waitOutput(t, "[dm → bob] amy: from the phone")

	nick := startChat(t, "--addr", srv.addr, "--nick", "mallory", "--plain", "--no-reconnect")
	if code := nick.exitCode(t); code != 1 || !strings.Contains(nick.errOut.String(), "bad_token") {
		t.Fatalf("a nick login on a server that requires tokens: exit %d, %q", code, nick.errOut.String())
	}

	ca.Issue(t, dir, 200)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, waitFor, "the new certificate served after SIGHUP", func() error {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if serial := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); serial != 200 {
			return fmt.Errorf("still serving serial %d:\n%s", serial, srv.log.String())
		}
		return nil
	})
	phone.say(t, "still here after the reload")
	bob.waitOutput(t, "[lobby] amy: still here after the reload")
}

// keygen writes app.key and app.pub with parley keygen in a new
// directory, and returns it.
func keygen(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--out", filepath.Join(dir, "app")}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut.String())
	}
	return dir
}

// mintToken signs a token living an hour with parley token and dir's
// app.key; args give its claims.
func mintToken(t *testing.T, dir string, args ...string) string {
	t.Helper()
	var tok, e bytes.Buffer
	if code := run(append([]string{"token", "--key", filepath.Join(dir, "app.key"), "--ttl", "1h"}, args...), strings.NewReader(""), &tok, &e); code != 0 {
		t.Fatalf("token exited %d: %s", code, e.String())
	}
	return tok.String()
}

func writeToken(t *testing.T, dir, name, tok string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
