package client

import (
	"context"
	"fmt"
	"io"
	"time"

	"parley/codec"
)

// run is the reader goroutine: it reads the current connection until it
// ends, then reconnects or stops, and finally closes the Events channel.
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	defer close(c.stopped)
	defer close(c.events)
	defer c.fills.Wait() // a fill emits events: before they close
	for {
		bye, err := c.read(cn)
		c.drop(cn)
		if c.isClosing() || c.isQuitting() || bye == codec.ReasonQuit {
			return
		}
		if !c.shouldReconnect(bye) {
			c.emit(Event{Event: codec.Event{Type: EventDisconnected}, Err: err})
			return
		}
		if cn = c.reconnect(err); cn == nil {
			return
		}
	}
}

// read handles frames until the connection ends; it returns the bye
// reason, if any, and the error that ended the connection.
func (c *Client) read(cn *conn) (codec.Reason, error) {
	var bye codec.Reason
	for {
		_ = cn.nc.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
		ev, raw, err := cn.next()
		if err != nil {
			if err == io.EOF && bye != "" {
				err = fmt.Errorf("%w (%s)", errServerClosed, bye)
			}
			return bye, err
		}
		if ev.Type == codec.TypePing {
			_ = cn.send(context.Background(), pongFrame)
		}
		if ev.Type == codec.TypeBye {
			bye = ev.Reason
		}
		c.dispatch(ev, raw)
	}
}

// dispatch routes one frame: answers to calls go to their caller, pings
// and pongs are handled here, everything else becomes an event.
func (c *Client) dispatch(ev codec.Event, raw []byte) {
	answered := false
	c.note(ev)
	c.noteDM(ev)
	switch ev.Type {
	case codec.TypeAck:
		answered = c.rejoined(ev) || c.answer(ev)
	case codec.TypeError, codec.TypeUsers, codec.TypeHistory, codec.TypeRooms, codec.TypeAudit, codec.TypeServerBans:
		answered = c.answer(ev)
	case codec.TypeLeft:
		if ev.Nick == c.Nick() { // kicked or banned: not a room to rejoin
			c.setRoom(ev.Room, false)
		}
	case codec.TypePing, codec.TypePong:
		answered = true
	}
	if answered && !c.opts.Raw {
		return
	}
	if ev.Type == codec.TypeGap && !c.opts.NoFill {
		c.fills.Add(1)
		defer func() { // after the gap event itself
			go func() {
				defer c.fills.Done()
				c.fill(ev)
			}()
		}()
	}
	out := Event{Event: ev}
	if ev.Type == codec.TypeMsg && ev.Room == "" && ev.To != "" {
		out = c.dmEvent(ev, false)
	}
	if c.opts.Raw {
		out.Raw = append([]byte(nil), raw...)
	}
	c.emit(out)
}

// drop ends cn and forgets it as the current connection.
func (c *Client) drop(cn *conn) {
	cn.wait()
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
		c.up = make(chan struct{})
	}
	c.mu.Unlock()
}

func (c *Client) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func (c *Client) isQuitting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.quitting
}

func (c *Client) shouldReconnect(bye codec.Reason) bool {
	switch {
	case !c.opts.Reconnect:
		return false
	case bye == codec.ReasonShutdown:
		return c.opts.ReconnectOnShutdown
	case bye == codec.ReasonDisconnected:
		return false // the application ended the account's sessions
	}
	return true
}

// reconnect retries with backoff until it is logged in again, with its
// rooms rejoined, or the client closes, or the server refuses the login
// for good (Permanent: it emits EventDisconnected) (nil). One
// EventReconnecting precedes each attempt.
func (c *Client) reconnect(cause error) *conn {
	for attempt := 1; ; attempt++ {
		delay := backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff)
		c.emit(Event{Event: codec.Event{Type: EventReconnecting}, Err: cause, Attempt: attempt, Delay: delay})
		select {
		case <-time.After(delay):
		case <-c.closing:
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		c.mu.Lock()
		resume := c.resume
		c.mu.Unlock()
		cn, err := dialConn(ctx, c.addr, c.opts.Nick, resume, c.lobbyMark(), &c.opts)
		cancel()
		if err != nil {
			c.opts.Logger.Debug("reconnect failed", "attempt", attempt, "err", err)
			if Permanent(err) {
				c.emit(Event{Event: codec.Event{Type: EventDisconnected}, Err: err})
				return nil
			}
			cause = err
			continue
		}
		c.install(cn)
		c.rejoin(cn)
		c.connected()
		c.emitWelcome(cn)
		c.emit(Event{Event: codec.Event{Type: EventReconnected}})
		return cn
	}
}

// rejoin restores the room set on a new connection: the server puts every
// session in the lobby, and the client asks for the rest.
func (c *Client) rejoin(cn *conn) {
	ctx := context.Background()
	for _, room := range c.Rooms() {
		if room != codec.Lobby {
			_ = cn.send(ctx, c.rejoinFrame(room))
		}
	}
	c.mu.Lock()
	inLobby := c.rooms[codec.Lobby]
	c.mu.Unlock()
	if !inLobby {
		_ = cn.send(ctx, codec.MustEncode(&codec.Leave{Room: codec.Lobby}))
	}
}
