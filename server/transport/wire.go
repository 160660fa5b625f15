package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"parley/codec"
	"parley/server/hub"
)

// A wireConn is a connection on a gnet event loop whose bytes are not the
// protocol's frames as they are: TLS around them, WebSocket messages
// holding them, or both. TLS and WebSocket run on the loops as plain TCP
// does: the loop reads, decrypts and unframes what arrived in one
// callback, and a wake's frames for one connection are framed, encrypted
// and handed to gnet in one write, as for TCP. Only the TLS handshake and
// the HTTP upgrade run on goroutines (tls.go, web.go), which end once the
// connection reaches its loop.
//
// In, one OnTraffic: gnet's buffer → [TLS: secure.read] → plain bytes →
// [WebSocket: wsCodec.parse] → protocol frames → hub.Traffic. Out, one
// Writev: frames → [WebSocket: headers] → [TLS: secure.write] → gnet's
// Write.
//
// Scratch buffers come from stages while a callback runs; a connection
// keeps bytes between callbacks only when they are not whole yet (part of
// a message), so an idle connection holds no buffer of its own.
type wireConn struct {
	gc        gnet.Conn
	h         *hub.Hub
	s         *hub.Session
	counts    *Counts
	transport int      // TLS or WS
	sec       secure   // nil: no TLS
	ws        *wsCodec // nil: the plain bytes are the protocol's frames

	plain   []byte // plain bytes not whole yet: part of a WebSocket frame, or of a protocol frame
	closed  bool   // OnClose ran
	closeBy error  // why the transport closed it, for the hub's log
}

// stages are the scratch buffers of one callback: plain bytes, frames for
// the hub, bytes for the socket.
var stages = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxStage is the largest scratch buffer given back to stages: a burst's
// goes to the collector.
const maxStage = 256 << 10

func getStage() *[]byte { return stages.Get().(*[]byte) }

func putStage(b *[]byte) {
	if cap(*b) <= maxStage {
		*b = (*b)[:0]
		stages.Put(b)
	}
}

// frameInbound is a slice of protocol frames as a hub.Inbound.
type frameInbound struct {
	b   []byte
	off int
}

func (f *frameInbound) InboundBuffered() int { return len(f.b) - f.off }

func (f *frameInbound) Peek(n int) ([]byte, error) {
	if n > f.InboundBuffered() {
		return f.b[f.off:], errShort
	}
	return f.b[f.off : f.off+n], nil
}

func (f *frameInbound) Discard(n int) (int, error) {
	n = min(n, f.InboundBuffered())
	f.off += n
	return n, nil
}

var errShort = errors.New("transport: fewer bytes buffered than asked for")

// traffic handles what arrived. Loop goroutine.
func (w *wireConn) traffic() {
	if w.closed || w.ws != nil && w.ws.broken {
		_, _ = w.gc.Discard(-1) // a violation was answered: only the close is awaited
		return
	}
	pb := getStage()
	defer putStage(pb)
	plain := append((*pb)[:0], w.plain...)
	w.plain = nil
	plain, partialRecord, err := w.readPlain(plain)
	*pb = plain
	if err != nil {
		w.fail(err)
		return
	}
	if w.ws == nil {
		w.deliver(plain)
	} else {
		fb := getStage()
		used := w.ws.parse(w, plain, fb)
		putStage(fb)
		if rest := plain[used:]; len(rest) > 0 && !w.closed && !w.ws.broken {
			w.plain = append([]byte(nil), rest...)
		}
	}
	// Part of a message is here and the rest is not: --frame-timeout
	// bounds how long it may take, as for a partial frame on TCP.
	if !w.closed && (partialRecord || w.ws != nil && (len(w.plain) > 0 || w.ws.midMessage())) {
		w.h.MessageBegun(w.s)
	}
}

// deliver hands protocol frames to the hub, and keeps part of one.
func (w *wireConn) deliver(frames []byte) {
	if len(frames) == 0 || w.closed {
		return
	}
	in := frameInbound{b: frames}
	w.h.Traffic(w.s, &in)
	if rest := in.b[in.off:]; len(rest) > 0 && w.ws == nil && !w.closed {
		w.plain = append([]byte(nil), rest...)
	}
}

// readPlain appends what arrived, decrypted if TLS, to plain, and says
// whether part of a TLS record waits for the rest.
func (w *wireConn) readPlain(plain []byte) ([]byte, bool, error) {
	if w.sec != nil {
		return w.sec.read(w.gc, plain)
	}
	buf, _ := w.gc.Peek(-1)
	plain = append(plain, buf...)
	_, _ = w.gc.Discard(-1)
	return plain, false, nil
}

// fail closes a connection whose bytes cannot be read (TLS refused them).
func (w *wireConn) fail(err error) {
	if w.closeBy == nil {
		w.closeBy = err
	}
	_ = w.gc.Close()
}

// send writes wire bytes (WebSocket's, or the protocol's) to the socket,
// through TLS if the connection has it. Loop goroutine.
func (w *wireConn) send(b []byte) {
	w.counts.wrote(w.transport)
	if w.sec != nil {
		w.sec.write(w.gc, b)
		return
	}
	_, _ = w.gc.Write(b)
}

// Writev frames the hub's frames for the wire and writes them in one
// go. A bye ends the stream: a WebSocket's close frame follows it, and
// TLS says close_notify. Loop goroutine.
func (w *wireConn) Writev(frames [][]byte) {
	if w.closed {
		return
	}
	ob := getStage()
	defer putStage(ob)
	buf, bye := (*ob)[:0], false
	for _, f := range frames {
		for len(f) >= codec.HeaderSize {
			n := int(binary.BigEndian.Uint32(f))
			if n&hub.RawFrameBit != 0 { // a control frame's answer, framed already
				n &^= hub.RawFrameBit
				buf = append(buf, f[codec.HeaderSize:codec.HeaderSize+n]...)
				f = f[codec.HeaderSize+n:]
				continue
			}
			body := f[codec.HeaderSize : codec.HeaderSize+n]
			if w.ws != nil {
				buf = w.ws.appendMessage(buf, body)
			} else {
				buf = append(buf, f[:codec.HeaderSize+n]...)
			}
			f = f[codec.HeaderSize+n:]
			if reason, ok := byeReason(body); ok {
				bye = true
				if w.ws != nil {
					buf = w.ws.appendClose(buf, reason)
				}
			}
		}
	}
	*ob = buf
	w.send(buf)
	if bye && w.sec != nil {
		w.sec.closeNotify(w.gc)
	}
}

var byePrefix = []byte(`{"type":"bye","reason":"`)

// byeReason is the reason of a bye frame's body.
func byeReason(body []byte) (codec.Reason, bool) {
	rest, ok := bytes.CutPrefix(body, byePrefix)
	if !ok {
		return "", false
	}
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return codec.Reason(rest[:i]), true
	}
	return "", true
}

// Buffered is what gnet holds for the socket, on the wire: WebSocket
// headers and TLS records count, a few percent over the frames' bytes.
func (w *wireConn) Buffered() int { return w.gc.OutboundBuffered() }
func (w *wireConn) Flush()        { _ = w.gc.Flush() }
func (w *wireConn) Close()        { _ = w.gc.Close() }

// SetFrameLimit is hub.FrameLimited: a WebSocket message over n is
// refused on its header. Loop goroutine.
func (w *wireConn) SetFrameLimit(n int) {
	if w.ws != nil {
		w.ws.limit = n
	}
}

// closedByPeer reports the close to the hub. Loop goroutine (OnClose).
func (w *wireConn) closedByPeer(err error) {
	w.closed = true
	w.plain = nil
	if w.closeBy != nil {
		err = w.closeBy
	}
	w.h.Closed(w.s, err)
}
