package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

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
// and a TCP member of one room get the same messages with the same seqs,
// over TLS 1.3 (whose records the server protects itself, tls13.go) and
// over TLS 1.2 (crypto/tls on the loop).
func TestTLSMixedRoom(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, nil)
	plain := loggedIn(t, srv, "plain")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", srv.TLSAddr().String(),
			&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v})
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.ConnectionState().Version; got != v {
			t.Fatalf("negotiated TLS version %x, want %x", got, v)
		}
		sec := wrap(t, conn)
		mixedRoom(t, sec, plain, fmt.Sprintf("secure%x", v))
		sec.send(&codec.Quit{})
		sec.expectBye(codec.ReasonQuit)
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

// mixedRoom logs a in as nick and has a and b, members of one room on
// two transports, take turns saying; each message reaches the other with
// the same seq. Then a burst of large messages from b, more than one TLS
// record's worth in a write, reaches a whole and in order.
func mixedRoom(t *testing.T, a, b *tclient, nick string) {
	t.Helper()
	a.login(nick)
	b.until(nick+" joined", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == nick })
	for i := 0; i < 50; i++ {
		from, other := a, b
		if i%2 == 1 {
			from, other = b, a
		}
		from.send(&codec.Say{Body: strings.Repeat("m", 1+i*80), Ref: "s"})
		seq := from.untilAck("s").Seq
		if m := other.until("msg", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != seq || len(m.Body) != 1+i*80 {
			t.Fatalf("message %d: seq %d over one transport, %d (%d bytes) over the other", i, seq, m.Seq, len(m.Body))
		}
	}
	for i := 0; i < 20; i++ {
		b.send(&codec.Say{Body: fmt.Sprintf("%04d%s", i, strings.Repeat("x", 4000)), Ref: fmt.Sprint("burst", i)})
	}
	for i := 0; i < 20; i++ {
		m := a.until("burst", func(e codec.Event) bool { return e.Type == codec.TypeMsg })
		if want := fmt.Sprintf("%04d", i); !strings.HasPrefix(m.Body, want) || len(m.Body) != 4004 {
			t.Fatalf("burst message %d: got %.4s (%d bytes)", i, m.Body, len(m.Body))
		}
	}
}

// TestWSSBothVersions: the web port over TLS 1.3 and over TLS 1.2. A wss
// session and a TCP member share a room; the page's /info comes over
// HTTPS (net/http on the TLS connection); a WebSocket upgrade after a
// page request on a kept-alive connection, with a login in the upgrade's
// write, gets its session.
func TestWSSBothVersions(t *testing.T) {
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, func(c *Config) { c.WSAddr = "127.0.0.1:0" })
	plain := loggedIn(t, srv, "plain")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v}
		d := ws.Dialer{Timeout: waitFor, TLSConfig: cfg}
		conn, br, _, err := d.Dial(t.Context(), "wss://"+srv.WSAddr().String()+"/ws")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if got := conn.(*tls.Conn).ConnectionState().Version; got != v {
			t.Fatalf("negotiated TLS version %x, want %x", got, v)
		}
		var r io.Reader = conn
		if br != nil {
			r = br
		}
		sec := &tclient{t: t, conn: conn, events: make(chan codec.Event, 4096), done: make(chan struct{}), ws: &wsPeer{}}
		go sec.readWS(r)
		mixedRoom(t, sec, plain, fmt.Sprintf("wss%x", v))
		sec.send(&codec.Quit{})
		sec.untilBye(codec.ReasonQuit)

		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: waitFor}
		res, err := hc.Get("https://" + srv.WSAddr().String() + "/info")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.TLS == nil || res.TLS.Version != v {
			t.Fatalf("/info over HTTPS: %s, TLS %+v", res.Status, res.TLS)
		}
		hc.CloseIdleConnections()

		wsAfterPage(t, srv, fmt.Sprintf("page%x", v), func() net.Conn {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", srv.WSAddr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	}
}

// TestTLSKeyUpdateOpenSSL: OpenSSL's s_client, a TLS 1.3 peer that is not
// Go's, logs in over the TLS listener, updates its keys asking for the
// server's too ("K"), then without asking ("k"), and after each the
// session still says and reads: the server read the client's new keys,
// answered "K" with a key update of its own (s_client -msg shows it
// arrive) and "k" with none, and OpenSSL reads the server's new keys. Its
// close_notify ends the session. Once for each TLS 1.3 cipher suite.
func TestTLSKeyUpdateOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl installed (apt-get install openssl; .ci/run installs it)")
	}
	ca := tlstest.NewCA(t)
	srv, _ := tlsServer(t, ca, nil)
	plain := loggedIn(t, srv, "plain")
	for i, suite := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		t.Run(suite, func(t *testing.T) { keyUpdatesWithOpenSSL(t, srv, plain, suite, fmt.Sprint("openssl", i)) })
	}
}

// serverKeyUpdate is how s_client -msg shows a KeyUpdate it received.
const serverKeyUpdate = "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"

func keyUpdatesWithOpenSSL(t *testing.T, srv *Server, plain *tclient, suite, nick string) {
	cmd := exec.CommandContext(t.Context(), "openssl", "s_client", "-tls1_3", "-ciphersuites", suite, "-msg", "-connect", srv.TLSAddr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	seen := func(b *lockedBuffer, s string) {
		t.Helper()
		poll.Until(t, waitFor, "openssl to show "+s, func() error {
			if !strings.Contains(b.String(), s) {
				return fmt.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
			return nil
		})
	}
	write := func(b []byte) {
		t.Helper()
		if _, err := stdin.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(codec.MustEncode(&codec.Login{Nick: nick}))
	seen(&stdout, `"type":"welcome"`)
	seen(&stdout, "Cipher is "+suite)
	for i, command := range []string{"K\n", "k\n"} {
		write([]byte(command))
		seen(&stderr, strings.Repeat("KEYUPDATE\n", i+1)) // before the next write: s_client drops what follows a command in one read
		if i == 0 {
			seen(&stdout, serverKeyUpdate) // "K" asked for the server's: -msg shows it arrive
		}
		ref := fmt.Sprintf("%s-after-update-%d", nick, i)
		write(codec.MustEncode(&codec.Say{Body: ref, Ref: ref}))
		seen(&stdout, `"ref":"`+ref+`"`)
		plain.until(ref, func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Body == ref })
		plain.send(&codec.Say{Body: "back-" + ref, Ref: "b"})
		plain.untilAck("b")
		seen(&stdout, `"body":"back-`+ref+`"`)
	}
	if n := strings.Count(stdout.String(), serverKeyUpdate); n != 1 {
		t.Fatalf("the server sent %d key updates, want 1 (for \"K\" alone)", n)
	}
	_ = stdin.Close() // s_client says close_notify and exits
	plain.until(nick+" left", func(e codec.Event) bool { return e.Type == codec.TypeLeft && e.Nick == nick })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, stderr.String())
	}
}
