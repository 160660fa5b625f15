package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"slices"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// A TLS 1.3 connection's records, once its handshake is done, are
// protected here rather than by crypto/tls (RFC 8446 section 5). crypto/tls
// does the handshake; its KeyLogWriter hands over the two application
// traffic secrets, and the tls.Conn is dropped. A tls.Conn cannot give
// back what it holds after the handshake (its read buffer at the
// ClientHello's size, the handshake reassembly buffer, the exporter's
// closure): about 7 KiB a connection, where records holds the two AEAD
// states and their secrets, about 1.5 KiB.
//
// What is kept of crypto/tls's behaviour, and what is not:
//   - Application data, alerts and KeyUpdate are read; any other
//     handshake message after the handshake (a client has none to send
//     but KeyUpdate), a change_cipher_spec, or a handshake message split
//     over records is an unexpected_message. A KeyUpdate that asks for
//     ours is answered under the old key, then the key changes.
//   - More than maxUselessRecords records in a row without application
//     data (empty ones, key updates) end the connection, as in crypto/tls.
//   - Records are as large as a write's bytes (up to 16 KiB), with no
//     padding.
//   - Sequence numbers start at zero: the handshake sends nothing under
//     the application keys, since the listener sends no session tickets
//     (tlsConfig).

// TLS record content types and alerts (RFC 8446 sections 5.1 and 6).
const (
	recordAlert     = 21
	recordHandshake = 22
	recordData      = 23

	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertDecodeError       = 50
	alertIllegalParameter  = 47

	handshakeKeyUpdate = 24

	maxPlaintext      = 1 << 14            // RFC 8446 section 5.1
	maxCiphertext13   = maxPlaintext + 256 // section 5.2
	maxUselessRecords = 16                 // crypto/tls's limit
)

// alertError is a fatal alert: the one sent, or the one received.
type alertError struct {
	desc     uint8
	received bool
	why      string
}

func (e *alertError) Error() string {
	if e.received {
		return "tls: peer sent alert " + alertName(e.desc)
	}
	return "tls: " + e.why + " (alert " + alertName(e.desc) + ")"
}

func alertName(d uint8) string {
	switch d {
	case alertCloseNotify:
		return "close_notify"
	case alertUnexpectedMessage:
		return "unexpected_message"
	case alertBadRecordMAC:
		return "bad_record_mac"
	case alertRecordOverflow:
		return "record_overflow"
	case alertDecodeError:
		return "decode_error"
	case alertIllegalParameter:
		return "illegal_parameter"
	}
	return strconv.Itoa(int(d))
}

func fatal(desc uint8, why string) *alertError { return &alertError{desc: desc, why: why} }

// suite13 is a TLS 1.3 cipher suite: its AEAD and the hash of its key
// schedule.
type suite13 struct {
	keyLen int
	hash   func() hash.Hash
	aead   func(key []byte) (cipher.AEAD, error)
}

// suites13 are TLS 1.3's suites that crypto/tls negotiates. A suite not
// here (none today) keeps the tls.Conn (tlsConnRecords).
var suites13 = map[uint16]*suite13{
	tls.TLS_AES_128_GCM_SHA256:       {keyLen: 16, hash: sha256.New, aead: aesGCM},
	tls.TLS_AES_256_GCM_SHA384:       {keyLen: 32, hash: sha512.New384, aead: aesGCM},
	tls.TLS_CHACHA20_POLY1305_SHA256: {keyLen: chacha20poly1305.KeySize, hash: sha256.New, aead: chacha20poly1305.New},
}

func aesGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// expandLabel is HKDF-Expand-Label (RFC 8446 section 7.1), with an empty
// context.
func (s *suite13) expandLabel(secret []byte, label string, n int) []byte {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	out, err := hkdf.Expand(s.hash, secret, string(info), n)
	if err != nil {
		panic("transport: HKDF-Expand-Label: " + err.Error()) // only for lengths out of range
	}
	return out
}

// trafficKeys are one direction's keys, from its traffic secret.
type trafficKeys struct {
	aead   cipher.AEAD
	iv     [12]byte
	seq    uint64
	secret []byte // for the next key update
}

func (s *suite13) keys(secret []byte) (trafficKeys, error) {
	aead, err := s.aead(s.expandLabel(secret, "key", s.keyLen))
	if err != nil {
		return trafficKeys{}, err
	}
	t := trafficKeys{aead: aead, secret: secret}
	copy(t.iv[:], s.expandLabel(secret, "iv", len(t.iv)))
	return t, nil
}

// next is the direction's keys after a key update (section 7.2).
func (s *suite13) next(t *trafficKeys) error {
	n, err := s.keys(s.expandLabel(t.secret, "traffic upd", s.hash().Size()))
	if err == nil {
		*t = n
	}
	return err
}

// nonce is the per-record nonce (section 5.3), and counts the record.
func (t *trafficKeys) nonce() [12]byte {
	n := t.iv
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], t.seq)
	for i, b := range seq {
		n[4+i] ^= b
	}
	t.seq++
	return n
}

// records protects one TLS 1.3 connection's records after its
// handshake. The read side (open) and the write side (seal) are apart,
// except that a key update read is answered by the write side: open
// notes it, and whoever writes next sends it first (owed). Not safe for
// concurrent use of one side; on a loop, both are the loop's.
type records struct {
	suite      *suite13
	in, out    trafficKeys
	owesUpdate bool // the peer asked for our key update, not sent yet
	useless    int  // records in a row without application data
}

// newRecords takes over a server connection whose handshake gave these
// secrets.
func newRecords(suiteID uint16, clientSecret, serverSecret []byte) (*records, error) {
	s, ok := suites13[suiteID]
	if !ok {
		return nil, errors.New("transport: TLS 1.3 suite not handled")
	}
	if n := s.hash().Size(); len(clientSecret) != n || len(serverSecret) != n {
		return nil, errors.New("transport: the key log gave no traffic secrets") // the tls.Conn carries on
	}
	in, err := s.keys(clientSecret)
	if err != nil {
		return nil, err
	}
	out, err := s.keys(serverSecret)
	if err != nil {
		return nil, err
	}
	return &records{suite: s, in: in, out: out}, nil
}

// open decrypts the whole records at the front of raw, appends their
// application data to plain, and says how many bytes of raw it used. A
// record not whole yet is left in raw. The error is io.EOF after the
// peer's close_notify, or an *alertError: the connection is done, with
// the alert to send (if not received) from owed.
func (r *records) open(plain, raw []byte) ([]byte, int, error) {
	used := 0
	for len(raw)-used >= recordHeader {
		h := raw[used : used+recordHeader]
		n := int(binary.BigEndian.Uint16(h[3:]))
		switch {
		case h[0] != recordData:
			return plain, used, fatal(alertUnexpectedMessage, "record that is not application data after the handshake")
		case n > maxCiphertext13:
			return plain, used, fatal(alertRecordOverflow, "record too large")
		case len(raw)-used < recordHeader+n:
			return plain, used, nil
		}
		var err error
		plain, err = r.openOne(plain, h, raw[used+recordHeader:used+recordHeader+n])
		used += recordHeader + n
		if err != nil {
			return plain, used, err
		}
	}
	return plain, used, nil
}

// openOne decrypts one record and acts on its content.
func (r *records) openOne(plain, header, sealed []byte) ([]byte, error) {
	start := len(plain)
	nonce := r.in.nonce()
	out, err := r.in.aead.Open(plain, nonce[:], sealed, header)
	if err != nil {
		return plain, fatal(alertBadRecordMAC, "record failed authentication")
	}
	body := out[start:]
	typ := byte(0)
	for len(body) > 0 { // the content type is the last byte that is not padding
		typ, body = body[len(body)-1], body[:len(body)-1]
		if typ != 0 {
			break
		}
	}
	switch {
	case typ == 0:
		return plain, fatal(alertUnexpectedMessage, "record with no content type")
	case len(body) > maxPlaintext:
		return plain, fatal(alertRecordOverflow, "record plaintext too large")
	}
	r.useless++
	switch typ {
	case recordData:
		if len(body) > 0 {
			r.useless = 0
		}
		plain = out[:start+len(body)] // body is where Open wrote, in place
	case recordAlert:
		plain = out[:start]
		if len(body) != 2 {
			return plain, fatal(alertDecodeError, "malformed alert")
		}
		if body[1] == alertCloseNotify {
			return plain, io.EOF
		}
		return plain, &alertError{desc: body[1], received: true}
	case recordHandshake:
		plain = out[:start]
		if err := r.handshakeMessage(body); err != nil {
			return plain, err
		}
	default:
		plain = out[:start]
		return plain, fatal(alertUnexpectedMessage, "record of an unknown content type")
	}
	if r.useless > maxUselessRecords {
		return plain, fatal(alertUnexpectedMessage, "too many records without application data")
	}
	return plain, nil
}

// handshakeMessage handles a record of handshake messages: after the
// handshake, only a whole KeyUpdate, last in its record.
func (r *records) handshakeMessage(b []byte) error {
	if len(b) < 4 || b[0] != handshakeKeyUpdate {
		return fatal(alertUnexpectedMessage, "handshake message after the handshake")
	}
	if n := int(b[1])<<16 | int(b[2])<<8 | int(b[3]); n != 1 || len(b) != 5 {
		if len(b) < 4+n {
			return fatal(alertUnexpectedMessage, "handshake message split over records")
		}
		return fatal(alertDecodeError, "malformed key update")
	}
	switch b[4] {
	case 0: // update_not_requested
	case 1: // update_requested
		r.owesUpdate = true
	default:
		return fatal(alertIllegalParameter, "key update with an unknown request")
	}
	if err := r.suite.next(&r.in); err != nil {
		return fatal(alertDecodeError, err.Error())
	}
	return nil
}

// seal appends p to out as application data records, sending first a key
// update the peer asked for.
func (r *records) seal(out, p []byte) []byte {
	out = r.owed(out)
	for len(p) > 0 {
		n := min(len(p), maxPlaintext)
		out = r.sealOne(out, recordData, p[:n])
		p = p[n:]
	}
	return out
}

// owed appends what reading left to send: the key update the peer asked
// for.
func (r *records) owed(out []byte) []byte {
	if !r.owesUpdate {
		return out
	}
	r.owesUpdate = false
	out = r.sealOne(out, recordHandshake, []byte{handshakeKeyUpdate, 0, 0, 1, 0})
	if err := r.suite.next(&r.out); err != nil {
		panic("transport: TLS key update: " + err.Error()) // the suite's key length is valid
	}
	return out
}

// alert appends a record with an alert: close_notify is a warning, the
// rest are fatal.
func (r *records) alert(out []byte, desc uint8) []byte {
	level := byte(2)
	if desc == alertCloseNotify {
		level = 1
	}
	return r.sealOne(r.owed(out), recordAlert, []byte{level, desc})
}

// sealOne appends one record of content type typ.
func (r *records) sealOne(out []byte, typ byte, p []byte) []byte {
	tag := r.out.aead.Overhead()
	out = slices.Grow(out, recordHeader+len(p)+1+tag) // Seal in place needs room for the tag
	start := len(out)
	out = append(out, recordData, 3, 3, 0, 0)
	binary.BigEndian.PutUint16(out[start+3:], uint16(len(p)+1+tag))
	out = append(out, p...)
	out = append(out, typ)
	nonce := r.out.nonce()
	body := out[start+recordHeader:]
	sealed := r.out.aead.Seal(body[:0], nonce[:], body, out[start:start+recordHeader])
	return out[:start+recordHeader+len(sealed)]
}
