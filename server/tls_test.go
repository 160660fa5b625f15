package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"parley/codec"
	"parley/internal/poll"
	"parley/server/tlstest"
	"parley/server/transport"
)

func tlsServer(t *testing.T, ca *tlstest.CA, tweak func(*Config)) (*Server, string) {
	dir := t.TempDir()
	cert, key := ca.Issue(t, dir, 100)
	cfg := Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSCert: cert, TLSKey: key}
	if tweak != nil {
		tweak(&cfg)
	}
	return startServer(t, cfg), dir
}

func dialTLS(t *testing.T, srv *Server, ca *tlstest.CA) (*tclient, *tls.Conn) {
	t.Helper()
	d := &net.Dialer{Timeout: waitFor}
	conn, err := tls.DialWithDialer(d, "tcp", srv.TLSAddr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return wrap(t, conn), conn
}

// TestTLSMixedRoom: a real handshake against the test's CA; a TLS member
// and a TCP member of one room get the same messages with the same seqs.
func TestTLSMixedRoom(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, nil)
	sec, conn := dialTLS(t, srv, ca)
	if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("negotiated TLS version %x", v)
	}
	sec.login("secure")
	plain := loggedIn(t, srv, "plain")
	sec.until("plain joined", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == "plain" })
	for i := 0; i < 50; i++ {
		from := sec
		if i%2 == 1 {
			from = plain
		}
		from.send(&codec.Say{Body: "m", Ref: "s"})
		seq := from.untilAck("s").Seq
		other := plain
		if from == plain {
			other = sec
		}
		if m := other.until("msg", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != seq {
			t.Fatalf("message %d: seq %d over one transport, %d over the other", i, seq, m.Seq)
		}
	}
	// A client limited to TLS 1.1 is refused.
	old, err := tls.Dial("tcp", srv.TLSAddr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// TestTLSBadClients: a client that never finishes its handshake is closed
// by the login timeout, and one that speaks plain text to the TLS port is
// closed; neither is noticed by a session already there.
func TestTLSBadClients(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, func(c *Config) { c.LoginTimeout = 300 * time.Millisecond })
	sec, _ := dialTLS(t, srv, ca)
	sec.login("steady")
	stall, err := net.Dial("tcp", srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	_, _ = stall.Write([]byte{0x16, 0x03, 0x01}) // the first bytes of a ClientHello, and no more
	plain, err := net.Dial("tcp", srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write(codec.MustEncode(&codec.Login{Nick: "plaintext"}))
	for _, c := range []net.Conn{stall, plain} {
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: not closed within the deadline", c.LocalAddr())
				}
				break
			}
		}
	}
	eventually(t, "the bad connections to be gone", func() bool { return srv.Stats().Conns == 1 })
	sec.send(&codec.Say{Body: "still here", Ref: "s"})
	sec.untilAck("s")
	if srv.Stats().Online != 1 {
		t.Fatalf("online %d, want the steady session only", srv.Stats().Online)
	}
}

// TestTLSReload: after the certificate files change and Reload (what
// SIGHUP calls), new connections get the new certificate; a session
// already open keeps going.
func TestTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, dir := tlsServer(t, ca, nil)
	first, conn := dialTLS(t, srv, ca)
	first.login("first")
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	ca.Issue(t, dir, 200)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	_, conn2 := dialTLS(t, srv, ca)
	if got := conn2.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 200 {
		t.Fatalf("serial %d after reload, want 200", got)
	}
	first.send(&codec.Ping{})
	first.expect(codec.TypePong)
	// A broken file keeps the certificate in use.
	if err := writeFile(dir+"/server.crt", "not a certificate"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err == nil {
		t.Fatal("Reload accepted a broken certificate")
	}
	_, conn3 := dialTLS(t, srv, ca)
	if got := conn3.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 200 {
		t.Fatalf("serial %d after a failed reload, want 200", got)
	}
}

// TestTLSSlowConsumer: a TLS member that stops reading falls behind its
// room's budget (its room messages are skipped for a gap) and is closed
// as a slow consumer by the write deadline, since its socket takes
// nothing; its queued memory is given back, and the room goes on.
func TestTLSSlowConsumer(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, func(c *Config) {
		c.MaxOutbound, c.SocketSendBuffer, c.RateLimit, c.WriteDeadline = 256<<10, 16<<10, -1, 500*time.Millisecond
	})
	raw, err := net.DialTimeout("tcp", srv.TLSAddr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetReadBuffer(64 << 10)
	stuck := tls.Client(raw, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	defer stuck.Close()
	if _, err := stuck.Write(codec.MustEncode(&codec.Login{Nick: "stuck"})); err != nil {
		t.Fatal(err)
	}
	talker := loggedIn(t, srv, "talker")
	eventually(t, "two sessions", func() bool { return srv.Stats().Online == 2 })
	big := strings.Repeat("x", 2000)
	// Until the write deadline closes it: a count of messages would be a
	// bound on the clock, as fast round trips finish any count sooner. The
	// stuck socket still takes a few bytes now and then after its reader
	// stops, and each time is progress that restarts the deadline (the
	// test takes 2.75 s here against a 500 ms deadline), so this waits
	// longer than most.
	closeBy := time.Now().Add(3 * waitFor)
	for srv.Stats().Closes[codec.ReasonSlowConsumer] == 0 {
		if time.Now().After(closeBy) {
			t.Fatal("the stuck member was never closed as a slow consumer")
		}
		talker.send(&codec.Say{Body: big, Ref: "s"})
		talker.untilAck("s") // one at a time: the listener keeps up
	}
	poll.Until(t, waitFor, "the stalled reader closed", func() error {
		if st := srv.Stats(); st.Online != 1 || st.OutboundBytes >= 64<<10 {
			return fmt.Errorf("online %d, outbound %d bytes, closes %v", st.Online, st.OutboundBytes, st.Closes)
		}
		return nil
	})
	listener, _ := dialTLS(t, srv, ca)
	listener.login("listener")
	talker.send(&codec.Say{Body: "after", Ref: "a"})
	talker.untilAck("a")
	listener.until("after", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Body == "after" })
}

// TestTLSShutdown: a graceful shutdown sends TLS sessions bye shutdown as
// it does TCP ones, and Serve returns.
func TestTLSShutdown(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, nil)
	sec, _ := dialTLS(t, srv, ca)
	sec.login("leaving")
	plain := loggedIn(t, srv, "plain")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sec.untilBye(codec.ReasonShutdown)
	plain.untilBye(codec.ReasonShutdown)
}

// TestTLSFanoutBatches: a TLS sender's burst (many records in one read,
// which crypto/tls takes in pieces smaller than a record) is read whole
// and in order, and a busy room's TLS members get many messages in one
// write (fanoutBatches).
func TestTLSFanoutBatches(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, func(c *Config) { c.RateLimit = -1 })
	fanoutBatches(t, srv, transport.TLS, func() *tclient { c, _ := dialTLS(t, srv, ca); return c })
}
