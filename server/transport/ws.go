package transport

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
	"parley/server/hub"
)

// WebSocket framing for the stream transport (docs/PROTOCOL.md
// "WebSocket"): one text message carries one protocol object without the
// 4-byte length. The reader turns each message into a length-prefixed
// frame for the hub; Writev turns each frame of a wake into a WebSocket
// frame in the connection's one buffer, so a wake is still one write.
// gobwas/ws reads the headers; the few bytes of a server frame's header
// are written here, into that buffer.

// wsWire is one WebSocket connection's framing (a framing) and its state.
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
	codec.ReasonConnRate:      1013,
	codec.ReasonSlowConsumer:  ws.StatusPolicyViolation,
	codec.ReasonFlood:         ws.StatusPolicyViolation,
	codec.ReasonTimeout:       4000,
	codec.ReasonLoginTimeout:  4001,
	codec.ReasonTokenExpired:  4002,
}

func (w *wsWire) transport() int { return WS }

func (w *wsWire) setLimit(n int) { w.limit.Store(int64(n)) }

var byePrefix = []byte(`{"type":"bye","reason":"`)

// appendFrame appends the protocol frames in f (length-prefixed; the hub
// may hand several in one slice) as text frames, one each, and notes a
// bye's reason for the close frame. Connection's mu held.
func (w *wsWire) appendFrame(dst, f []byte) []byte {
	for len(f) >= codec.HeaderSize {
		n := int(binary.BigEndian.Uint32(f))
		if n&hub.RawFrameBit != 0 { // a control frame's answer, framed already
			n &^= hub.RawFrameBit
			dst = append(dst, f[codec.HeaderSize:codec.HeaderSize+n]...)
			f = f[codec.HeaderSize+n:]
			continue
		}
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
var errWSClosed = errors.New("transport: the client closed the WebSocket")

// read reads messages until the connection ends. A message that breaks
// WebSocket's rules is handed to the hub as the protocol error it is, and
// then nothing more is read but to wait for the close.
func (w *wsWire) read(c *streamConn) {
	err := w.readMessages(c)
	var v *wsViolation
	switch {
	case errors.As(err, &v):
		w.violation(c, v)
		_, err = io.Copy(io.Discard, w.r) // until the close frame is out and the socket shut
	case errors.Is(err, errWSClosed):
		_, _ = io.Copy(io.Discard, w.r) // until the answering close is out
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
func (w *wsWire) violation(c *streamConn, v *wsViolation) {
	c.mu.Lock()
	w.code = v.code
	c.mu.Unlock()
	_ = c.loop.Execute(func() {
		if !c.closed {
			c.hub.TransportError(c.s, v.err)
		}
	})
}

// readMessages reads frames, has the hub answer pings and hands each
// complete text message to the hub. A message whose bytes are not all
// here when its first frame begins is reported to the hub as begun, so
// that --frame-timeout bounds how long it may take to arrive, as it bounds
// a partial frame on TCP.
func (w *wsWire) readMessages(c *streamConn) error {
	begun := false
	for {
		if _, err := w.r.Peek(1); err != nil {
			return err
		}
		if !begun && !wholeFrameBuffered(w.r) {
			begun = true
			c.begin()
		}
		h, err := ws.ReadHeader(w.r)
		if err != nil {
			return err
		}
		if err := w.check(h); err != nil {
			return err
		}
		if h.OpCode.IsControl() {
			begun = begun && len(w.msg) > 0 // a control frame inside a message leaves it begun
			if err := w.control(c, h, begun); err != nil {
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
			if !begun { // the rest comes in frames of their own
				begun = true
				c.begin()
			}
			continue
		}
		begun = false
		if err := w.handMessage(c); err != nil {
			return err
		}
	}
}

// begin tells the hub a message has begun and not arrived whole. It
// runs on the loop before the message is handed over, which ends it.
func (c *streamConn) begin() {
	_ = c.loop.Execute(func() {
		if !c.closed {
			c.hub.MessageBegun(c.s)
		}
	})
}

// wholeFrameBuffered reports whether the reader holds a whole final
// frame: its header and all its payload.
func wholeFrameBuffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	if len(b) < 2 || b[0]&0x80 == 0 {
		return false
	}
	n, hdr := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return false
		}
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false
		}
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	if b[1]&0x80 != 0 {
		hdr += 4 // the mask
	}
	return uint64(len(b)-hdr) >= n
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

// control has the hub answer a ping (hub.Control: charged to flood
// control, the pong queued within the session's outbound limits; the
// reader waits until the loop took it, as for a message) and answers a
// close with a close. A pong from the client is charged as a ping is.
func (w *wsWire) control(c *streamConn, h ws.Header, midMessage bool) error {
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(w.r, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		return c.handControl(hub.RawFrame(append(appendHeader(make([]byte, 0, 2+len(payload)), ws.OpPong, len(payload)), payload...)), midMessage)
	case ws.OpPong:
		return c.handControl(nil, midMessage)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch h.OpCode {
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

// handControl has the loop charge a control frame and queue its answer,
// and waits until it has.
func (c *streamConn) handControl(answer []byte, midMessage bool) error {
	err := c.loop.Execute(func() {
		defer c.consume()
		if !c.closed {
			c.hub.Control(c.s, answer, midMessage)
		}
	})
	if err != nil {
		return errLoopStopped
	}
	c.waitConsumed()
	return nil
}

// handMessage gives the hub the message read, as a length-prefixed
// frame. Invalid UTF-8 is the hub's to refuse (bad_frame).
func (w *wsWire) handMessage(c *streamConn) error {
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
