package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"parley/codec"
)

// conn is one TCP connection of a Client, from login to close.
type conn struct {
	nc      net.Conn
	r       *codec.Reader
	out     chan []byte   // frames for the writer goroutine
	done    chan struct{} // closed when the connection ends
	endOnce sync.Once
	wg      sync.WaitGroup // the writer goroutine
	welcome codec.Event
	rawWelc []byte // the welcome's JSON
}

// dialConn connects, logs in as nick (with the resume token of the
// session before, and where it was in the lobby, if any) and returns the
// connection with its welcome. A refused login returns the server's
// *codec.Error.
func dialConn(ctx context.Context, addr, nick, resume string, lobby *mark, o *Options) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	token := ""
	if o.Token != nil {
		var err error
		if token, err = o.Token(ctx); err != nil {
			return nil, fmt.Errorf("client: token: %w", err)
		}
	}
	nc, err := o.dial()(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, r: codec.NewReader(nc, o.MaxFrame), out: make(chan []byte, 256), done: make(chan struct{})}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if err := c.login(nick, token, resume, lobby); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// dial is Options.Dial, or a TCP dial (with TLS when Options.TLS is set).
func (o *Options) dial() func(ctx context.Context, addr string) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial
	}
	if o.TLS != nil {
		d := &tls.Dialer{Config: o.TLS}
		return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	var d net.Dialer
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// login sends login and reads until welcome or a refusal.
func (c *conn) login(nick, token, resume string, lobby *mark) error {
	login := &codec.Login{Nick: nick, Token: token, Resume: resume, Ref: "login"}
	if lobby != nil {
		login.Since, login.Epoch = &lobby.seq, lobby.epoch
	}
	if _, err := c.nc.Write(codec.MustEncode(login)); err != nil {
		return err
	}
	for {
		ev, raw, err := c.next()
		if err != nil {
			return err
		}
		switch ev.Type {
		case codec.TypeWelcome:
			c.welcome = ev
			c.rawWelc = append([]byte(nil), raw...)
			return nil
		case codec.TypeError:
			return &codec.Error{Code: ev.Code, Msg: ev.Message}
		case codec.TypeBye:
			return fmt.Errorf("server said bye (%s)", ev.Reason)
		case codec.TypePing:
			if _, err := c.nc.Write(pongFrame); err != nil {
				return err
			}
		}
	}
}

// next reads and decodes one frame; raw is valid until the next call.
func (c *conn) next() (codec.Event, []byte, error) {
	var ev codec.Event
	body, err := c.r.Next()
	if err != nil {
		return ev, nil, err
	}
	err = codec.DecodeEvent(body, &ev)
	return ev, body, err
}

// startWriter runs the goroutine that writes queued frames.
func (c *conn) startWriter() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case f := <-c.out:
				if _, err := c.nc.Write(f); err != nil {
					c.end()
					return
				}
			case <-c.done:
				return
			}
		}
	}()
}

// send queues a frame for the writer. It fails once the connection ended.
func (c *conn) send(ctx context.Context, frame []byte) error {
	select {
	case c.out <- frame:
		return nil
	case <-c.done:
		return ErrDisconnected
	case <-ctx.Done():
		return ctx.Err()
	}
}

// end closes the connection; safe from any goroutine, any number of times.
func (c *conn) end() {
	c.endOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// wait ends the connection and waits for the writer goroutine.
func (c *conn) wait() {
	c.end()
	c.wg.Wait()
}

var pongFrame = codec.MustEncode(&codec.Pong{})
