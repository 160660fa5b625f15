package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
)

// certStore is the TLS listener's certificate, read again by Reload
// (SIGHUP): connections from then on get the new one, those open keep
// theirs. Safe from any goroutine.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func newCertStore(certFile, keyFile string) (*certStore, error) {
	cs := &certStore{certFile: certFile, keyFile: keyFile}
	return cs, cs.load()
}

// load reads the files; on error the certificate in use stays.
func (cs *certStore) load() error {
	cert, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return fmt.Errorf("server: TLS certificate: %w", err)
	}
	cs.cur.Store(&cert)
	return nil
}

func (cs *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cs.cur.Load(), nil }

// tlsConfig is the listener's: TLS 1.2 at least, the Go defaults for
// cipher suites and curves otherwise.
func (cs *certStore) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cs.get}
}

// tlsHand starts an admitted connection on the stream transport, through
// the next of its loops.
func (s *Server) tlsHand(cfg *tls.Config) func(*net.TCPConn, string) error {
	var next atomic.Uint64
	return func(c *net.TCPConn, remote string) error {
		if s.cfg.SocketSendBuffer > 0 {
			_ = c.SetWriteBuffer(s.cfg.SocketSendBuffer)
		}
		loop := s.streamLoops[next.Add(1)%uint64(len(s.streamLoops))]
		startStream(s.hub, loop, tls.Server(c, cfg), remote, &s.cfg, nil, &s.transports)
		return nil
	}
}
