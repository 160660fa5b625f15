package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"parley/server/hub"
)

// The stream transport serves connections that the standard library reads
// and writes (TLS here), behind the same hub.Conn and hub.Loop interfaces
// as gnet: the hub, fan-out, flood control and the slow-consumer policy do
// not know which transport a session uses. Each connection has a reader
// goroutine, which hands what it read to the connection's loop and waits
// until the loop has taken it (so a fast sender is held back by TCP, not
// buffered here), and a writer goroutine, which writes everything the
// loop queued since its last write in one call: one TLS write per wake,
// however many frames it holds.

// errLoopStopped is Execute's answer once the loop has stopped.
var errLoopStopped = errors.New("transport: stream loop stopped")

// streamLoop is a goroutine that runs the tasks given to Execute in order,
// as a gnet event loop does. Execute is safe from any goroutine.
type streamLoop struct {
	mu      sync.Mutex
	tasks   []func()
	spare   []func()
	stopped bool
	wake    chan struct{}
	done    chan struct{}

	conns map[*streamConn]struct{} // open connections; loop goroutine only
}

func newStreamLoop() *streamLoop {
	l := &streamLoop{wake: make(chan struct{}, 1), done: make(chan struct{}), conns: map[*streamConn]struct{}{}}
	go l.run()
	return l
}

// Execute runs fn later on the loop's goroutine.
func (l *streamLoop) Execute(fn func()) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return errLoopStopped
	}
	l.tasks = append(l.tasks, fn)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

func (l *streamLoop) run() {
	defer close(l.done)
	for range l.wake {
		l.mu.Lock()
		tasks := l.tasks
		l.tasks, l.spare = l.spare[:0], nil
		stopped := l.stopped
		l.mu.Unlock()
		for i, fn := range tasks {
			fn()
			tasks[i] = nil
		}
		l.mu.Lock()
		if cap(tasks) <= 4096 {
			l.spare = tasks[:0]
		}
		l.mu.Unlock()
		if stopped {
			return
		}
	}
}

// stop ends the loop after the tasks given so far, and closes the
// connections still open (those the shutdown's grace did not see off),
// as gnet's engine does when it stops.
func (l *streamLoop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	for c := range l.conns {
		_ = c.nc.Close()
	}
}

// framing is how a stream connection's bytes carry the protocol's
// frames: as they are (TLS), or in WebSocket messages (ws.go).
type framing interface {
	// transport is the connection's index in Names.
	transport() int
	// read is the reader goroutine: it reads until the connection fails
	// or closes, hands what it read to the loop (c.hand), and ends with
	// c.end.
	read(c *streamConn)
	// appendFrame appends frame f, as the wire carries it, to dst.
	appendFrame(dst, f []byte) []byte
	// appendClose appends what ends the connection on the wire (a
	// WebSocket close frame), if anything.
	appendClose(dst []byte) []byte
	// setLimit refuses a message over n bytes on its header, if the
	// framing can.
	setLimit(n int)
}

// rawFraming: the bytes are the protocol's frames (TLS).
type rawFraming struct{}

func (rawFraming) transport() int                   { return TLS }
func (rawFraming) read(c *streamConn)               { c.readLoop() }
func (rawFraming) appendFrame(dst, f []byte) []byte { return append(dst, f...) }
func (rawFraming) appendClose(dst []byte) []byte    { return dst }
func (rawFraming) setLimit(int)                     {}

// streamConn is one connection of the stream transport, as a hub.Conn and
// a hub.Inbound.
type streamConn struct {
	nc    net.Conn
	loop  *streamLoop
	hub   *hub.Hub
	shake time.Duration // handshake deadline: the login timeout
	f     framing
	count *Counts

	// Loop goroutine only.
	s      *hub.Session
	in     []byte // read; in[off:] is not framed yet
	off    int
	closed bool // hub.Closed ran

	consumed chan bool // the loop took what the reader handed it; true: the session is flooding

	mu       sync.Mutex // guards the fields below, shared with the writer
	out      []byte     // queued for the writer, in a buffer from writeBufs
	inflight int        // bytes the writer is writing now
	writing  bool       // a writer goroutine runs
	closing  bool       // Close was called: write what is queued, then close
	werr     error      // the write that failed, which closed the connection
}

// streamReadSize is what one read asks for: chat frames are small, and
// every connection keeps this buffer while it waits.
const streamReadSize = 2 << 10

// writeStep is the most one write call hands the socket: Buffered counts
// down at least this often, so that the hub's write deadline sees a
// client that reads slowly make progress.
const writeStep = 64 << 10

// writeBufs are the buffers that frames wait in for the writer: taken
// when the first frame is queued and given back once written, so memory
// follows the connections that are writing, not every open one.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooled is the largest buffer given back to writeBufs: a burst's goes
// to the collector.
const maxPooled = 64 << 10

// closeFlush bounds how long a closing connection's last bytes may take.
const closeFlush = 2 * time.Second

// startStream opens a session for nc on loop and starts its goroutines.
// nc was counted by hub.Reserve.
func startStream(h *hub.Hub, loop *streamLoop, nc net.Conn, remote string, shake time.Duration, f framing, count *Counts) {
	c := &streamConn{nc: nc, loop: loop, hub: h, shake: shake, f: f, count: count, consumed: make(chan bool, 1)}
	err := loop.Execute(func() {
		s, refusal := h.Open(loop, c, remote)
		if s == nil {
			_ = refusal // TLS: no handshake yet, so the bye cannot be read; close
			_ = nc.Close()
			return
		}
		c.s = s
		loop.conns[c] = struct{}{}
		count.opened(f.transport())
		go c.shakeHands()
	})
	if err != nil {
		h.Unreserve(hub.IPKey(remote))
		_ = nc.Close()
	}
}

// shakeHands completes the TLS handshake and starts the reader on a
// goroutine of its own: the handshake's deep stack goes with this one
// rather than stay with every idle connection's reader.
func (c *streamConn) shakeHands() {
	if err := c.handshake(); err != nil {
		c.end(err)
		return
	}
	go c.f.read(c)
}

// readLoop reads until the connection fails or closes, and then reports
// the close to the hub on the loop.
func (c *streamConn) readLoop() {
	var err error
	buf := make([]byte, streamReadSize)
	for err == nil {
		var n int
		n, err = c.nc.Read(buf)
		if n > 0 && !c.hand(buf[:n]) {
			break
		}
	}
	c.end(err)
}

// end closes the connection and reports the close to the hub on the loop.
func (c *streamConn) end(err error) {
	_ = c.nc.Close()
	_ = c.loop.Execute(func() { c.report(err) })
}

// handshake completes a TLS handshake within the login timeout: a client
// that stalls it is closed as one that never logs in would be.
func (c *streamConn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	_ = tc.SetDeadline(time.Now().Add(c.shake))
	if err := tc.Handshake(); err != nil {
		return err
	}
	return tc.SetDeadline(time.Time{})
}

// hand gives data to the loop and waits until the hub has framed it; it
// reports false if the loop is gone.
func (c *streamConn) hand(data []byte) bool {
	if c.loop.Execute(func() { c.traffic(data) }) != nil {
		return false
	}
	c.waitConsumed()
	return true
}

// floodPause is how long the reader of a session that flood control is
// dropping frames of waits before it reads again: a flood then costs the
// server a read every floodPause until --flood-grace closes it, not a
// loop hop for every frame the client can write.
const floodPause = 50 * time.Millisecond

// waitConsumed waits until the loop took what was handed to it, and
// pauses if the session is flooding.
func (c *streamConn) waitConsumed() {
	if <-c.consumed {
		time.Sleep(floodPause)
	}
}

// consume tells the reader that the loop took what it handed.
func (c *streamConn) consume() {
	c.consumed <- !c.closed && c.hub.Flooding(c.s)
}

// traffic runs on the loop: the hub frames what was read.
func (c *streamConn) traffic(data []byte) {
	defer c.consume()
	if c.closed {
		return
	}
	// What an earlier read left unframed moves to the front first.
	n := copy(c.in, c.in[c.off:])
	c.in, c.off = append(c.in[:n], data...), 0
	c.hub.Traffic(c.s, c)
	if c.off == len(c.in) && cap(c.in) > 4*streamReadSize {
		c.in, c.off = nil, 0 // a large frame's buffer is not kept
	}
}

// report tells the hub the connection closed: nil cause if the server
// closed it.
func (c *streamConn) report(err error) {
	if c.closed {
		return
	}
	c.closed = true
	delete(c.loop.conns, c)
	c.count.closed(c.f.transport())
	c.mu.Lock()
	byServer := c.closing && c.werr == nil
	if c.werr != nil {
		err = c.werr
	}
	c.closing = true
	c.mu.Unlock()
	if byServer {
		err = nil
	}
	c.hub.Closed(c.s, err)
}

// InboundBuffered, Peek and Discard are hub.Inbound. Loop goroutine.
func (c *streamConn) InboundBuffered() int { return len(c.in) - c.off }

func (c *streamConn) Peek(n int) ([]byte, error) {
	if n > c.InboundBuffered() {
		return c.in[c.off:], errShort
	}
	return c.in[c.off : c.off+n], nil
}

func (c *streamConn) Discard(n int) (int, error) {
	n = min(n, c.InboundBuffered())
	c.off += n
	return n, nil
}

var errShort = errors.New("transport: fewer bytes buffered than asked for")

// Writev queues frames for the writer. Loop goroutine.
func (c *streamConn) Writev(frames [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.out == nil {
		c.out = (*writeBufs.Get().(*[]byte))[:0]
	}
	for _, f := range frames {
		c.out = c.f.appendFrame(c.out, f)
	}
	c.startWriterLocked()
}

// Buffered is what the loop queued and the socket has not taken yet.
func (c *streamConn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.inflight
}

// Flush has nothing to do: the writer writes as soon as bytes are queued.
func (c *streamConn) Flush() {}

// SetFrameLimit is hub.FrameLimited: a WebSocket connection refuses a
// message over n on its header. Loop goroutine.
func (c *streamConn) SetFrameLimit(n int) { c.f.setLimit(n) }

// ClosesAfterSending marks that Close sends what is queued first.
func (c *streamConn) ClosesAfterSending() {}

// Close writes what is queued, within closeFlush, then closes; the reader
// then reports the close on the loop. Safe from any goroutine.
func (c *streamConn) Close() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlush))
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.out = c.f.appendClose(c.out) // a WebSocket's close frame, with the bye's reason
	}
	c.closing = true
	c.startWriterLocked()
}

// startWriterLocked starts a writer goroutine unless one runs. A writer
// runs only while there is something to write (or to close), so an idle
// connection costs one goroutine, its reader. c.mu held.
func (c *streamConn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// writeLoop writes what the loop queued, all of it in one call each time
// (in steps of writeStep), until nothing is left; a closing connection is
// then closed. The hub's sweep enforces the write deadline: a client that
// takes nothing is closed as a slow consumer, and Close bounds the last
// write.
func (c *streamConn) writeLoop() {
	for {
		c.mu.Lock()
		buf, closing := c.out, c.closing
		if len(buf) == 0 {
			c.writing = false
			c.mu.Unlock()
			if closing {
				_ = c.nc.Close() // the reader sees it and reports the close
			}
			return
		}
		c.out, c.inflight = nil, len(buf)
		c.mu.Unlock()
		err := c.write(buf)
		if cap(buf) <= maxPooled {
			buf = buf[:0]
			writeBufs.Put(&buf)
		}
		c.mu.Lock()
		if err != nil {
			c.out, c.werr, c.writing = nil, err, false
		}
		c.mu.Unlock()
		if err != nil {
			_ = c.nc.Close()
			return
		}
	}
}

// write hands buf to the socket, counting inflight down as it goes.
func (c *streamConn) write(buf []byte) error {
	for off := 0; off < len(buf); {
		n := min(len(buf)-off, writeStep)
		if _, err := c.nc.Write(buf[off : off+n]); err != nil {
			return err
		}
		off += n
		c.mu.Lock()
		c.inflight = len(buf) - off
		c.mu.Unlock()
	}
	return nil
}
