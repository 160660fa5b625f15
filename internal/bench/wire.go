package bench

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"parley/codec"
)

// wire is a stream receiver's connection: protocol frames over TLS, or
// WebSocket messages (one object each, without the length).
type wire struct {
	conn net.Conn
	r    *codec.Reader // TCP, TLS: length-prefixed frames
	br   *bufio.Reader // WebSocket
	buf  []byte

	mu  sync.Mutex // send's scratch, WebSocket
	out []byte
}

// dialParley connects to a Parley server at addr on target's transport:
// plain TCP, TLS (trusting certPEM) or WebSocket.
func dialParley(target Target, addr, certPEM string) (*wire, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	switch target {
	case TargetParleyWS:
		return dialWS(d, addr)
	case TargetParleyTLS:
		cfg, err := trusting(certPEM)
		if err != nil {
			return nil, err
		}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		return &wire{conn: c, r: codec.NewReader(c, 0)}, nil
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &wire{conn: c, r: codec.NewReader(c, 0)}, nil
}

// tlsConfigs are the client configurations by certificate: one session
// cache per server, shared by its receivers and senders.
var tlsConfigs sync.Map

// trusting is a client TLS configuration that trusts certPEM.
func trusting(certPEM string) (*tls.Config, error) {
	if c, ok := tlsConfigs.Load(certPEM); ok {
		return c.(*tls.Config), nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(certPEM)) {
		return nil, fmt.Errorf("tls: no certificate to trust")
	}
	c, _ := tlsConfigs.LoadOrStore(certPEM, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(64)})
	return c.(*tls.Config), nil
}

// dialWS upgrades a connection to addr's /ws.
func dialWS(d *net.Dialer, addr string) (*wire, error) { return upgradeWS(d, addr, "/ws") }

// upgradeWS dials addr and upgrades the connection to WebSocket at path.
func upgradeWS(d *net.Dialer, addr, path string) (*wire, error) {
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	u, _ := url.Parse("ws://" + addr + path)
	br, _, err := ws.Dialer{}.Upgrade(conn, u)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if br == nil {
		br = bufio.NewReaderSize(conn, 8<<10)
	}
	return &wire{conn: conn, br: br}, nil
}

// next returns the next protocol object, valid until the next call.
func (w *wire) next() ([]byte, error) {
	if w.r != nil {
		return w.r.Next()
	}
	for {
		h, err := ws.ReadHeader(w.br)
		if err != nil {
			return nil, err
		}
		if cap(w.buf) < int(h.Length) {
			w.buf = make([]byte, h.Length)
		}
		w.buf = w.buf[:h.Length]
		if _, err := io.ReadFull(w.br, w.buf); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText:
			return w.buf, nil
		case ws.OpClose:
			return nil, io.EOF
		}
	}
}

// send writes length-prefixed frames in one Write: as they are over TCP
// and TLS, as one masked text message each over WebSocket. Safe from
// several goroutines (a sender's and its ping answerer).
func (w *wire) send(frames []byte) error {
	if w.r != nil {
		_, err := w.conn.Write(frames)
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out = w.out[:0]
	for len(frames) >= codec.HeaderSize {
		n := int(binary.BigEndian.Uint32(frames))
		w.out = appendMasked(w.out, frames[codec.HeaderSize:codec.HeaderSize+n])
		frames = frames[codec.HeaderSize+n:]
	}
	_, err := w.conn.Write(w.out)
	return err
}

// appendMasked appends a client's text frame.
func appendMasked(dst, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var hdr strings.Builder
	_ = ws.WriteHeader(&hdr, h)
	dst = append(dst, hdr.String()...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], h.Mask, 0)
	return dst
}
