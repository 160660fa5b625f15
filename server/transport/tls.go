package transport

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
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
// cipher suites and curves otherwise.
func (cs *CertStore) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cs.get}
}

// tlsHand starts an admitted connection (the acceptor set its send
// buffer) on the stream transport, with TLS around the protocol's frames.
func (l *Layer) tlsHand(cfg *tls.Config) func(*net.TCPConn, string) error {
	return func(c *net.TCPConn, remote string) error {
		l.startStream(tls.Server(c, cfg), remote, rawFraming{})
		return nil
	}
}
