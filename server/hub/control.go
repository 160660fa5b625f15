package hub

import "parley/codec"

// Frames a transport reads below the protocol's (WebSocket's ping) cost
// what frames cost: each is charged to flood control, and its answer
// travels the session's outbox like any frame of the hub's, so that
// MaxOutbound, the write deadline and MaxOutboundTotal count it. A peer
// that pings without reading is closed as a slow consumer; one that pings
// faster than the frame rate, as a flood.

// preLoginControls is how many control frames a connection may send
// before it logs in: a browser pings rarely, and before login nothing
// else answers a connection's traffic.
const preLoginControls = 8

// Control handles a control frame from s and queues answer (bytes of the
// transport's own framing, see RawFrame), unless flood control drops it.
// midMessage: it came inside a message that has begun (MessageBegun), and
// FrameTimeout still runs for that one. Loop goroutine of s.
func (h *Hub) Control(s *Session, answer []byte, midMessage bool) {
	if s.closing || s.closed {
		return
	}
	h.partial(s, midMessage)
	l := s.loop
	l.enter()
	defer l.leaveLater()
	if !s.loggedIn {
		if s.controls++; s.controls > preLoginControls {
			h.closeSession(s, codec.ReasonFlood)
			return
		}
	}
	s.lastSeen = h.mono()
	if !h.admit(s) {
		return
	}
	if answer != nil {
		s.send(answer)
	}
}

// RawFrame marks bytes of a transport's own framing (a WebSocket pong)
// for the hub's outbox: a frame whose 4-byte length has its top bit set,
// which no protocol frame has (MaxFrame is far below 2 GiB). A transport
// that queues raw frames writes their bytes without the length; the hub
// counts them as it counts frames.
func RawFrame(b []byte) []byte {
	out := make([]byte, codec.HeaderSize, codec.HeaderSize+len(b))
	n := uint32(len(b)) | RawFrameBit
	out[0], out[1], out[2], out[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return append(out, b...)
}

// RawFrameBit is the length bit that marks a RawFrame.
const RawFrameBit = 1 << 31

// MessageBegun tells the hub that the transport has started reading a
// message of its own framing that is not complete yet: FrameTimeout runs
// until the hub receives it (Traffic), as for a partial frame. Loop
// goroutine of s.
func (h *Hub) MessageBegun(s *Session) {
	if !s.closing && !s.closed {
		h.partial(s, true)
	}
}
