// Package client is the Go client of the Parley chat server: it logs in,
// answers the server's pings, offers typed calls that wait for their
// answer, delivers everything else as events, and can reconnect.
//
// A Client runs two goroutines while connected, one that reads (and
// supervises reconnects) and one that writes, and for a while others: one
// per gap or direct-message catch-up it fills from history, and one that
// refreshes a token before it expires. All exported methods are safe to
// call from any goroutine. No goroutine outlives Close.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"parley/codec"
)

// Client is a logged-in connection to a Parley server.
type Client struct {
	addr string
	opts Options

	events    chan Event
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the reader goroutine and the token refresher
	fills     sync.WaitGroup // gap fills under way (resume.go)

	mu       sync.Mutex
	cur      *conn                       // nil while reconnecting
	pending  map[string]chan codec.Event // answers awaited, by ref
	nextRef  uint64
	rooms    map[string]bool // rooms to rejoin after a reconnect
	marks    map[string]mark // where the client is in each room, to resume there
	id       string
	resume   string        // the server's resume token for the current session
	nick     string        // the current session's nick, from its welcome
	dms      mark          // where the client is in its account's direct messages
	up       chan struct{} // closed while a connection is installed (Ready)
	stopped  chan struct{} // closed when the reader goroutine ends
	quitting bool
}

// Dial connects to addr and logs in with opts.Nick. It returns the server's
// refusal as a *codec.Error (errors.Is(err, codec.ErrNickTaken), ...), or
// the network error.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if opts.Nick == "" && opts.Token == nil {
		return nil, fmt.Errorf("%w: a nick is required", codec.ErrBadNick)
	}
	cn, err := dialConn(ctx, addr, opts.Nick, "", nil, &opts)
	if err != nil {
		return nil, err
	}
	c := &Client{
		addr:    addr,
		opts:    opts,
		events:  make(chan Event, opts.EventBuffer),
		closing: make(chan struct{}),
		pending: make(map[string]chan codec.Event),
		rooms:   map[string]bool{codec.Lobby: true},
		marks:   map[string]mark{},
		up:      make(chan struct{}),
		stopped: make(chan struct{}),
	}
	c.install(cn)
	c.connected()
	c.emitWelcome(cn)
	c.wg.Add(1)
	go c.run(cn)
	return c, nil
}

// install makes cn the current connection and starts its writer.
func (c *Client) install(cn *conn) {
	c.mu.Lock()
	c.cur = cn
	c.id = cn.welcome.ID
	c.nick = cn.welcome.Nick
	c.resume = cn.welcome.Resume
	c.mu.Unlock()
	cn.startWriter()
	if since, last, ok := c.enteredDMs(cn.welcome.DMEpoch, cn.welcome.DMSeq); ok {
		c.fills.Add(1)
		go c.fillDMs(since, last)
	}
	if cn.welcome.Expires > 0 && c.opts.Token != nil {
		c.wg.Add(1)
		go c.refresher(cn, cn.welcome.Expires)
	}
}

// Events returns the channel of events: server frames other than answers
// to calls, and connection events. It closes when the client stops for
// good. Read it promptly: while it is full the client stops reading from
// the server.
func (c *Client) Events() <-chan Event { return c.events }

// Nick returns the nick the server gave the current (or last) session:
// Options.Nick, a guest's "~nick", or a token's name.
func (c *Client) Nick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nick
}

// ID returns the session UUID of the current (or last) connection.
func (c *Client) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Say sends body to room ("" for the lobby) and waits for its ack,
// returning the message's seq.
func (c *Client) Say(ctx context.Context, room, body string) (uint64, error) {
	return c.SayID(ctx, room, "", body)
}

// SayID is Say with the message's id (docs/PROTOCOL.md): every member
// gets it with the message, and so does this client when the message
// comes back in a replay, which tells a say that failed with
// ErrNotConfirmed but was delivered.
func (c *Client) SayID(ctx context.Context, room, id, body string) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Say{Room: room, ID: id, Body: body, Ref: ref} })
	if err == nil {
		c.noteOwn(c.spelled(room), ev.Seq)
	}
	return ev.Seq, err
}

// DM sends body to the user to and waits for the ack.
func (c *Client) DM(ctx context.Context, to, body string) error {
	_, err := c.DMSeq(ctx, to, body)
	return err
}

// DMSeq is DM returning the message's seq in this account's direct
// messages (0 for a nick login, which keeps none): what EditDM and
// DeleteDM name it by.
func (c *Client) DMSeq(ctx context.Context, to, body string) (uint64, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.DM{To: to, Body: body, Ref: ref} })
	return ev.Seq, err
}

// Ready waits until the client is connected: at once while it is, after
// the reconnect (login and the joins restoring its rooms sent) while it
// is reconnecting. It fails when the client stops for good or ctx ends.
func (c *Client) Ready(ctx context.Context) error {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-c.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connected wakes Ready's waiters: the connection is installed and its
// rooms restored.
func (c *Client) connected() {
	c.mu.Lock()
	close(c.up)
	c.mu.Unlock()
}

// Join enters room, creating it if needed, and waits for the ack.
func (c *Client) Join(ctx context.Context, room string) error {
	ack, err := c.call(ctx, func(ref string) codec.Message { return &codec.Join{Room: room, Ref: ref} })
	if err == nil {
		c.setRoom(room, true)
		c.entered(c.spelled(room), ack.Epoch, ack.Seq)
	}
	return err
}

// Leave exits room and waits for the ack.
func (c *Client) Leave(ctx context.Context, room string) error {
	_, err := c.call(ctx, func(ref string) codec.Message { return &codec.Leave{Room: room, Ref: ref} })
	if err == nil {
		c.setRoom(room, false)
	}
	return err
}

// Who returns the sorted nicks of room, or of everyone online when room is
// "", fetching every page, and the count the server reported.
func (c *Client) Who(ctx context.Context, room string) ([]string, int, error) {
	nicks, _, count, err := c.WhoRoles(ctx, room)
	return nicks, count, err
}

// WhoRoles is Who with the roles in room of the members who hold one
// (nick to "owner" or "operator").
func (c *Client) WhoRoles(ctx context.Context, room string) ([]string, map[string]string, int, error) {
	var nicks []string
	roles := map[string]string{}
	after := ""
	for {
		ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Who{Room: room, After: after, Ref: ref} })
		if err != nil {
			return nil, nil, 0, err
		}
		nicks = append(nicks, ev.Nicks...)
		for n, r := range ev.Roles {
			roles[n] = r
		}
		if !ev.More || len(ev.Nicks) == 0 {
			return nicks, roles, ev.Count, nil
		}
		after = ev.Nicks[len(ev.Nicks)-1]
	}
}

// Count returns how many members room has, or how many users are online
// when room is "", with one request.
func (c *Client) Count(ctx context.Context, room string) (int, error) {
	ev, err := c.call(ctx, func(ref string) codec.Message { return &codec.Who{Room: room, Ref: ref} })
	return ev.Count, err
}

// Rooms returns the rooms the client is in, as far as its calls know.
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	return out
}

// spelled is room as the server spells it: LOBBY is lobby.
func (c *Client) spelled(room string) string {
	if n, err := codec.ParseRoom(room); err == nil {
		return n.Display
	}
	return room
}

func (c *Client) setRoom(room string, in bool) {
	room = c.spelled(room)
	c.mu.Lock()
	defer c.mu.Unlock()
	if in {
		c.rooms[room] = true
	} else {
		delete(c.rooms, room)
		delete(c.marks, room)
	}
}

// Quit sends quit, waits until the server says bye and closes (or ctx
// ends), then closes the client.
func (c *Client) Quit(ctx context.Context) error {
	c.mu.Lock()
	c.quitting = true
	cn := c.cur
	c.mu.Unlock()
	if cn != nil && cn.send(ctx, quitFrame) == nil {
		select {
		case <-cn.done:
		case <-ctx.Done():
		case <-c.closing:
		}
	}
	return c.Close()
}

// Close ends the client: the connection, any reconnect in progress and
// both goroutines. It is idempotent and returns once they have stopped.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		if cn != nil {
			cn.end()
		}
	})
	c.wg.Wait()
	return nil
}

// call sends the request built for a fresh ref and waits for its answer:
// ack or users (returned) or error (returned as *codec.Error).
func (c *Client) call(ctx context.Context, build func(ref string) codec.Message) (codec.Event, error) {
	ref, answer, cn, err := c.register()
	if err != nil {
		return codec.Event{}, err
	}
	defer c.unregister(ref)
	if err := cn.send(ctx, codec.MustEncode(build(ref))); err != nil {
		return codec.Event{}, err
	}
	select {
	case ev := <-answer:
		if ev.Type == codec.TypeError {
			return ev, &codec.Error{Code: ev.Code, Msg: ev.Message}
		}
		return ev, nil
	case <-cn.done:
		return codec.Event{}, ErrNotConfirmed
	case <-c.closing:
		return codec.Event{}, ErrClosed
	case <-ctx.Done():
		return codec.Event{}, ctx.Err()
	}
}

func (c *Client) register() (string, chan codec.Event, *conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closing:
		return "", nil, nil, ErrClosed
	default:
	}
	if c.cur == nil {
		return "", nil, nil, ErrDisconnected
	}
	c.nextRef++
	ref := strconv.FormatUint(c.nextRef, 36)
	ch := make(chan codec.Event, 1)
	c.pending[ref] = ch
	return ref, ch, c.cur, nil
}

func (c *Client) unregister(ref string) {
	c.mu.Lock()
	delete(c.pending, ref)
	c.mu.Unlock()
}

// answer hands a reply to the call waiting for its ref; it reports whether
// one was waiting.
func (c *Client) answer(ev codec.Event) bool {
	if ev.Ref == "" {
		return false
	}
	c.mu.Lock()
	ch := c.pending[ev.Ref]
	delete(c.pending, ev.Ref)
	c.mu.Unlock()
	if ch != nil {
		ch <- ev
	}
	return ch != nil
}

// emitWelcome delivers the welcome of a new connection, and notes where
// the client is in the lobby.
func (c *Client) emitWelcome(cn *conn) {
	c.entered(codec.Lobby, cn.welcome.Epoch, cn.welcome.Seq)
	ev := Event{Event: cn.welcome}
	if c.opts.Raw {
		ev.Raw = cn.rawWelc
	}
	c.emit(ev)
}

// emit delivers an event unless the client is closing.
func (c *Client) emit(ev Event) {
	select {
	case c.events <- ev:
	case <-c.closing:
	}
}

var quitFrame = codec.MustEncode(&codec.Quit{})

// backoff returns the wait before reconnect attempt n (from 1): doubling
// from MinBackoff, capped at MaxBackoff, drawn from the upper half.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

var errServerClosed = errors.New("the server closed the connection")
