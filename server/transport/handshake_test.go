package transport

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"parley/server/tlstest"
)

// TestHandshakeHandsOverRecords: after a real handshake over TCP with
// crypto/tls's client, a TLS 1.3 connection is carried by records (the
// key log gave its secrets; nothing falls back to a tls.Conn) and a TLS
// 1.2 one by its tls.Conn; both carry bytes each way.
func TestHandshakeHandsOverRecords(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 2)
	cs, err := NewCertStore(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		type result struct {
			hs  handshake
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- result{err: err}
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			hs, err := serverHandshake(c, cs.tlsConfig())
			done <- result{hs, c, err}
		}()
		client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: version, MaxVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		_ = client.SetDeadline(time.Now().Add(5 * time.Second))
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		if got := res.hs.rec != nil; got != (version == tls.VersionTLS13) {
			t.Fatalf("version %x: carried by records %v", version, got)
		}
		server := res.hs.conn(res.c)
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(server, got); err != nil || string(got) != "ping" {
			t.Fatalf("version %x: server read %q, %v", version, got, err)
		}
		if _, err := server.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, got); err != nil || string(got) != "pong" {
			t.Fatalf("version %x: client read %q, %v", version, got, err)
		}
		_ = client.Close()
		_ = server.Close()
	}
}
