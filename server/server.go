// Package server is the Parley chat server: it owns the configuration,
// the listeners, the lifecycle and the admin port, and wires the hub
// (parley/server/hub, the protocol) to the transport layer
// (parley/server/transport: plain TCP, TLS and WebSocket on gnet's event
// loops). It implements docs/PROTOCOL.md;
// docs/ARCHITECTURE.md has the whole picture.
//
// A Server is created with New and run with Serve. All exported methods of
// Server are safe to call from any goroutine. With Config.NATS set, the
// hub's broker is natsbroker's, and the server is one node of a cluster that
// shares rooms, direct messages, presence and nicks through NATS
// (docs/CLUSTER.md); otherwise it is broker.Local's, a single node.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"parley/server/auth"
	"parley/server/broker"
	"parley/server/hub"
	"parley/server/natsbroker"
	"parley/server/store"
	"parley/server/transport"
	"parley/server/web"
)

// ShutdownGrace is how long Serve gives its sessions to receive bye shutdown
// after its context is cancelled.
const ShutdownGrace = 4 * time.Second

// ErrServeTwice is returned by Serve when it is called a second time.
var ErrServeTwice = errors.New("server: Serve called more than once")

// Server is a Parley chat server.
type Server struct {
	cfg   Config
	hub   *hub.Hub
	store *store.Store  // the history's file with DataDir; nil without
	ready chan struct{} // closed once the listener is bound and the loops run
	done  chan struct{} // closed when Serve returns

	layer   *transport.Layer
	jwt     *auth.JWT              // the verifier of AuthKeys and AuthSecrets; nil with Config.Verifier
	certs   *transport.CertStore   // TLSCert and TLSKey; nil without them
	proxy   *transport.ProxyPolicy // nil without ProxyProtocol
	leaving atomic.Bool            // Shutdown began: /readyz says 503
	app     appParts               // the server API, the hook and the webhooks (app.go)
	nats    *natsbroker.Broker     // the hub's broker in a cluster, which keeps the webhooks' queues; nil on a single node
	started time.Time

	mu        sync.Mutex
	ln        net.Listener
	tlsLn     net.Listener
	wsLn      net.Listener
	adminLn   net.Listener
	apiAddr   net.Addr
	addr      net.Addr
	tlsAddr   net.Addr
	wsAddr    net.Addr
	adminAddr net.Addr
	serving   bool
}

// New returns a server for cfg. Fields left zero take their defaults.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var b broker.Broker = broker.NewLocal()
	hc := cfg.hubConfig()
	if cfg.NATS != "" {
		nb := natsbroker.New(natsbroker.Config{
			URL: cfg.NATS, NodeID: cfg.NodeID, ClusterName: cfg.ClusterName,
			Heartbeat: cfg.NodeHeartbeat, Logger: cfg.Logger, QueueLen: cfg.busQueueLen, PingInterval: cfg.busPingInterval, LogLen: cmp.Or(cfg.busLogLen, max(cfg.HistoryLen, 1)), LogBytes: cfg.HistoryBytes,
			AuditLen: cfg.AuditLen,
		})
		b, hc.Rules = nb, nb // the cluster keeps the rules and the audit log
		hc.Accounts, hc.Offline = nb, nb
	}
	srv := &Server{cfg: cfg, ready: make(chan struct{}), done: make(chan struct{}), started: time.Now()}
	srv.nats, _ = b.(*natsbroker.Broker)
	if err := srv.setupSecurity(&hc); err != nil {
		return nil, err
	}
	var st *store.Store
	if cfg.DataDir != "" {
		var err error
		if st, err = openStore(cfg); err != nil {
			return nil, err
		}
		hc.Store, hc.Rules = st, st
		hc.Accounts, hc.Offline = st, st
	}
	if err := srv.setupApp(&hc, st); err != nil {
		srv.closeApp(st)
		return nil, err
	}
	srv.hub, srv.store = hub.New(hc, b), st
	if err := srv.setupAPI(); err != nil {
		srv.closeApp(st)
		return nil, err
	}
	srv.layer = transport.New(transport.Config{
		Hub: srv.hub, Loops: cfg.Loops, TickInterval: hc.TickInterval(), Handshake: cfg.LoginTimeout,
		SendBuffer: cfg.SocketSendBuffer, ConnRatePerIP: cfg.ConnRatePerIP, MaxHTTPConns: cfg.MaxHTTPConns,
		Certs: srv.certs, Proxy: srv.proxy, Page: cfg.page(), Origins: cfg.WSOrigins, Logger: cfg.Logger,
	})
	return srv, nil
}

// setupSecurity makes the token verifier, the TLS certificate and the
// PROXY policy, and words the auth mode for the hub.
func (s *Server) setupSecurity(hc *hub.Config) error {
	mode, err := hub.ParseAuthMode(s.cfg.Auth)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	hc.Auth, hc.Verifier = mode, s.cfg.Verifier
	if hc.Verifier == nil {
		ac, err := s.cfg.authConfig()
		if err != nil {
			return err
		}
		if s.jwt, err = auth.New(ac); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		hc.Verifier = s.jwt
	}
	switch {
	case mode != hub.AuthOff && s.cfg.Verifier == nil && s.jwt.Keys() == 0:
		return fmt.Errorf("server: --auth %s needs --auth-key or --auth-secret", mode)
	case mode == hub.AuthOff:
		s.cfg.Logger.Warn("auth is off: anyone can take any free nick; configure --auth-key to log users in with tokens")
	}
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		if s.certs, err = transport.NewCertStore(s.cfg.TLSCert, s.cfg.TLSKey); err != nil {
			return err
		}
	}
	if s.cfg.ProxyProtocol {
		trusted, err := transport.ParsePrefixes(s.cfg.ProxyTrusted)
		if err != nil {
			return err
		}
		s.proxy = transport.NewProxyPolicy(trusted, min(s.cfg.LoginTimeout, 5*time.Second), func(kind, msg string, attrs ...any) {
			s.hub.WarnLimited(kind, msg, attrs...)
		})
	}
	return nil
}

// Reload reads the TLS certificate, the auth keys and the server API's
// keys again (the command calls it on SIGHUP): new connections get the
// new certificate, new logins and refreshes the new keys, API requests
// the new API keys. On an error nothing changes. Safe
// from any goroutine.
func (s *Server) Reload() error {
	var errs []error
	if s.certs != nil {
		if err := s.certs.Load(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.app.api != nil {
		keys, err := s.cfg.apiKeys()
		if err != nil {
			errs = append(errs, err)
		} else {
			s.app.api.SetKeys(keys)
		}
	}
	if s.jwt != nil {
		ac, err := s.cfg.authConfig()
		if err == nil {
			err = s.jwt.Reload(ac)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// openStore opens the history file in cfg.DataDir, creating the directory.
func openStore(cfg Config) (*store.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(cfg.DataDir, "history.db"), Keep: max(cfg.HistoryLen, 1), Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	return st, nil
}

// restore gives the hub the rooms its store kept.
func (s *Server) restore() error {
	rooms, err := s.store.Load()
	if err != nil {
		return fmt.Errorf("server: read the data dir: %w", err)
	}
	for _, r := range rooms {
		msgs := make([]hub.StoredMsg, len(r.Msgs))
		for i, m := range r.Msgs {
			msgs[i] = hub.StoredMsg{Seq: m.Seq, At: m.At, Frame: m.Frame}
		}
		s.hub.Restore(r.Name, r.Epoch, msgs, s.store.Unclean)
	}
	rules, err := s.store.LoadRules()
	if err != nil {
		return fmt.Errorf("server: read the data dir's rules: %w", err)
	}
	for room, data := range rules {
		if err := s.hub.RestoreRules(room, data); err != nil {
			return fmt.Errorf("server: read the data dir: %w", err)
		}
	}
	records, err := s.store.LoadAccounts()
	if err != nil {
		return fmt.Errorf("server: read the data dir's accounts: %w", err)
	}
	for _, data := range records {
		s.hub.RestoreAccount(data)
	}
	audit, err := s.store.LoadAudit()
	if err != nil {
		return fmt.Errorf("server: read the data dir's audit log: %w", err)
	}
	s.hub.RestoreAudit(audit)
	if s.store.Unclean {
		s.cfg.Logger.Warn("the data dir was not closed cleanly: every room starts a new epoch, and resumes from before say recovered false", "rooms", len(rooms))
	}
	return nil
}

func (c Config) validate() error {
	switch {
	case c.Heartbeat < 0, c.IdleTimeout < 0, c.LoginTimeout < 0, c.PresenceInterval < 0, c.WriteDeadline < 0, c.FrameTimeout < 0:
		return errors.New("server: durations must not be negative")
	case c.MaxFrame < 0, c.MaxBody < 0, c.MaxOutbound < 0, c.RoomsPerSession < 0, c.Loops < 0, c.MaxLoginFrame < 0,
		c.RateBurst < 0, c.MaxConnsPerIP < 0, c.FloodGrace < 0, c.DMBurst < 0, c.JoinBurst < 0:
		return errors.New("server: limits must not be negative")
	case c.NodeHeartbeat < 0:
		return errors.New("server: node heartbeat must not be negative")
	case !natsbroker.ValidName(c.NodeID), !natsbroker.ValidName(c.ClusterName):
		return errors.New("server: node id and cluster name are letters, digits, '_' and '-'")
	case c.MaxBody > c.MaxFrame-256:
		return fmt.Errorf("server: max body %d does not fit in max frame %d with room for the other fields", c.MaxBody, c.MaxFrame)
	case c.DataDir != "" && c.NATS != "":
		return errors.New("server: --data-dir is for a single node; a cluster keeps its history in its log on NATS")
	case c.TLSAddr != "" && (c.TLSCert == "" || c.TLSKey == ""):
		return errors.New("server: --tls-addr needs --tls-cert and --tls-key")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("server: --tls-cert and --tls-key go together")
	case c.TLSCert != "" && c.TLSAddr == "" && c.WSAddr == "":
		return errors.New("server: --tls-cert and --tls-key serve --tls-addr (TLS for the protocol) or --ws-addr (HTTPS for the web chat): give one of them")
	case c.ProxyProtocol && len(c.ProxyTrusted) == 0:
		return errors.New("server: --proxy-protocol needs --proxy-trusted: the networks of the load balancers")
	case c.MaxSessionsPerUser < 0, c.TokenGrace < 0:
		return errors.New("server: sessions per user and token grace must not be negative")
	case c.MaxLoginFrame > c.MaxFrame:
		return fmt.Errorf("server: max login frame %d is over max frame %d", c.MaxLoginFrame, c.MaxFrame)
	}
	if err := c.validateApp(); err != nil {
		return err
	}
	for _, o := range c.WSOrigins {
		if _, ok := transport.ParseOrigin(o); !ok && o != "*" {
			return fmt.Errorf("server: --ws-origins %q is not an origin (http or https://host[:port])", o)
		}
	}
	return nil
}

// Serve listens and serves until ctx is cancelled or Shutdown is called.
// On cancellation it shuts down gracefully, giving sessions ShutdownGrace to
// receive bye shutdown. It returns nil after a clean stop, the error that
// kept the server from listening, or an error when the event loops or the
// listener failed on their own.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return ErrServeTwice
	}
	s.serving = true
	s.mu.Unlock()
	defer close(s.done)

	// The protocol's listener binds last: once it takes connections,
	// every other port of the server is bound too.
	var others []net.Listener
	defer func() {
		for _, l := range others {
			if l != nil {
				l.Close()
			}
		}
	}()
	tlsLn, err := listenIf(s.cfg.TLSAddr)
	if err != nil {
		return err
	}
	others = append(others, tlsLn)
	wsLn, err := listenIf(s.cfg.WSAddr)
	if err != nil {
		return err
	}
	others = append(others, wsLn)
	adminLn, err := listenIf(s.cfg.AdminAddr)
	if err != nil {
		return err
	}
	others = append(others, adminLn)
	apiLn, err := listenIf(s.cfg.APIAddr)
	if err != nil {
		return err
	}
	others = append(others, apiLn)
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	s.mu.Lock()
	s.ln, s.addr, s.tlsLn, s.wsLn, s.adminLn = ln, ln.Addr(), tlsLn, wsLn, adminLn
	s.tlsAddr, s.wsAddr, s.adminAddr, s.apiAddr = addrOf(tlsLn), addrOf(wsLn), addrOf(adminLn), addrOf(apiLn)
	s.mu.Unlock()
	if adminLn != nil {
		// Up until Serve returns: /readyz answers 503 through the drain.
		admin := newAdminServer(s)
		go func() {
			if err := admin.serve(adminLn); err != nil {
				s.cfg.Logger.Error("admin endpoint failed", "err", err.Error())
			}
		}()
		defer admin.http.Close()
	}
	stop := make(chan struct{})
	defer close(stop)
	go s.shutdownOn(ctx, stop)
	if s.store != nil {
		defer s.store.Close() // after the hub: what the sessions said is queued
		if err := s.restore(); err != nil {
			return err
		}
	}

	if err := s.hub.Start(); err != nil {
		return err
	}
	// After the engine stops: the sessions' leaves and releases are out.
	defer s.hub.Stop()
	if s.app.sink != nil {
		if err := s.app.sink.Start(); err != nil {
			return err
		}
		// After the engine, before the broker and the store: the events
		// the sessions' ends emitted are queued.
		defer s.app.sink.Close()
	}
	if apiLn != nil {
		var tlsConf *tls.Config
		if s.certs != nil {
			tlsConf = s.certs.HTTPSConfig()
		}
		// From the hub's start until the engine stops.
		defer s.app.api.Serve(apiLn, tlsConf).Close()
	}
	return s.layer.Run(ln, tlsLn, wsLn, func() { close(s.ready) })
}

// shutdownOn shuts the server down gracefully when ctx ends.
func (s *Server) shutdownOn(ctx context.Context, stop <-chan struct{}) {
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		_ = s.Shutdown(sctx)
	case <-stop:
	}
}

// listenIf listens on addr, unless it is empty.
func listenIf(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return net.Listen("tcp", addr)
}

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// Ready is closed once the server listens; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// TLSAddr returns the TLS listener's address, or nil without one or
// before Ready.
func (s *Server) TLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsAddr
}

// WSAddr returns the WebSocket listener's address, or nil without one or
// before Ready.
func (s *Server) WSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wsAddr
}

// AdminAddr returns the admin endpoint's address, or nil without one or
// before Ready.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}

// APIAddr returns the server API's address, or nil without one or
// before Ready.
func (s *Server) APIAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiAddr
}

// Done is closed when Serve has returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// Addr returns the address the server listens on (with the real port when
// Config.Addr asked for port 0), or nil before Ready.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown sends every session bye shutdown, and every new connection
// meanwhile, waits until the sessions are closed or ctx ends, then stops
// listening and the event loops and waits for Serve to return. Sessions
// still open when ctx ends are closed without waiting further.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	ln, tlsLn, wsLn := s.ln, s.tlsLn, s.wsLn
	s.mu.Unlock()
	// /readyz turns 503 first; after DrainDelay the sessions get bye.
	s.leaving.Store(true)
	if s.cfg.DrainDelay > 0 {
		select {
		case <-time.After(s.cfg.DrainDelay):
		case <-ctx.Done():
		}
	}
	// The web port's HTTP connections count as connections: those idle
	// between page requests close now, the others once answered (its
	// WebSockets are the hub's sessions, which drain below).
	s.layer.ShutdownWeb(ctx)
	// The listener stays open while the sessions drain, so that a
	// connection already waiting in its backlog gets bye shutdown from
	// the acceptor rather than a reset when the listener closes.
	select {
	case <-s.hub.Shutdown():
	case <-ctx.Done():
	}
	_ = ln.Close()
	for _, l := range []net.Listener{tlsLn, wsLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	s.layer.Stop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats is a snapshot of the server's tables and counters.
type Stats = hub.Stats

// ClusterStats is a node's view of its cluster.
type ClusterStats = broker.Stats

// Stats returns a snapshot of the server's tables.
func (s *Server) Stats() Stats { return s.hub.Stats() }

// page is what the web port serves besides /ws: the chat page, and /info
// for its login form.
func (c Config) page() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/info", web.Info(web.ServerInfo{Auth: c.Auth, MaxBody: c.MaxBody, NickHold: c.NickHold.Milliseconds()}))
	mux.Handle("/", web.Handler())
	return mux
}
