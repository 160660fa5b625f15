package transport

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"parley/server/hub"
)

// CertStore is the TLS listener's certificate (and the web port's), read
// again by Load (the server's Reload, on SIGHUP): connections from then on
// get the new one, those open keep theirs. Safe from any goroutine.
type CertStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// NewCertStore reads the certificate and key files (PEM).
func NewCertStore(certFile, keyFile string) (*CertStore, error) {
	cs := &CertStore{certFile: certFile, keyFile: keyFile}
	return cs, cs.Load()
}

// Load reads the files again; on error the certificate in use stays. Its
// errors name the flag whose file is wrong.
func (cs *CertStore) Load() error {
	certPEM, err := os.ReadFile(cs.certFile)
	if err != nil {
		return fmt.Errorf("server: --tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(cs.keyFile)
	if err != nil {
		return fmt.Errorf("server: --tls-key: %w", err)
	}
	isCert := func(t string) bool { return t == "CERTIFICATE" }
	isKey := func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }
	switch {
	case !hasPEM(certPEM, isCert) && hasPEM(certPEM, isKey) && hasPEM(keyPEM, isCert):
		return fmt.Errorf("server: --tls-cert %s holds a private key and --tls-key %s a certificate: swap them", cs.certFile, cs.keyFile)
	case !hasPEM(certPEM, isCert):
		return fmt.Errorf("server: --tls-cert %s: no PEM certificate in it (want a BEGIN CERTIFICATE block)", cs.certFile)
	case !hasPEM(keyPEM, isKey):
		return fmt.Errorf("server: --tls-key %s: no PEM private key in it (want a BEGIN ... PRIVATE KEY block)", cs.keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("server: --tls-cert %s and --tls-key %s: %w", cs.certFile, cs.keyFile, err)
	}
	cs.cur.Store(&cert)
	return nil
}

// hasPEM reports whether data holds a PEM block whose type is wanted.
func hasPEM(data []byte, want func(string) bool) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if want(b.Type) {
			return true
		}
	}
}

func (cs *CertStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cs.cur.Load(), nil }

// tlsConfig is the listener's: TLS 1.2 at least, the Go defaults for
// cipher suites and curves otherwise. Records are as large as the bytes a
// write has (dynamic record sizing off): a wake's frames for a connection
// go out as few records as they fit in, each one AEAD seal.
func (cs *CertStore) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cs.get, DynamicRecordSizingDisabled: true}
}

// TLS runs on the event loops after its handshake. crypto/tls has no
// record layer apart from a net.Conn, so each connection's tls.Conn sits
// on a loopConn: during the handshake, on a goroutine of its own with the
// login timeout as its deadline, the loopConn is the socket; once the
// handshake is done the socket goes to a gnet loop, and the loopConn is
// gnet's buffers: Read takes whole records from what gnet read and says
// errWouldBlock when none is left, and Write collects records for the
// loop to hand gnet in one write. crypto/tls keeps no error that says it
// is temporary (a net.Error whose Temporary is true), so the next read
// goes on where this one stopped. The handshake's state and its goroutine
// are gone by then; a connection keeps the tls.Conn (its keys and small
// buffers).

// errWouldBlock is loopConn's read error when no whole record is buffered.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "transport: no whole TLS record buffered" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// loopConn is the net.Conn under a tls.Conn (see above).
type loopConn struct {
	net.Conn           // the socket, until the connection is on its loop
	gc       gnet.Conn // the connection on its loop; nil during the handshake
	out      *[]byte   // records written, from stages, for the loop to send
	whole    int       // bytes at the front of gnet's buffer that end a whole record
}

// NetConn is the connection under it during the handshake (admittedOf).
func (c *loopConn) NetConn() net.Conn { return c.Conn }

// recordHeader is a TLS record's header: type, version, length.
const recordHeader = 5

// Read reads the socket during the handshake; on the loop, it takes the
// whole records gnet holds, leaving a partial one there for the next
// callback. crypto/tls may take them in smaller pieces than records:
// whole counts what is left of the records already found whole.
func (c *loopConn) Read(p []byte) (int, error) {
	if c.gc == nil {
		return c.Conn.Read(p)
	}
	buf, _ := c.gc.Peek(-1)
	if c.whole == 0 {
		for len(buf)-c.whole >= recordHeader {
			n := recordHeader + int(binary.BigEndian.Uint16(buf[c.whole+3:]))
			if len(buf)-c.whole < n {
				break
			}
			c.whole += n
		}
		if c.whole == 0 && len(buf) >= recordHeader && int(binary.BigEndian.Uint16(buf[3:])) > maxRecord {
			c.whole = len(buf) // an oversized record: crypto/tls refuses it on its header
		}
	}
	if c.whole == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, buf[:c.whole])
	c.whole -= n
	_, _ = c.gc.Discard(n)
	return n, nil
}

// maxRecord is the largest TLS record crypto/tls takes (TLS 1.2's
// limit, RFC 5246 section 6.2.3; TLS 1.3's is lower): a record header
// over it is handed over at once for crypto/tls to refuse.
const maxRecord = 1<<14 + 2048

// Write writes the socket during the handshake; on the loop, it collects
// the records for flushTLS.
func (c *loopConn) Write(p []byte) (int, error) {
	if c.gc == nil {
		return c.Conn.Write(p)
	}
	if c.out == nil {
		c.out = getStage()
	}
	*c.out = append(*c.out, p...)
	return len(p), nil
}

// pending is what Write collected.
func (c *loopConn) pending() []byte {
	if c.out == nil {
		return nil
	}
	return *c.out
}

// release gives the collected records' buffer back once gnet has them.
func (c *loopConn) release() {
	if c.out != nil {
		putStage(c.out)
		c.out = nil
	}
}

// Close, and the deadlines, are the socket's during the handshake; on the
// loop gnet closes the connection.
func (c *loopConn) Close() error {
	if c.gc == nil {
		return c.Conn.Close()
	}
	return nil
}

func (c *loopConn) SetDeadline(t time.Time) error {
	if c.gc == nil {
		return c.Conn.SetDeadline(t)
	}
	return nil
}

func (c *loopConn) SetReadDeadline(t time.Time) error {
	if c.gc == nil {
		return c.Conn.SetReadDeadline(t)
	}
	return nil
}

func (c *loopConn) SetWriteDeadline(t time.Time) error {
	if c.gc == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	return nil
}

// tlsHand starts an admitted connection's TLS handshake on a goroutine of
// its own; the connection goes to a loop once it is done.
func (l *Layer) tlsHand(cfg *tls.Config) func(*net.TCPConn, string) error {
	return func(c *net.TCPConn, remote string) error {
		if !l.arriving.add(c) {
			return errLayerStopped
		}
		go l.shakeHands(c, remote, cfg)
		return nil
	}
}

// shakeHands completes a TLS handshake within the login timeout (a client
// that stalls it is closed as one that never logs in would be) and hands
// the connection to a loop.
func (l *Layer) shakeHands(c *net.TCPConn, remote string, cfg *tls.Config) {
	defer l.arriving.remove(c)
	lc := &loopConn{Conn: c}
	tc := tls.Server(lc, cfg)
	_ = c.SetDeadline(time.Now().Add(l.cfg.Handshake))
	err := tc.Handshake()
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		l.cfg.Hub.Unreserve(hub.IPKey(remote))
		return
	}
	l.toLoop(c, remote, &wireConn{transport: TLS, tc: tc, lc: lc})
}
