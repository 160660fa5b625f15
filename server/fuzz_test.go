package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"parley/codec"
)

// serverTypes and byeReasons are what the server may send: anything
// else in answer to garbage is a bug.
var (
	serverTypes = map[string]bool{
		codec.TypeWelcome: true, codec.TypeMsg: true, codec.TypeJoined: true, codec.TypeLeft: true,
		codec.TypePresence: true, codec.TypeUsers: true, codec.TypeAck: true, codec.TypeError: true,
		codec.TypePing: true, codec.TypePong: true, codec.TypeBye: true,
	}
	byeReasons = map[codec.Reason]bool{
		codec.ReasonQuit: true, codec.ReasonTimeout: true, codec.ReasonLoginTimeout: true, codec.ReasonShutdown: true,
		codec.ReasonProtocolError: true, codec.ReasonServerFull: true, codec.ReasonSlowConsumer: true,
		codec.ReasonInternalError: true, codec.ReasonFlood: true,
	}
)

// nasties are hand-made hostile inputs, seeds of FuzzServerConn.
func nasties() [][]byte {
	frame := func(body string) []byte { return rawFrame(body) }
	login := frame(`{"type":"login","nick":"fz"}`)
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	return [][]byte{
		{0xff, 0xff, 0xff, 0xff},                   // a 4 GiB length
		{0, 0, 0, 0},                               // length 0
		bytes.Repeat([]byte("{"), 1<<20),           // 1 MiB of '{' (no header: its first bytes are a huge length)
		frame(strings.Repeat("{", 60000)),          // a frame of 60000 '{'
		frame(`{"type":"say","x":` + deep[:60000]), // deeply nested, truncated
		frame(`{"type":"say","body":"x","n":` + strings.Repeat("9", 5000) + `}`),
		frame(`{"type":"login","nick":"a","seq":1e999999}`),
		frame("{\"type\":\"login\",\"nick\":\"\xc3\x28\"}"),                     // invalid UTF-8 in a nick
		append(login, frame("{\"type\":\"join\",\"room\":\"\xff\xfe\"}")...),    // in a room
		append(login, frame("{\"type\":\"say\",\"body\":\"\xed\xa0\x80\"}")...), // a surrogate in a body
		frame("{\"type\":\"login\",\"nick\":\"ab\\u0007c\"}"),                   // a control character
		frame("{\"type\":\"login\",\"nick\":\"evil\u202egnp.exe\"}"),            // a bidi override
		frame("{\"type\":\"login\",\"nick\":\"nul\\u0000\"}"),                   // an escaped NUL
		frame("{\"type\":\"say\",\"body\":\"raw\x00nul\"}"),                     // a raw NUL
		append(login, frame(`{"type":"say","body":"`+strings.Repeat("x", 5000)+`"}`)...),
		append(login, bytes.Repeat(frame(`{"type":"join","room":"r"}`), 300)...), // past the rate limit
		frame(`[]`), frame(`"just a string"`), frame(`null`), frame(`{}`), frame(`{"type":7}`),
		append(login, frame(`{"type":"quit"}`)...),
	}
}

// FuzzServerConn feeds arbitrary bytes to a live server over one
// connection, in chunks of an arbitrary size (1 is a byte-at-a-time drip),
// then half-closes it. The server must answer only with well-formed frames,
// documented error codes and close reasons, and end the connection; and two
// well-behaved clients on the same server must keep chatting throughout.
func FuzzServerConn(f *testing.F) {
	for i, n := range nasties() {
		f.Add(n, uint8(1+i%3*100))
	}
	f.Add([]byte(string(rawFrame(`{"type":"ping"}`))+string(rawFrame(`{"type":"login","nick":"drip"}`))), uint8(1))
	// Flood control is off: the buddies send a frame per input, and tiny
	// inputs run in well under a millisecond, so the server would rightly
	// rate-limit and then close them. TestFlood covers flood control.
	srv := startServer(f, Config{LoginTimeout: 2 * time.Second, PresenceLimit: -1, RateLimit: -1})
	buddies := newBuddies(f, srv)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		answers, err := feed(srv, data, max(int(chunk), 1))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range answers {
			if err := checkAnswer(ev); err != nil {
				t.Fatalf("input %q: %v", truncateBytes(data), err)
			}
		}
		if err := buddies.chat(); err != nil {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("after input %q: %v (server %+v; b's reader ended: %v)\n%s", truncateBytes(data), err, srv.Stats(), buddies.b.err, buf[:n])
		}
	})
}

// feed writes data in chunks, half-closes, and reads every answer until the
// server closes the connection.
func feed(srv *Server, data []byte, chunk int) ([]codec.Event, error) {
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), waitFor)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	done := make(chan error, 1)
	go func() {
		for len(data) > 0 {
			n := min(chunk, len(data))
			if _, err := conn.Write(data[:n]); err != nil {
				done <- nil // the server closed first: fine
				return
			}
			data = data[n:]
		}
		done <- conn.(*net.TCPConn).CloseWrite()
	}()
	var out []codec.Event
	r := codec.NewReader(conn, 0)
	for {
		body, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || isReset(err) {
				<-done
				return out, nil
			}
			return out, fmt.Errorf("reading the answers: %w", err)
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			return out, fmt.Errorf("the server sent an undecodable frame %q: %v", body, err)
		}
		out = append(out, ev)
	}
}

func checkAnswer(ev codec.Event) error {
	switch {
	case !serverTypes[ev.Type]:
		return fmt.Errorf("server sent type %q", ev.Type)
	case ev.Type == codec.TypeError && codec.Sentinel(ev.Code) == nil:
		return fmt.Errorf("undocumented error code %q", ev.Code)
	case ev.Type == codec.TypeBye && !byeReasons[ev.Reason]:
		return fmt.Errorf("undocumented bye reason %q", ev.Reason)
	}
	return nil
}

func truncateBytes(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// buddies are two well-behaved clients in a private room.
type buddies struct {
	a, b *tclient
	n    atomic.Int64
}

func newBuddies(t testing.TB, srv *Server) *buddies {
	bd := &buddies{a: loggedIn(t, srv, "fuzz-buddy-a"), b: loggedIn(t, srv, "fuzz-buddy-b")}
	for _, c := range []*tclient{bd.a, bd.b} {
		c.send(&codec.Join{Room: "buddies", Ref: "j"})
		if err := waitErr(c, func(ev codec.Event) bool { return ev.Type == codec.TypeAck && ev.Ref == "j" }); err != nil {
			t.Fatal(err)
		}
	}
	return bd
}

// chat sends one message from a to b and waits for the ack and the
// delivery, skipping whatever the fuzzed connections caused in the lobby.
func (bd *buddies) chat() error {
	n := bd.n.Add(1)
	body := fmt.Sprint("hello ", n)
	if _, err := bd.a.conn.Write(codec.MustEncode(&codec.Say{Room: "buddies", Body: body, Ref: fmt.Sprint(n)})); err != nil {
		return err
	}
	if err := waitErr(bd.a, func(ev codec.Event) bool { return ev.Type == codec.TypeAck && ev.Ref == fmt.Sprint(n) }); err != nil {
		return fmt.Errorf("buddy a: %w", err)
	}
	if err := waitErr(bd.b, func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Body == body }); err != nil {
		return fmt.Errorf("buddy b: %w", err)
	}
	return nil
}

// waitErr is tclient.wait without the frame, for the fuzz harness, which
// reports instead of failing.
func waitErr(c *tclient, match func(codec.Event) bool) error {
	_, err := c.wait(match)
	return err
}
