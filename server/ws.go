package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/gobwas/ws"

	"parley/codec"
)

// WebSocket framing for the stream transport (docs/PROTOCOL.md
// "WebSocket"): one text message carries one protocol object without the
// 4-byte length. The reader turns each message into a length-prefixed
// frame for the hub; Writev turns each frame of a wake into a WebSocket
// frame in the connection's one buffer, so a wake is still one write.
// gobwas/ws reads the headers; the few bytes of a server frame's header
// are written here, into that buffer.

// wsWire is one WebSocket connection's framing state.
type wsWire struct {
	r     *bufio.Reader // the hijacked connection's reader: it may hold bytes already
	limit atomic.Int64  // the largest message accepted now, as the hub says (hub.FrameLimited)
	msg   []byte        // the message being read: its 4-byte length, then the text
	// Under the connection's mu: the close frame's code and reason.
	code   ws.StatusCode
	reason string
}

// Close codes for the bye reasons (RFC 6455 section 7.4; 4000-4999 are
// the application's). The close frame's reason is the bye's.
var wsCloseCodes = map[codec.Reason]ws.StatusCode{
	codec.ReasonQuit:          ws.StatusNormalClosure,
	codec.ReasonShutdown:      ws.StatusGoingAway,
	codec.ReasonProtocolError: ws.StatusProtocolError,
	codec.ReasonInternalError: ws.StatusInternalServerError,
	codec.ReasonServerFull:    1013, // try again later
	codec.ReasonSlowConsumer:  ws.StatusPolicyViolation,
	codec.ReasonFlood:         ws.StatusPolicyViolation,
	codec.ReasonTimeout:       4000,
	codec.ReasonLoginTimeout:  4001,
	codec.ReasonTokenExpired:  4002,
}

var byePrefix = []byte(`{"type":"bye","reason":"`)

// appendFrame appends the protocol frames in f (length-prefixed; the hub
// may hand several in one slice) as text frames, one each, and notes a
// bye's reason for the close frame. Connection's mu held.
func (w *wsWire) appendFrame(dst, f []byte) []byte {
	for len(f) >= codec.HeaderSize {
		n := int(binary.BigEndian.Uint32(f))
		body := f[codec.HeaderSize : codec.HeaderSize+n]
		f = f[codec.HeaderSize+n:]
		if rest, ok := bytes.CutPrefix(body, byePrefix); ok {
			if i := bytes.IndexByte(rest, '"'); i >= 0 && w.reason == "" {
				w.reason = string(rest[:i])
			}
		}
		dst = append(appendHeader(dst, ws.OpText, len(body)), body...)
	}
	return dst
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

// appendClose appends the close frame: the code of the bye sent, or of
// the violation that ended the connection. Connection's mu held.
func (w *wsWire) appendClose(dst []byte) []byte {
	code, reason := w.code, w.reason
	if code == 0 {
		code = wsCloseCodes[codec.Reason(reason)]
	}
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	body := ws.NewCloseFrameBody(code, reason)
	return append(appendHeader(dst, ws.OpClose, len(body)), body...)
}

// errWSClosed ends the reader when the client closed the WebSocket.
var errWSClosed = errors.New("server: the client closed the WebSocket")

// readWS reads messages until the connection ends. A message that breaks
// WebSocket's rules is handed to the hub as the protocol error it is, and
// then nothing more is read but to wait for the close.
func (c *streamConn) readWS() {
	err := c.readMessages()
	var v *wsViolation
	switch {
	case errors.As(err, &v):
		c.violation(v)
		_, err = io.Copy(io.Discard, c.ws.r) // until the close frame is out and the socket shut
	case errors.Is(err, errWSClosed):
		_, _ = io.Copy(io.Discard, c.ws.r) // until the answering close is out
	}
	c.end(err)
}

// wsViolation is a frame the server does not take, with its close code.
type wsViolation struct {
	code ws.StatusCode
	err  error
}

func (v *wsViolation) Error() string { return v.err.Error() }

func violation(code ws.StatusCode, sentinel *codec.Error, format string, args ...any) error {
	return &wsViolation{code: code, err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// violation has the hub answer v (error, then bye protocol_error), with
// v's close code on the close frame.
func (c *streamConn) violation(v *wsViolation) {
	c.mu.Lock()
	c.ws.code = v.code
	c.mu.Unlock()
	_ = c.loop.Execute(func() {
		if !c.closed {
			c.hub.TransportError(c.s, v.err)
		}
	})
}

// readMessages reads frames, answers pings and hands each complete text
// message to the hub.
func (c *streamConn) readMessages() error {
	w := c.ws
	for {
		h, err := ws.ReadHeader(w.r)
		if err != nil {
			return err
		}
		if err := w.check(h); err != nil {
			return err
		}
		if h.OpCode.IsControl() {
			if err := c.control(h); err != nil {
				return err
			}
			continue
		}
		if len(w.msg) == 0 {
			w.msg = append(w.msg[:0], 0, 0, 0, 0)
		}
		start := len(w.msg)
		if err := w.readPayload(h.Length); err != nil {
			return err
		}
		ws.Cipher(w.msg[start:], h.Mask, 0)
		if !h.Fin {
			continue
		}
		if err := c.handMessage(); err != nil {
			return err
		}
	}
}

// readPayload appends n payload bytes to msg as they arrive, in steps:
// a peer that announces a large frame and sends little of it pins only
// what it sent.
func (w *wsWire) readPayload(n int64) error {
	for n > 0 {
		step := int(min(n, streamReadSize))
		start := len(w.msg)
		w.msg = append(w.msg, make([]byte, step)...)
		if _, err := io.ReadFull(w.r, w.msg[start:]); err != nil {
			return err
		}
		n -= int64(step)
	}
	return nil
}

// check applies the rules a frame's header must pass: masked, no
// extension bits, a known opcode, text (not binary), a control frame
// short and whole, continuations only after a start, and the message
// within --max-frame, decided before its payload is read.
func (w *wsWire) check(h ws.Header) error {
	fragmented := len(w.msg) > 0
	switch {
	case !h.Masked:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a client's WebSocket frames must be masked")
	case h.Rsv != 0:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "no WebSocket extension was agreed")
	case h.OpCode.IsReserved():
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "unknown WebSocket opcode %d", h.OpCode)
	case h.OpCode == ws.OpBinary:
		return violation(ws.StatusUnsupportedData, codec.ErrBadFrame, "messages are text frames of JSON, not binary")
	case h.OpCode.IsControl() && (h.Length > 125 || !h.Fin):
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a control frame is at most 125 bytes, unfragmented")
	case h.OpCode == ws.OpContinuation && !fragmented, h.OpCode == ws.OpText && fragmented:
		return violation(ws.StatusProtocolError, codec.ErrBadFrame, "a continuation frame without a message, or a message inside another")
	case !h.OpCode.IsControl() && int64(len(w.msg))+h.Length > w.limit.Load()+codec.HeaderSize:
		return violation(ws.StatusMessageTooBig, codec.ErrFrameTooLarge, "a message is at most %d bytes now", w.limit.Load())
	}
	return nil
}

// control answers a ping with a pong and a close with a close.
func (c *streamConn) control(h ws.Header) error {
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.ws.r, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch h.OpCode {
	case ws.OpPing:
		if !c.closing {
			c.out = append(appendHeader(c.out, ws.OpPong, len(payload)), payload...)
			c.startWriterLocked()
		}
	case ws.OpClose:
		if !c.closing {
			c.closing = true // the client's close is answered with the same code
			c.out = append(appendHeader(c.out, ws.OpClose, len(payload)), payload...)
			c.startWriterLocked()
		}
		return errWSClosed
	}
	return nil
}

// handMessage gives the hub the message read, as a length-prefixed
// frame. Invalid UTF-8 is the hub's to refuse (bad_frame).
func (c *streamConn) handMessage() error {
	w := c.ws
	binary.BigEndian.PutUint32(w.msg, uint32(len(w.msg)-codec.HeaderSize))
	ok := c.hand(w.msg)
	if cap(w.msg) > 4*streamReadSize {
		w.msg = nil
	} else {
		w.msg = w.msg[:0]
	}
	if !ok {
		return errLoopStopped
	}
	return nil
}
