package hub

import "parley/codec"

// Inbound is a connection's received bytes as the transport buffers them;
// a gnet.Conn is one, and so is a stream connection of
// parley/server/transport. Loop goroutine of the connection only.
type Inbound interface {
	InboundBuffered() int
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// Traffic handles every complete frame buffered for s. A peeked frame
// points into the transport's buffers: it is decoded before Discard and
// never kept. Once flood control drops a frame, the rest of what was read
// with it is dropped unread, counted, at the cost of its headers: a flood
// costs the loop little more than the bytes' arrival. Loop goroutine of s.
func (h *Hub) Traffic(s *Session, in Inbound) {
	l := s.loop
	l.enter()
	defer l.leaveLater()
	dropped := uint64(0)
	defer func() {
		if dropped > 0 {
			h.count.floodDrops.Add(dropped)
			h.overLimit(s, dropped-1) // the first was admit's
		}
	}()
	for !s.closing && !s.closed {
		buffered := in.InboundBuffered()
		if buffered < codec.HeaderSize {
			h.partial(s, buffered > 0)
			return
		}
		hdr, _ := in.Peek(codec.HeaderSize)
		size, err := codec.ParseHeader(hdr, h.maxFrame(s))
		if err != nil {
			h.protocolError(s, err)
			break
		}
		if buffered < codec.HeaderSize+size {
			h.partial(s, true)
			return
		}
		l.count.framesIn.Add(1)
		l.count.bytesIn.Add(uint64(codec.HeaderSize + size))
		if dropped > 0 {
			dropped++
			_, _ = in.Discard(codec.HeaderSize + size)
			continue
		}
		frame, _ := in.Peek(codec.HeaderSize + size)
		if !h.handleFrame(s, frame[codec.HeaderSize:]) {
			dropped = 1
		}
		_, _ = in.Discard(codec.HeaderSize + size)
	}
	// The session is closing: what else it sent is not read.
	_, _ = in.Discard(in.InboundBuffered())
}
