package bench

import (
	"fmt"
	"net"
	"time"

	"parley/codec"
)

// sender sends benchmark messages. One goroutine uses a sender.
type sender interface {
	send(due int64, seq uint64) error
	close()
}

// parleySender is a logged-in Parley session that says each message.
type parleySender struct {
	conn net.Conn
	room string
	size int
	body []byte
	buf  []byte
}

func openParleySender(addr, room, name string, size int) (*parleySender, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(loginFrames(name, room)); err != nil {
		conn.Close()
		return nil, err
	}
	r := codec.NewReader(conn, 0)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for joined := false; !joined; {
		body, err := r.Next()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("sender login: %w", err)
		}
		var ev codec.Event
		_ = codec.DecodeEvent(body, &ev)
		switch {
		case ev.Type == codec.TypeError:
			conn.Close()
			return nil, fmt.Errorf("sender login: %s: %s", ev.Code, ev.Message)
		case ev.Type == codec.TypeAck, ev.Type == codec.TypeWelcome && room == codec.Lobby:
			joined = true
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	go answerPings(conn, r)
	return &parleySender{conn: conn, room: room, size: size}, nil
}

func (s *parleySender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	var err error
	s.buf, err = codec.Append(s.buf[:0], &codec.Say{Room: s.room, Body: string(s.body)})
	if err != nil {
		return err
	}
	_, err = s.conn.Write(s.buf)
	return err
}

func (s *parleySender) close() { s.conn.Close() }

// answerPings reads a sender's connection (room messages from other
// senders, presence, pings) so it never looks like a slow consumer, and
// answers pings so it never looks idle.
func answerPings(conn net.Conn, r *codec.Reader) {
	for {
		body, err := r.Next()
		if err != nil {
			return
		}
		var ev codec.Event
		if codec.DecodeEvent(body, &ev) == nil && ev.Type == codec.TypePing {
			_, _ = conn.Write(pongFrame)
		}
	}
}
