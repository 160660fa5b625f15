package bench

import (
	"github.com/panjf2000/gnet/v2"

	"parley/codec"
)

// peekFrame returns the next complete frame buffered on c, header
// included, without consuming it, or nil when more bytes are needed. The
// slice is only valid until c.Discard. Loop goroutine of c only.
func peekFrame(c gnet.Conn) ([]byte, error) {
	n := c.InboundBuffered()
	if n < codec.HeaderSize {
		return nil, nil
	}
	hdr, _ := c.Peek(codec.HeaderSize)
	size, err := codec.ParseHeader(hdr, codec.DefaultMaxFrame)
	if err != nil || n < codec.HeaderSize+size {
		return nil, err
	}
	return c.Peek(codec.HeaderSize + size)
}
