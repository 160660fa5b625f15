package transport

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
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
// go out as few records as they fit in, each one AEAD seal. No session
// tickets: under TLS 1.3 a ticket is sent under the application keys,
// which records takes over (tls13.go) counting from zero; a session
// resumes at the protocol's level (resume tokens), and a reconnect pays a
// full handshake.
func (cs *CertStore) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cs.get, DynamicRecordSizingDisabled: true, SessionTicketsDisabled: true}
}

// TLS runs on the event loops after its handshake, which runs on a
// goroutine of its own with the login timeout as its deadline
// (shakeHands; the web port's door does the same). crypto/tls does the
// handshake over a loopConn, the socket, read a record at a time so that
// crypto/tls holds no bytes past its last handshake record. Then:
//   - TLS 1.3 (every current client): crypto/tls's key log gives the
//     application traffic secrets, the tls.Conn is dropped, and records
//     (tls13.go) protects the connection's records on its loop;
//   - TLS 1.2: the tls.Conn stays, over the loopConn, which is now gnet's
//     buffers: Read takes whole records from what gnet read and says
//     errWouldBlock when none is left, and Write collects records for the
//     loop to hand gnet in one write. crypto/tls keeps no error that says
//     it is temporary (a net.Error whose Temporary is true), so the next
//     read goes on where this one stopped.

// secure is a connection's TLS on its loop. Loop goroutine.
type secure interface {
	// read appends the application data of the whole records gnet holds
	// to plain, taking them from gnet; partial says part of a record
	// waits for the rest. An error ends the connection (io.EOF: the
	// peer's close_notify).
	read(gc gnet.Conn, plain []byte) (_ []byte, partial bool, err error)
	// write hands gnet p, encrypted.
	write(gc gnet.Conn, p []byte)
	// closeNotify hands gnet the close_notify alert.
	closeNotify(gc gnet.Conn)
}

// handshake is what a completed handshake leaves: TLS 1.3's records, or
// the tls.Conn of TLS 1.2.
type handshake struct {
	rec *records
	tc  *tls.Conn
	lc  *loopConn // under tc
}

// serverHandshake runs a TLS handshake on c, a socket whose deadline the
// caller set.
func serverHandshake(c net.Conn, base *tls.Config) (handshake, error) {
	secrets := &trafficSecrets{}
	cfg := base.Clone()
	cfg.KeyLogWriter = secrets
	lc := &loopConn{Conn: c}
	tc := tls.Server(lc, cfg)
	if err := tc.Handshake(); err != nil {
		return handshake{}, err
	}
	st := tc.ConnectionState()
	if st.Version == tls.VersionTLS13 {
		if rec, err := newRecords(st.CipherSuite, secrets.client, secrets.server); err == nil {
			return handshake{rec: rec}, nil
		}
	}
	return handshake{tc: tc, lc: lc}, nil
}

// secure is the handshake's TLS for a loop.
func (h handshake) secure() secure {
	if h.rec != nil {
		return h.rec
	}
	return &tlsConnRecords{tc: h.tc, lc: h.lc}
}

// conn is the connection over the socket c for goroutines to read and
// write (the web port's door, net/http).
func (h handshake) conn(c net.Conn) net.Conn {
	if h.rec != nil {
		return &recordConn{Conn: c, rec: h.rec}
	}
	return h.tc
}

// trafficSecrets takes the application traffic secrets from crypto/tls's
// key log (the NSS key log format, one line a secret) for records. The
// secrets stay in memory, as they do in a tls.Conn.
type trafficSecrets struct{ client, server []byte }

func (s *trafficSecrets) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return len(line), nil
	}
	var dst *[]byte
	switch string(f[0]) {
	case "CLIENT_TRAFFIC_SECRET_0":
		dst = &s.client
	case "SERVER_TRAFFIC_SECRET_0":
		dst = &s.server
	default:
		return len(line), nil
	}
	b, err := hex.DecodeString(string(f[2]))
	if err != nil {
		return 0, err
	}
	*dst = b
	return len(line), nil
}

// read, write and closeNotify make records a loop's secure.
func (r *records) read(gc gnet.Conn, plain []byte) ([]byte, bool, error) {
	buf, _ := gc.Peek(-1)
	plain, used, err := r.open(plain, buf)
	_, _ = gc.Discard(used)
	partial := err == nil && used < len(buf)
	if !r.owesUpdate && err == nil {
		return plain, partial, nil // nothing to send back: no stage
	}
	ob := getStage()
	defer putStage(ob)
	out := r.owed((*ob)[:0])
	var alert *alertError
	if errors.As(err, &alert) && !alert.received {
		out = r.alert(out, alert.desc)
	}
	if len(out) > 0 {
		_, _ = gc.Write(out)
	}
	*ob = out
	return plain, partial, err
}

func (r *records) write(gc gnet.Conn, p []byte) {
	ob := getStage()
	*ob = r.seal((*ob)[:0], p)
	_, _ = gc.Write(*ob)
	putStage(ob)
}

func (r *records) closeNotify(gc gnet.Conn) {
	ob := getStage()
	*ob = r.alert((*ob)[:0], alertCloseNotify)
	_, _ = gc.Write(*ob)
	putStage(ob)
}

// tlsConnRecords is TLS 1.2's secure: crypto/tls over a loopConn on gnet's
// buffers.
type tlsConnRecords struct {
	tc *tls.Conn
	lc *loopConn
}

func (t *tlsConnRecords) read(gc gnet.Conn, plain []byte) ([]byte, bool, error) {
	t.lc.gc = gc
	defer t.flush(gc) // what reading wrote: an alert
	for {
		if len(plain) == cap(plain) {
			plain = append(plain, 0)[:len(plain)]
		}
		n, err := t.tc.Read(plain[len(plain):cap(plain)])
		plain = plain[:len(plain)+n]
		switch {
		case errors.Is(err, errWouldBlock):
			return plain, gc.InboundBuffered() > 0, nil
		case err != nil:
			return plain, false, err
		}
	}
}

func (t *tlsConnRecords) write(gc gnet.Conn, p []byte) {
	t.lc.gc = gc
	_, _ = t.tc.Write(p)
	t.flush(gc)
}

func (t *tlsConnRecords) closeNotify(gc gnet.Conn) {
	t.lc.gc = gc
	_ = t.tc.CloseWrite()
	t.flush(gc)
}

// flush hands gnet the records TLS wrote to the loopConn.
func (t *tlsConnRecords) flush(gc gnet.Conn) {
	if out := t.lc.pending(); len(out) > 0 {
		_, _ = gc.Write(out)
	}
	t.lc.release()
}

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

	// On the socket, reads stop at each record's end: the header's bytes
	// read so far, then what is left of the record.
	header  [recordHeader]byte
	headerN int
	left    int
}

// NetConn is the connection under it during the handshake (admittedOf).
func (c *loopConn) NetConn() net.Conn { return c.Conn }

// recordHeader is a TLS record's header: type, version, length.
const recordHeader = 5

// Read reads the socket during the handshake, a record at a time; on the
// loop, it takes the whole records gnet holds, leaving a partial one there
// for the next callback. crypto/tls may take them in smaller pieces than
// records: whole counts what is left of the records already found whole.
func (c *loopConn) Read(p []byte) (int, error) {
	if c.gc == nil {
		return c.readRecord(p)
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

// readRecord reads the socket no further than the end of the record
// being read.
func (c *loopConn) readRecord(p []byte) (int, error) {
	if c.left == 0 {
		p = p[:min(len(p), recordHeader-c.headerN)]
	} else {
		p = p[:min(len(p), c.left)]
	}
	n, err := c.Conn.Read(p)
	switch {
	case c.left > 0:
		c.left -= n
	case n > 0:
		c.headerN += copy(c.header[c.headerN:], p[:n])
		if c.headerN == recordHeader {
			c.headerN, c.left = 0, int(binary.BigEndian.Uint16(c.header[3:]))
		}
	}
	return n, err
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
	_ = c.SetDeadline(time.Now().Add(l.cfg.Handshake))
	hs, err := serverHandshake(c, cfg)
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		l.cfg.Hub.Unreserve(hub.IPKey(remote))
		return
	}
	l.toLoop(c, remote, &wireConn{transport: TLS, sec: hs.secure()})
}

// HTTPSConfig is the configuration of a plain net/http server (the server
// API's port) that serves the store's certificate, reloads included.
func (cs *CertStore) HTTPSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cs.get}
}
