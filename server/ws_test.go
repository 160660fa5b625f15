package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"parley/codec"
	"parley/server/transport"
)

// wsPeer is a test client's WebSocket side: how it frames what it sends,
// and the close frame the server sent.
type wsPeer struct {
	closeCode   ws.StatusCode
	closeReason string
}

// frame turns a length-prefixed protocol frame into a masked text frame;
// bytes that are not a protocol frame go as they are.
func (p *wsPeer) frame(b []byte) []byte {
	if len(b) < codec.HeaderSize || int(binary.BigEndian.Uint32(b)) != len(b)-codec.HeaderSize {
		return b
	}
	return maskedFrame(ws.OpText, true, b[codec.HeaderSize:])
}

// maskedFrame is a client frame: header, mask, masked payload.
func maskedFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var out strings.Builder
	_ = ws.WriteHeader(&out, h)
	p := append([]byte(nil), payload...)
	ws.Cipher(p, h.Mask, 0)
	return append([]byte(out.String()), p...)
}

func startWSServer(t *testing.T, tweak func(*Config)) *Server {
	cfg := Config{Addr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"}
	if tweak != nil {
		tweak(&cfg)
	}
	return startServer(t, cfg)
}

// dialWS upgrades a connection to srv's /ws and reads its messages as a
// tclient does.
func dialWS(t *testing.T, srv *Server, header http.Header) *tclient {
	t.Helper()
	d := ws.Dialer{Timeout: waitFor, Header: ws.HandshakeHeaderHTTP(header)}
	conn, br, _, err := d.Dial(t.Context(), "ws://"+srv.WSAddr().String()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	c := &tclient{t: t, conn: conn, events: make(chan codec.Event, 4096), done: make(chan struct{}), ws: &wsPeer{}}
	go c.readWS(r)
	t.Cleanup(func() { conn.Close() })
	return c
}

// readWS reads server frames: text messages become events, a close frame
// is recorded.
func (c *tclient) readWS(r io.Reader) {
	defer close(c.done)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			c.err = err
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			c.err = err
			return
		}
		switch h.OpCode {
		case ws.OpClose:
			c.ws.closeCode, c.ws.closeReason = ws.ParseCloseFrameData(payload)
			c.err = io.EOF
			return
		case ws.OpText:
			var ev codec.Event
			if err := codec.DecodeEvent(payload, &ev); err != nil {
				c.err = err
				return
			}
			c.events <- ev
		}
	}
}

// expectWSClose waits for the close frame and checks its code.
func (c *tclient) expectWSClose(code ws.StatusCode) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatal("no close frame within the deadline")
	}
	if c.ws.closeCode != code {
		c.t.Fatalf("close code %d (%q), want %d; reader: %v", c.ws.closeCode, c.ws.closeReason, code, c.err)
	}
}

// TestWSProtocol runs the protocol over WebSocket: login, say, dm, join,
// who, errors, ping, and the frames that end a connection.
func TestWSProtocol(t *testing.T) {
	srv := startWSServer(t, nil)
	amy := dialWS(t, srv, nil)
	if w := amy.login("amy"); w.Nick != "amy" {
		t.Fatalf("welcome %+v", w)
	}
	ben := dialWS(t, srv, nil)
	ben.login("ben")
	amy.until("ben joined", func(e codec.Event) bool { return e.Type == codec.TypeJoined && e.Nick == "ben" })
	amy.send(&codec.Say{Body: "hello over ws", Ref: "s"})
	seq := amy.untilAck("s").Seq
	if m := ben.until("msg", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != seq || m.Body != "hello over ws" {
		t.Fatalf("ben got %+v", m)
	}
	ben.send(&codec.DM{To: "amy", Body: "psst", Ref: "d"})
	ben.untilAck("d")
	if m := amy.until("dm", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.To != "" }); m.From != "ben" {
		t.Fatalf("amy got %+v", m)
	}
	amy.joinRoom("golang")
	amy.send(&codec.Who{Room: "lobby", Ref: "w"})
	if u := amy.until("who", func(e codec.Event) bool { return e.Type == codec.TypeUsers }); u.Count != 2 {
		t.Fatalf("who %+v", u)
	}
	amy.sendRaw(rawFrame(`{"type":"dance"}`))
	amy.expectError(codec.CodeUnknownType)
	amy.send(&codec.Ping{})
	amy.expect(codec.TypePong)
	// A WebSocket ping is answered at the WebSocket level.
	if _, err := amy.conn.Write(maskedFrame(ws.OpPing, true, []byte("hb"))); err != nil {
		t.Fatal(err)
	}
	amy.send(&codec.Say{Body: "after the ping", Ref: "s2"})
	amy.untilAck("s2")

	// Invalid UTF-8 is a bad frame: error, bye protocol_error, close 1002.
	bad := dialWS(t, srv, nil)
	bad.login("bad")
	if _, err := bad.conn.Write(maskedFrame(ws.OpText, true, []byte("{\"type\":\"say\",\"body\":\"\xff\"}"))); err != nil {
		t.Fatal(err)
	}
	bad.expectError(codec.CodeBadFrame)
	bad.expect(codec.TypeBye)
	bad.expectWSClose(ws.StatusProtocolError)
	// quit: bye quit and close 1000.
	ben.send(&codec.Quit{})
	ben.until("bye", func(e codec.Event) bool { return e.Type == codec.TypeBye })
	ben.expectWSClose(ws.StatusNormalClosure)
}

// TestWSMixedRoom: TCP and WebSocket members of one room receive the
// same messages with the same seqs, whoever says them.
func TestWSMixedRoom(t *testing.T) {
	srv := startWSServer(t, nil)
	web := dialWS(t, srv, nil)
	web.login("web")
	web.joinRoom("mix")
	tcp := loggedIn(t, srv, "tcp")
	tcp.joinRoom("mix")
	for i := 0; i < 40; i++ {
		from, to := web, tcp
		if i%2 == 1 {
			from, to = tcp, web
		}
		from.send(&codec.Say{Room: "mix", Body: "m", Ref: "s"})
		seq := from.untilAck("s").Seq
		if m := to.until("msg", func(e codec.Event) bool { return e.Type == codec.TypeMsg && e.Room == "mix" }); m.Seq != seq {
			t.Fatalf("message %d: seq %d on one side, %d on the other", i, seq, m.Seq)
		}
	}
}

// TestWSOrigin: a browser page from another origin is refused before the
// upgrade; the server's own origin and an allowed one are let in.
func TestWSOrigin(t *testing.T) {
	srv := startWSServer(t, func(c *Config) { c.WSOrigins = []string{"https://chat.example.com"} })
	// An added origin does not lock out the page's own.
	dialWS(t, srv, http.Header{"Origin": {"http://" + srv.WSAddr().String()}}).login("home")
	for origin, want := range map[string]int{"https://chat.example.com": http.StatusSwitchingProtocols, "https://evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", "http://"+srv.WSAddr().String()+"/ws", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("origin %s: status %d, want %d", origin, resp.StatusCode, want)
		}
	}
	same := startWSServer(t, nil)
	host := same.WSAddr().String()
	c := dialWS(t, same, http.Header{"Origin": {"http://" + host}})
	c.login("own")
	// Another host, or the same host with another scheme, port or with
	// userinfo, is not the page's own origin (the page is served http).
	_, port, _ := net.SplitHostPort(host)
	for _, origin := range []string{"http://elsewhere.example", "https://" + host, "ws://" + host, "http://user@" + host,
		"http://127.0.0.1:1" + port, "http://" + host + "/path", "null"} {
		_, _, _, err := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})}.Dial(t.Context(), "ws://"+host+"/ws")
		var status ws.StatusError
		if !errors.As(err, &status) || int(status) != http.StatusForbidden {
			t.Errorf("origin %q against a page at http://%s: %v, want 403", origin, host, err)
		}
	}
	// Behind a proxy that terminated TLS, the page's scheme is https.
	h := http.Header{"Origin": {"https://" + host}, "X-Forwarded-Proto": {"https"}}
	dialWS(t, same, h).login("proxied")
	if _, err := New(Config{WSOrigins: []string{"chat.example.com"}}); err == nil {
		t.Error("an origin without a scheme was accepted in WSOrigins")
	}
}

// TestWSAttacks: what a script in a browser, or anything else, can send
// that breaks WebSocket's rules; each is closed with its code while a
// bystander goes on.
func TestWSAttacks(t *testing.T) {
	srv := startWSServer(t, func(c *Config) { c.LoginTimeout = 400 * time.Millisecond })
	bystander := dialWS(t, srv, nil)
	bystander.login("bystander")
	cases := []struct {
		name  string
		bytes []byte
		err   codec.Code
		close ws.StatusCode
	}{
		{"a 10 MB frame", tooBig(10 << 20), codec.CodeFrameTooLarge, ws.StatusMessageTooBig},
		{"a binary frame", maskedFrame(ws.OpBinary, true, []byte(`{"type":"ping"}`)), codec.CodeBadFrame, ws.StatusUnsupportedData},
		{"an unknown opcode", maskedFrame(ws.OpCode(0x3), true, []byte("x")), codec.CodeBadFrame, ws.StatusProtocolError},
		{"an unmasked frame", append([]byte{0x81, 15}, `{"type":"ping"}`...), codec.CodeBadFrame, ws.StatusProtocolError},
		{"a continuation without a start", maskedFrame(ws.OpContinuation, true, []byte("x")), codec.CodeBadFrame, ws.StatusProtocolError},
	}
	for i, c := range cases {
		a := dialWS(t, srv, nil)
		a.login(fmt.Sprintf("attacker%d", i))
		if _, err := a.conn.Write(c.bytes); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ev := a.next(); ev.Type != codec.TypeError || ev.Code != c.err {
			t.Fatalf("%s: got %+v, want error %s", c.name, ev, c.err)
		}
		if ev := a.next(); ev.Type != codec.TypeBye || ev.Reason != codec.ReasonProtocolError {
			t.Fatalf("%s: got %+v, want bye protocol_error", c.name, ev)
		}
		a.expectWSClose(c.close)
		eventually(t, "the attacker's nick to be free", func() bool { return srv.Stats().Online == 1 })
	}
	// Before login a message is at most --max-login-frame (4 KiB), refused
	// on its header; after login --max-frame.
	early := dialWS(t, srv, nil)
	if _, err := early.conn.Write(tooBig(10 << 10)); err != nil {
		t.Fatal(err)
	}
	early.expectError(codec.CodeFrameTooLarge)
	early.expect(codec.TypeBye)
	early.expectWSClose(ws.StatusMessageTooBig)
	late := dialWS(t, srv, nil)
	late.login("late")
	big := codec.MustEncode(&codec.Say{Body: strings.Repeat("b", 4090), Ref: "big"})
	if len(big)-codec.HeaderSize <= 4096 {
		t.Fatalf("the say is %d bytes: not over the login limit", len(big)-codec.HeaderSize)
	}
	late.sendRaw(big)
	late.untilAck("big")

	// A slow upgrade: half a request, then nothing. The HTTP server gives
	// up at the login timeout.
	slow, err := net.Dial("tcp", srv.WSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_, _ = slow.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
	_ = slow.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := bufio.NewReader(slow).ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("a slow upgrade was not closed: %v", err)
	}
	bystander.send(&codec.Say{Body: "unbothered", Ref: "s"})
	bystander.untilAck("s")
}

// tooBig is the header of a text frame announcing n bytes, and a few of
// them: the server must refuse it on the header alone.
func tooBig(n int) []byte {
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(n)}
	var out strings.Builder
	_ = ws.WriteHeader(&out, h)
	return append([]byte(out.String()), make([]byte, 1024)...)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestWSResumeAfterDrop: a WebSocket member that drops logs in again with
// its resume token, resumes the lobby and rejoins a room from its last
// seq, and gets what was said meanwhile. The answers of the resume come
// in one burst, which the hub may hand the transport as one slice of
// several frames: each must still be a WebSocket message of its own.
func TestWSResumeAfterDrop(t *testing.T) {
	srv := startWSServer(t, nil)
	obs := loggedIn(t, srv, "obs")
	obs.joinRoom("golang")
	a := dialWS(t, srv, nil)
	w := a.login("ming")
	a.send(&codec.Join{Room: "golang", Ref: "j"})
	ack := a.untilAck("j")
	a.send(&codec.Say{Room: "golang", Body: "before", Ref: "s"})
	seen := a.untilAck("s").Seq
	a.conn.Close()
	eventually(t, "the drop", func() bool { return srv.Stats().Online == 1 })
	obs.send(&codec.Say{Room: "golang", Body: "while away", Ref: "s"})
	missed := obs.untilAck("s").Seq
	b := dialWS(t, srv, nil)
	b.send(&codec.Login{Nick: "ming", Resume: w.Resume, Since: &w.Seq, Epoch: w.Epoch, Ref: "login"})
	b.expect(codec.TypeWelcome)
	b.send(&codec.Who{Room: "lobby", Ref: "w"})
	b.send(&codec.Join{Room: "golang", Since: &seen, Epoch: ack.Epoch, Ref: "j2"})
	b.untilAck("j2")
	if m := b.until("the missed message", func(e codec.Event) bool { return e.Type == codec.TypeMsg }); m.Seq != missed || m.Body != "while away" {
		t.Fatalf("replayed %+v, want seq %d", m, missed)
	}
	if r := b.until("recovered", func(e codec.Event) bool { return e.Type == codec.TypeRecover && e.Room == "golang" }); !r.Recovered {
		t.Fatalf("recovered %+v", r)
	}
}

// TestWSFanoutBatches: when a room is busy, a WebSocket member gets many
// messages in one write, as a TCP member does (fanoutBatches).
func TestWSFanoutBatches(t *testing.T) {
	srv := startWSServer(t, func(c *Config) { c.RateLimit = -1 })
	fanoutBatches(t, srv, transport.WS, func() *tclient { return dialWS(t, srv, nil) })
}

// fanoutBatches checks that the messages of one loop wake go to each
// member in one write, not one write per message, on a transport: two
// senders each send 100 says in one socket write; every member receives
// all 200 in order, and the transport's writes (its counter) are far
// fewer than the deliveries.
func fanoutBatches(t *testing.T, srv *Server, tr int, dial func() *tclient) {
	t.Helper()
	const members, perSender = 20, 100
	var room []*tclient
	for i := range members {
		c := dial()
		c.login(fmt.Sprintf("m%d", i))
		room = append(room, c)
	}
	senders := []*tclient{dial(), dial()}
	for i, s := range senders {
		s.login(fmt.Sprintf("s%d", i))
	}
	counts := srv.layer.Counts()
	before := counts.Writes(tr)
	for i, s := range senders {
		var burst []byte
		for j := range perSender {
			f := codec.MustEncode(&codec.Say{Room: codec.Lobby, Body: fmt.Sprintf("s%d-%d", i, j)})
			if s.ws != nil {
				f = s.ws.frame(f)
			}
			burst = append(burst, f...)
		}
		if _, err := s.conn.Write(burst); err != nil {
			t.Fatal(err)
		}
	}
	for m, c := range room {
		next := map[string]int{"s0": 0, "s1": 0}
		for received := 0; received < len(senders)*perSender; received++ {
			e := c.until("the senders' says", func(e codec.Event) bool { return e.Type == codec.TypeMsg })
			if want := fmt.Sprintf("%s-%d", e.From, next[e.From]); e.Body != want {
				t.Fatalf("member %d got %q, want %q: in order, none lost", m, e.Body, want)
			}
			next[e.From]++
		}
	}
	deliveries := members * len(senders) * perSender
	writes := counts.Writes(tr) - before
	t.Logf("%s: %d deliveries in %d writes", transport.Names[tr], deliveries, writes)
	if writes == 0 || deliveries/int(writes) < 10 {
		t.Fatalf("%d deliveries took %d %s writes: want at least 10 deliveries a write", deliveries, writes, transport.Names[tr])
	}
}

// TestWSAfterPageRequest: a WebSocket handshake on a connection that
// first fetched a page (a kept-alive one, which net/http serves rather
// than the door) is upgraded too, and its session works.
func TestWSAfterPageRequest(t *testing.T) {
	srv := startWSServer(t, nil)
	wsAfterPage(t, srv, "amy", func() net.Conn {
		conn, err := net.Dial("tcp", srv.WSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		return conn
	})
}

// wsAfterPage fetches /info on a connection dial makes, then upgrades it
// to a WebSocket with a login frame in the same write as the upgrade's
// request (bytes the handshake's reader holds go to the loop with the
// connection), and checks that the session answers.
func wsAfterPage(t *testing.T, srv *Server, nick string, dial func() net.Conn) {
	t.Helper()
	conn := dial()
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "GET /info HTTP/1.1\r\nHost: "+srv.WSAddr().String()+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Close {
		t.Fatalf("/info: %s, close %v: want 200 on a kept-alive connection", res.Status, res.Close)
	}
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	upgrade := "GET /ws HTTP/1.1\r\nHost: " + srv.WSAddr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	peer := &wsPeer{}
	login := peer.frame(codec.MustEncode(&codec.Login{Nick: nick}))
	if _, err := conn.Write(append([]byte(upgrade), login...)); err != nil {
		t.Fatal(err)
	}
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", res.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	c := &tclient{t: t, conn: conn, events: make(chan codec.Event, 64), done: make(chan struct{}), ws: peer}
	go c.readWS(br)
	if w := c.expect(codec.TypeWelcome); w.Nick != nick {
		t.Fatalf("welcome %+v", w)
	}
	c.send(&codec.Ping{})
	c.expect(codec.TypePong)
	c.send(&codec.Quit{})
	c.untilBye(codec.ReasonQuit)
}
