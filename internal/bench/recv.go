package bench

import (
	"bytes"
	"strconv"
	"strings"

	"parley/codec"
)

// parleyRecv is one Parley receiver's side of the protocol, whatever
// carries its frames: gnet's loops (framedGroup), a goroutine per
// connection (streamGroup, the chat scenario). frame answers pings, keeps
// where the receiver is in its room (for a resume), pages a gap's
// messages from history when fill is set, and hands the rest to the
// receiver's owner through recvHooks. Owned by the connection's reader.
type parleyRecv struct {
	room string
	fill bool // page a gap's messages from history: they are counted, late

	last     uint64 // the room's last seq received
	epoch    string // the room's epoch
	resume   string // the session's resume token, from its welcome
	loggedIn bool   // the login (and the join) were answered
	resuming bool   // this connection resumes an earlier one
	welcomed bool   // this connection's login was answered
}

// recvHooks is what a receiver's owner does with what frame finds.
// Implementations are pointers that live as long as the connection, so
// that handing one to frame allocates nothing.
type recvHooks interface {
	// write sends frames to the server (a pong, a history request).
	write(frames []byte)
	// msg is a msg frame, whole: its body is the owner's to parse.
	msg(frame []byte)
	// filled is the body of a message a history page brought for a gap.
	filled(body []byte)
	// answered is a welcome or an ack: the login, or a join, answered.
	answered(ev *codec.Event)
	// other is any other event: recovered, error, bye.
	other(ev *codec.Event)
}

var (
	msgPrefix  = []byte(`{"type":"msg"`)
	pingPrefix = []byte(`{"type":"ping"`)
	// Presence, which no receiver counts, is skipped undecoded too.
	presencePrefixes = [][]byte{[]byte(`{"type":"joined"`), []byte(`{"type":"left"`), []byte(`{"type":"presence"`)}
	// A gap is filled by paging history; the page's ref carries the gap's
	// last seq, so the answer says how far to go.
	historyPrefix = []byte(`{"type":"history"`)
	seqKey        = []byte(`"seq":`)
	pongFrame     = codec.MustEncode(&codec.Pong{})
)

const fillRef = "fill:"

// frame handles one frame body. Messages and pings, nearly all of the
// traffic, are told by their first bytes, without decoding.
func (r *parleyRecv) frame(body []byte, h recvHooks) {
	switch {
	case bytes.HasPrefix(body, msgPrefix):
		if s := roomSeq(body); s > r.last {
			r.last = s
		}
		h.msg(body)
		return
	case bytes.HasPrefix(body, pingPrefix):
		h.write(pongFrame)
		return
	case bytes.HasPrefix(body, historyPrefix):
		if r.fill {
			r.page(body, h)
		}
		return
	}
	for _, p := range presencePrefixes {
		if bytes.HasPrefix(body, p) {
			return
		}
	}
	var ev codec.Event
	if codec.DecodeEvent(body, &ev) != nil {
		return
	}
	switch ev.Type {
	case codec.TypeWelcome, codec.TypeAck:
		if ev.Type == codec.TypeWelcome {
			r.resume, r.welcomed = ev.Resume, true
		}
		if (ev.Type == codec.TypeAck || r.room == codec.Lobby) && !r.resuming {
			r.epoch, r.last = ev.Epoch, max(r.last, ev.Seq)
		}
		h.answered(&ev)
	case codec.TypeGap:
		// The server dropped room messages while this receiver was
		// behind: they come from history, late.
		if r.fill {
			h.write(fillRequest(ev.Room, ev.First-1, ev.Last))
		}
	default:
		h.other(&ev)
	}
}

// page hands over the messages of a history page that fills a gap, and
// asks for the next page until the gap is filled.
func (r *parleyRecv) page(body []byte, h recvHooks) {
	var ev codec.Event
	if codec.DecodeEvent(body, &ev) != nil || !strings.HasPrefix(ev.Ref, fillRef) {
		return
	}
	last, _ := strconv.ParseUint(ev.Ref[len(fillRef):], 10, 64)
	seq := uint64(0)
	for _, m := range ev.Msgs {
		if m.Seq > last {
			return
		}
		h.filled([]byte(m.Body))
		seq = m.Seq
		r.last = max(r.last, m.Seq)
	}
	if seq > 0 && seq < last {
		h.write(fillRequest(ev.Room, seq, last))
	}
}

// loginFrames logs a receiver in and, for a room other than the lobby,
// joins it; resuming, it presents its resume token and where it was.
func (r *parleyRecv) loginFrames(nick string) []byte {
	login := &codec.Login{Nick: nick}
	var since *uint64
	if r.resuming {
		login.Resume, since = r.resume, &r.last
	}
	if r.resuming && r.room == codec.Lobby {
		login.Since, login.Epoch = since, r.epoch
	}
	b, _ := codec.Append(nil, login)
	if r.room != codec.Lobby {
		j := &codec.Join{Room: r.room, Ref: "j"}
		if r.resuming {
			j.Since, j.Epoch = since, r.epoch
		}
		b, _ = codec.Append(b, j)
	}
	return b
}

// roomSeq reads a msg frame's room seq (the "seq" field, near its end).
func roomSeq(body []byte) uint64 {
	i := bytes.LastIndex(body, seqKey)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range body[i+len(seqKey):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

func fillRequest(room string, since, last uint64) []byte {
	limit := codec.HistoryPage
	return codec.MustEncode(&codec.History{Room: room, Since: &since, Limit: &limit, Ref: fillRef + strconv.FormatUint(last, 10)})
}

// loginFrames logs a new receiver or sender in as nick and, for a room
// other than the lobby, joins it.
func loginFrames(nick, room string) []byte {
	r := parleyRecv{room: room}
	return r.loginFrames(nick)
}
