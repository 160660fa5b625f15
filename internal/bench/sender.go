package bench

import (
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"

	"parley/codec"
)

// sender sends benchmark messages. One goroutine uses a sender.
type sender interface {
	send(due int64, seq uint64) error
	close()
}

func openSender(t Target, addr, room, name string, size int) (sender, error) {
	switch t {
	case TargetNATS:
		nc, err := nats.Connect(addr, nats.Name(name))
		if err != nil {
			return nil, err
		}
		return &natsSender{nc: nc, subject: room, size: size}, nil
	case TargetCentrifugo:
		return openCentrifugoSender(addr, room, size)
	case TargetRedis:
		return openRedisSender(addr, room, size)
	case TargetFloor:
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		s := &floorSender{conn: conn, room: room, from: name, size: size}
		go discardFrames(conn)
		return s, nil
	}
	return openParleySender(addr, room, name, size)
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

// floorSender writes pre-framed msg frames, byte for byte what Parley would
// send its members, for the floor server to relay.
type floorSender struct {
	conn net.Conn
	room string
	from string
	size int
	body []byte
	buf  []byte
}

func (s *floorSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	var err error
	s.buf, err = codec.Append(s.buf[:0], &codec.Msg{From: s.from, Room: s.room, Body: string(s.body), TS: due / 1e6, Seq: seq})
	if err != nil {
		return err
	}
	_, err = s.conn.Write(s.buf)
	return err
}

func (s *floorSender) close() { s.conn.Close() }

func discardFrames(conn net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// natsSender publishes each message on the subject.
type natsSender struct {
	nc      *nats.Conn
	subject string
	size    int
	body    []byte
}

func (s *natsSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	return s.nc.Publish(s.subject, s.body)
}

func (s *natsSender) close() {
	_ = s.nc.Flush()
	s.nc.Close()
}
