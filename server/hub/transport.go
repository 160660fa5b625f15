package hub

// The hub (sessions, rooms, fan-out) talks to the network only through Conn
// and Loop, so it can be tested without sockets and another transport can
// plug in. parley/server/transport adapts gnet's connections (plain TCP,
// and TLS and WebSocket on the same loops) to these interfaces.

// Conn is one client connection as the hub sees it.
type Conn interface {
	// Writev sends frames in order. It is called only on the connection's
	// loop goroutine. Bytes the socket does not take at once are buffered by
	// the transport. A write error closes the connection; the transport may
	// then call Hub.Closed from inside Writev.
	Writev(frames [][]byte)
	// Buffered returns the bytes written but not yet taken by the socket.
	// Loop goroutine only.
	Buffered() int
	// Flush gives the socket as much of the buffered bytes as it takes now.
	// Loop goroutine only. A write error closes the connection, as Writev.
	Flush()
	// Close closes the connection after sending what is buffered, as far as
	// the socket takes it without blocking. Safe from any goroutine; the
	// transport reports the close later, on the loop, with Hub.Closed.
	Close()
}

// Loop is a goroutine that owns a set of connections (an event loop).
type Loop interface {
	// Execute runs fn later on the loop's goroutine. Safe from any goroutine.
	Execute(fn func()) error
}

// FrameLimited is a Conn whose transport frames messages of its own
// before the hub sees them (WebSocket) and must refuse one on its header:
// the hub tells it the largest frame the session may send, at open (the
// login limit) and again at login (MaxFrame). Loop goroutine of the
// connection.
type FrameLimited interface {
	Conn
	SetFrameLimit(n int)
}

// setFrameLimit tells c the frame limit, if it frames messages itself.
func setFrameLimit(c Conn, n int) {
	if fl, ok := c.(FrameLimited); ok {
		fl.SetFrameLimit(n)
	}
}
