package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gobwas/ws"

	"parley/codec"
	"parley/server/hub"
)

// WebSocket framing (docs/PROTOCOL.md "WebSocket"): one text message
// carries one protocol object without the 4-byte length. On the loop,
// parse turns each message that arrived into a length-prefixed frame for
// the hub; Writev turns each frame of a wake into a WebSocket frame in one
// buffer, so a wake is still one write. The header of a server frame is a
// few bytes written here; gobwas/ws gives the opcodes, close codes and
// unmasking, and the upgrade (web.go).

// wsCodec is one WebSocket connection's framing state. Loop goroutine.
type wsCodec struct {
	limit  int    // the largest message accepted now, as the hub says (hub.FrameLimited)
	msg    []byte // a fragmented message being put together: its 4-byte length, then the text
	broken bool   // a violation was answered: nothing more is read
	code   ws.StatusCode
	closed bool // a close frame went out
}

// Close codes for the bye reasons (RFC 6455 section 7.4; 4000-4999 are
// the application's). The close frame's reason is the bye's.
var wsCloseCodes = map[codec.Reason]ws.StatusCode{
	codec.ReasonQuit:          ws.StatusNormalClosure,
	codec.ReasonShutdown:      ws.StatusGoingAway,
	codec.ReasonProtocolError: ws.StatusProtocolError,
	codec.ReasonInternalError: ws.StatusInternalServerError,
	codec.ReasonServerFull:    1013, // try again later
	codec.ReasonConnRate:      1013,
	codec.ReasonSlowConsumer:  ws.StatusPolicyViolation,
	codec.ReasonFlood:         ws.StatusPolicyViolation,
	codec.ReasonTimeout:       4000,
	codec.ReasonLoginTimeout:  4001,
	codec.ReasonTokenExpired:  4002,
	codec.ReasonBanned:        4003,
	codec.ReasonTokenRevoked:  4004,
	codec.ReasonDisconnected:  4005,
}

func (c *wsCodec) midMessage() bool { return len(c.msg) > 0 }

// appendMessage appends body as one unmasked text frame.
func (c *wsCodec) appendMessage(dst, body []byte) []byte {
	return append(appendHeader(dst, ws.OpText, len(body)), body...)
}

// appendHeader appends an unmasked, final frame header.
func appendHeader(dst []byte, op ws.OpCode, n int) []byte {
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
}

// appendClose appends the close frame that follows a bye: the code of
// the violation that ended the connection, or the bye's.
func (c *wsCodec) appendClose(dst []byte, reason codec.Reason) []byte {
	if c.closed {
		return dst
	}
	c.closed = true
	code := c.code
	if code == 0 {
		code = wsCloseCodes[reason]
	}
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	body := ws.NewCloseFrameBody(code, string(reason))
	return append(appendHeader(dst, ws.OpClose, len(body)), body...)
}

// errWSClosed is the close's cause when the client closed the WebSocket.
var errWSClosed = errors.New("transport: the client closed the WebSocket")

// wsHeader is a frame's header as parse reads it.
type wsHeader struct {
	fin    bool
	rsv    byte
	op     ws.OpCode
	masked bool
	mask   [4]byte
	length int64
	size   int // the header's own bytes
}

// readHeader reads a frame header from b, if all of it is there.
func readHeader(b []byte) (wsHeader, bool) {
	if len(b) < 2 {
		return wsHeader{}, false
	}
	h := wsHeader{fin: b[0]&0x80 != 0, rsv: (b[0] >> 4) & 7, op: ws.OpCode(b[0] & 0x0f), masked: b[1]&0x80 != 0, size: 2}
	switch n := b[1] & 0x7f; n {
	case 126:
		if len(b) < 4 {
			return h, false
		}
		h.length, h.size = int64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, false
		}
		h.length, h.size = int64(binary.BigEndian.Uint64(b[2:])&(1<<63-1)), 10
	default:
		h.length = int64(n)
	}
	if h.masked {
		if len(b) < h.size+4 {
			return h, false
		}
		copy(h.mask[:], b[h.size:])
		h.size += 4
	}
	return h, true
}

// wsViolation is a frame the server does not take, with its close code.
type wsViolation struct {
	code ws.StatusCode
	err  error
}

func (v *wsViolation) Error() string { return v.err.Error() }

func violation(code ws.StatusCode, sentinel *codec.Error, format string, args ...any) *wsViolation {
	return &wsViolation{code: code, err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// check applies the rules a frame's header must pass: masked, no
// extension bits, a known opcode, text (not binary), a control frame
// short and whole, continuations only after a start, and the message
// within the limit, decided before its payload is waited for.
func (c *wsCodec) check(h wsHeader) *wsViolation {
	fragmented := len(c.msg) > 0
	switch {
	case !h.masked:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a client's WebSocket frames must be masked")
	case h.rsv != 0:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "no WebSocket extension was agreed")
	case h.op.IsReserved():
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "unknown WebSocket opcode %d", h.op)
	case h.op == ws.OpBinary:
		return violation(ws.StatusUnsupportedData, codec.ErrBadFrame, "messages are text frames of JSON, not binary")
	case h.op.IsControl() && (h.length > 125 || !h.fin):
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a control frame is at most 125 bytes, unfragmented")
	case h.op == ws.OpContinuation && !fragmented, h.op == ws.OpText && fragmented:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a continuation frame without a message, or a message inside another")
	case !h.op.IsControl() && max(int64(len(c.msg))-codec.HeaderSize, 0)+h.length > int64(c.limit):
		return violation(ws.StatusMessageTooBig, codec.ErrFrameTooLarge, "a message is at most %d bytes now", c.limit)
	}
	return nil
}

// parse reads the whole frames at the start of plain, hands each
// complete text message to the hub as a protocol frame (in a scratch
// buffer from fb) and each control frame to the hub as a control, in the
// order they came, and returns how many bytes it used. A frame that
// breaks WebSocket's rules is answered as the protocol error it is
// (error, then bye protocol_error and a close frame with its code), and
// nothing more is read.
func (c *wsCodec) parse(w *wireConn, plain []byte, fb *[]byte) int {
	frames, used := (*fb)[:0], 0
	defer func() { *fb = frames }()
	for !w.closed && !c.broken {
		h, ok := readHeader(plain[used:])
		if !ok {
			break
		}
		if v := c.check(h); v != nil {
			w.deliver(frames)
			c.broken, c.code = true, v.code
			if !w.closed {
				w.h.TransportError(w.s, v.err)
			}
			return len(plain)
		}
		if int64(len(plain)-used-h.size) < h.length {
			break // the payload is not all here
		}
		payload := plain[used+h.size : used+h.size+int(h.length)]
		used += h.size + int(h.length)
		ws.Cipher(payload, h.mask, 0)
		if h.op.IsControl() {
			w.deliver(frames) // in order: what came before the control first
			frames = frames[:0]
			c.control(w, h.op, payload)
			continue
		}
		switch {
		case h.fin && len(c.msg) == 0: // the common case: a message in one frame
			frames = binary.BigEndian.AppendUint32(frames, uint32(len(payload)))
			frames = append(frames, payload...)
		case len(c.msg) == 0:
			c.msg = append(append(c.msg, 0, 0, 0, 0), payload...)
		default:
			c.msg = append(c.msg, payload...)
		}
		if h.fin && len(c.msg) > 0 {
			binary.BigEndian.PutUint32(c.msg, uint32(len(c.msg)-codec.HeaderSize))
			frames = append(frames, c.msg...)
			c.msg = nil
		}
	}
	w.deliver(frames)
	return used
}

// control has the hub answer a ping (hub.Control: charged to flood
// control, the pong queued within the session's outbound limits) and
// answers a close with the same close, then closes. A pong from the
// client is charged as a ping is.
func (c *wsCodec) control(w *wireConn, op ws.OpCode, payload []byte) {
	switch op {
	case ws.OpPing:
		pong := append(appendHeader(make([]byte, 0, 2+len(payload)), ws.OpPong, len(payload)), payload...)
		w.h.Control(w.s, hub.RawFrame(pong), c.midMessage())
	case ws.OpPong:
		w.h.Control(w.s, nil, c.midMessage())
	case ws.OpClose:
		if !c.closed {
			c.closed = true
			w.send(append(appendHeader(nil, ws.OpClose, len(payload)), payload...))
		}
		c.broken = true
		w.closeBy = errWSClosed
		_ = w.gc.Close()
	}
}
