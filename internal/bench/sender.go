package bench

import (
	"fmt"
	"time"

	"parley/codec"
)

// sender sends benchmark messages. One goroutine uses a sender.
type sender interface {
	send(due int64, seq uint64) error
	close()
}

// parleySender is a logged-in Parley session that says each message,
// on the target's transport: plain TCP, TLS or WebSocket.
type parleySender struct {
	w    *wire
	room string
	size int
	body []byte
	buf  []byte
}

func openParleySender(sp senderSpec) (*parleySender, error) {
	w, err := dialParley(sp.target, sp.addr, sp.certPEM)
	if err != nil {
		return nil, err
	}
	if err := w.send(loginFrames(sp.name, sp.room)); err != nil {
		w.conn.Close()
		return nil, err
	}
	_ = w.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for joined := false; !joined; {
		body, err := w.next()
		if err != nil {
			w.conn.Close()
			return nil, fmt.Errorf("sender login: %w", err)
		}
		var ev codec.Event
		_ = codec.DecodeEvent(body, &ev)
		switch {
		case ev.Type == codec.TypeError:
			w.conn.Close()
			return nil, fmt.Errorf("sender login: %s: %s", ev.Code, ev.Message)
		case ev.Type == codec.TypeAck, ev.Type == codec.TypeWelcome && sp.room == codec.Lobby:
			joined = true
		}
	}
	_ = w.conn.SetReadDeadline(time.Time{})
	s := &parleySender{w: w, room: sp.room, size: sp.size}
	go s.answerPings()
	return s, nil
}

func (s *parleySender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	var err error
	s.buf, err = codec.Append(s.buf[:0], &codec.Say{Room: s.room, Body: string(s.body)})
	if err != nil {
		return err
	}
	return s.w.send(s.buf)
}

func (s *parleySender) close() { s.w.conn.Close() }

// answerPings reads a sender's connection (room messages from other
// senders, presence, pings) so it never looks like a slow consumer, and
// answers pings so it never looks idle. Writes from here and from send
// share the connection: over TLS and WebSocket, a frame must go in one
// Write, which wire.send does.
func (s *parleySender) answerPings() {
	for {
		body, err := s.w.next()
		if err != nil {
			return
		}
		var ev codec.Event
		if codec.DecodeEvent(body, &ev) == nil && ev.Type == codec.TypePing {
			_ = s.w.send(pongFrame)
		}
	}
}
