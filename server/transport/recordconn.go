package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// recordConn is a TLS 1.3 connection's records over its socket, for the
// goroutines that serve it before it reaches a loop (or instead): the web
// port's door, and net/http for the page. Reads and writes may run at
// once (net/http reads in the background while it answers). A read stops
// at a record's end, so a connection handed to a loop leaves nothing in
// flight but the plain bytes it read (pending).
type recordConn struct {
	net.Conn // the socket
	rec      *records

	rmu   sync.Mutex
	raw   []byte // the record being read, as far as it came
	plain []byte // read and not taken yet
	rerr  error  // the read side's end

	// wmu is held to write, and to read a record: reading one may change
	// what the write side owes (a key update).
	wmu    sync.Mutex
	closed bool // close_notify sent
}

// NetConn is the socket (admittedOf).
func (c *recordConn) NetConn() net.Conn { return c.Conn }

func (c *recordConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.plain) == 0 && c.rerr == nil {
		if err := c.readRecord(); err != nil {
			if !isTimeout(err) {
				c.rerr = err
			}
			return 0, err
		}
	}
	if len(c.plain) == 0 {
		return 0, c.rerr
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

// isTimeout reports a deadline that passed: the read goes on where it
// stopped (net/http interrupts its background read so).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readRecord reads one record and opens it.
func (c *recordConn) readRecord() error {
	for {
		need := recordHeader
		if len(c.raw) >= recordHeader {
			need += int(binary.BigEndian.Uint16(c.raw[3:]))
			if need > recordHeader+maxCiphertext13 {
				return c.refuse(fatal(alertRecordOverflow, "record too large"))
			}
			if len(c.raw) == need {
				break
			}
		}
		if cap(c.raw) < need {
			c.raw = append(c.raw, make([]byte, need-len(c.raw))...)[:len(c.raw)]
		}
		n, err := c.Conn.Read(c.raw[len(c.raw):need])
		c.raw = c.raw[:len(c.raw)+n]
		if err != nil {
			if err == io.EOF && len(c.raw) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	plain, _, err := c.rec.open(c.plain[:0], c.raw)
	c.plain, c.raw = plain, c.raw[:0]
	if err != nil {
		return c.refuseLocked(err)
	}
	if out := c.rec.owed(nil); len(out) > 0 {
		_, err = c.Conn.Write(out)
	}
	return err
}

// refuse sends the alert of an error the read side found, if it is ours
// to send.
func (c *recordConn) refuse(err error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.refuseLocked(err)
}

func (c *recordConn) refuseLocked(err error) error {
	var alert *alertError
	if errors.As(err, &alert) && !alert.received && !c.closed {
		c.closed = true
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write(c.rec.alert(nil, alert.desc))
	}
	return err
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if _, err := c.Conn.Write(c.rec.seal(nil, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite says close_notify (net/http calls it before closing).
func (c *recordConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	_, err := c.Conn.Write(c.rec.alert(nil, alertCloseNotify))
	return err
}

// Close says close_notify if it can at once, and closes the socket.
func (c *recordConn) Close() error {
	if c.wmu.TryLock() {
		if !c.closed {
			c.closed = true
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write(c.rec.alert(nil, alertCloseNotify))
		}
		c.wmu.Unlock()
	}
	return c.Conn.Close()
}

// pending takes the plain bytes read and not yet taken, for a loop.
func (c *recordConn) pending() []byte {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	p := c.plain
	c.plain = nil
	return p
}
