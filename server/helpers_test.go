package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"parley/codec"
	"parley/internal/poll"
)

// waitFor bounds every wait in these tests.
const waitFor = 5 * time.Second

// startServer runs a server on 127.0.0.1:0 for the test and shuts it down
// when the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer with a hook that runs before Serve.
func startServerWith(t testing.TB, cfg Config, prepare func(*Server)) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	// Every test client dials from 127.0.0.1, faster than one address
	// may by default; the tests of that limit set it.
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = -1
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(srv)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	case <-time.After(waitFor):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v (stats %+v)", err, srv.Stats())
		}
	})
	return srv
}

// tclient is a raw-frame test client: it sends frames and collects every
// frame the server sends on a channel.
type tclient struct {
	t      testing.TB
	conn   net.Conn
	events chan codec.Event
	done   chan struct{} // closed when the server closed the connection
	err    error         // why the reader stopped; read after done
	ws     *wsPeer       // WebSocket framing (ws_test.go); nil for TCP and TLS
}

func dial(t testing.TB, srv *Server) *tclient {
	t.Helper()
	return dialWith(t, srv, nil)
}

// dialWith is dial with a hook that sets socket options before any byte
// moves.
func dialWith(t testing.TB, srv *Server, setup func(*net.TCPConn)) *tclient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(conn.(*net.TCPConn))
	}
	return wrap(t, conn)
}

// wrap makes a test client of a connection made elsewhere (TLS).
func wrap(t testing.TB, conn net.Conn) *tclient {
	c := &tclient{t: t, conn: conn, events: make(chan codec.Event, 4096), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *tclient) read() {
	defer close(c.done)
	r := codec.NewReader(c.conn, 0)
	for {
		body, err := r.Next()
		if err != nil {
			c.err = err
			return
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			c.err = err
			return
		}
		c.events <- ev
	}
}

func (c *tclient) send(m codec.Message) {
	c.t.Helper()
	c.sendRaw(codec.MustEncode(m))
}

func (c *tclient) sendRaw(b []byte) {
	c.t.Helper()
	if c.ws != nil {
		b = c.ws.frame(b)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// wait returns the first frame other than ping for which match holds,
// skipping the others: the one "read until" of these tests. It fails with
// an error when the connection closes first or the deadline passes; the
// frames it skipped are in the error.
func (c *tclient) wait(match func(codec.Event) bool) (codec.Event, error) {
	deadline := time.After(waitFor)
	var skipped []string
	for {
		select {
		case ev := <-c.events:
			if ev.Type == codec.TypePing {
				continue
			}
			if match(ev) {
				return ev, nil
			}
			if len(skipped) < 20 {
				skipped = append(skipped, fmt.Sprintf("%+v", ev))
			}
		case <-c.done:
			select {
			case ev := <-c.events:
				if ev.Type != codec.TypePing && match(ev) {
					return ev, nil
				}
				continue
			default:
			}
			return codec.Event{}, fmt.Errorf("connection closed: %v (skipped %v)", c.err, skipped)
		case <-deadline:
			return codec.Event{}, fmt.Errorf("no answer within the deadline (skipped %v)", skipped)
		}
	}
}

// until is wait that fails the test, saying what it waited for.
func (c *tclient) until(what string, match func(codec.Event) bool) codec.Event {
	c.t.Helper()
	ev, err := c.wait(match)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

func (c *tclient) untilAck(ref string) codec.Event {
	c.t.Helper()
	return c.until("ack "+ref, func(ev codec.Event) bool {
		if ev.Type == codec.TypeError && ev.Ref == ref {
			c.t.Fatalf("request %s failed: %s %s", ref, ev.Code, ev.Message)
		}
		return ev.Type == codec.TypeAck && ev.Ref == ref
	})
}

func (c *tclient) joinRoom(room string) {
	c.t.Helper()
	c.send(&codec.Join{Room: room, Ref: "join-" + room})
	c.untilAck("join-" + room)
}

// next returns the next frame other than ping.
func (c *tclient) next() codec.Event {
	c.t.Helper()
	return c.until("a frame", func(codec.Event) bool { return true })
}

// expect returns the next frame and fails unless it has type typ.
func (c *tclient) expect(typ string) codec.Event {
	c.t.Helper()
	ev := c.next()
	if ev.Type != typ {
		c.t.Fatalf("got %+v, want a %s frame", ev, typ)
	}
	return ev
}

// expectError returns the next frame and fails unless it is an error with code.
func (c *tclient) expectError(code codec.Code) codec.Event {
	c.t.Helper()
	ev := c.expect(codec.TypeError)
	if ev.Code != code {
		c.t.Fatalf("got error %s (%s), want %s", ev.Code, ev.Message, code)
	}
	return ev
}

// untilBye skips frames until bye with reason, then waits for the close.
func (c *tclient) untilBye(reason codec.Reason) {
	c.t.Helper()
	for {
		if ev := c.next(); ev.Type == codec.TypeBye {
			if ev.Reason != reason {
				c.t.Fatalf("bye reason %q, want %q", ev.Reason, reason)
			}
			c.expectClosed()
			return
		}
	}
}

// expectBye waits for bye with reason and then for the close.
func (c *tclient) expectBye(reason codec.Reason) {
	c.t.Helper()
	ev := c.expect(codec.TypeBye)
	if ev.Reason != reason {
		c.t.Fatalf("bye reason %q, want %q", ev.Reason, reason)
	}
	c.expectClosed()
}

func (c *tclient) expectClosed() {
	c.t.Helper()
	select {
	case <-c.done:
		if c.err != nil && !errors.Is(c.err, io.EOF) && !isReset(c.err) {
			c.t.Fatalf("connection ended with %v", c.err)
		}
	case <-time.After(waitFor):
		c.t.Fatal("connection not closed within the deadline")
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// login logs in as nick and returns the welcome.
func (c *tclient) login(nick string) codec.Event {
	c.t.Helper()
	c.send(&codec.Login{Nick: nick})
	return c.expect(codec.TypeWelcome)
}

// loggedIn dials and logs in.
func loggedIn(t testing.TB, srv *Server, nick string) *tclient {
	t.Helper()
	c := dial(t, srv)
	c.login(nick)
	return c
}

// rawFrame frames body without any checks.
func rawFrame(body string) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, waitFor, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// reaches polls count until it returns want. It fails only when count
// stops moving towards want for waitFor: a thousand logins take longer on
// a loaded machine, and that is no failure, but a count that stalls is.
func reaches(t testing.TB, what string, want int, count func() int) {
	t.Helper()
	last, since := count(), time.Now()
	for last != want {
		time.Sleep(2 * time.Millisecond)
		if n := count(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) > waitFor {
			t.Fatalf("%s: stuck at %d of %d for %v", what, last, want, waitFor)
		}
	}
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o644) }
