// Package transport is the way into the hub: the acceptors, admission
// (the one table of per-address rates, and the hub's Reserve), the PROXY
// protocol, gnet's event loops for every connection (plain TCP, TLS and
// WebSocket, wire.go), the TLS handshake, and the web port's HTTP server
// with the WebSocket upgrade. It knows the hub (parley/server/hub) and nothing of
// the server that configures it: the server owns the listeners and the
// lifecycle, and gives a Layer what it needs in a Config.
//
// Every connection reaches the hub as a hub.Conn on a hub.Loop, whichever
// way it came: the hub does not know the transport of a session.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"parley/server/hub"
)

// Config is what the transports need. Zero values work but Hub.
type Config struct {
	Hub *hub.Hub
	// Loops is the number of gnet event loops, which serve every
	// transport.
	Loops int
	// TickInterval is how often the hub's Tick runs (hub.Config.TickInterval).
	TickInterval time.Duration
	// Handshake bounds a TLS handshake and a WebSocket upgrade's headers:
	// the login timeout.
	Handshake time.Duration
	// SendBuffer is SO_SNDBUF for each accepted connection; 0: the kernel's.
	SendBuffer int
	// ConnRatePerIP is new connections per second and address, over every
	// listener; 0: no limit.
	ConnRatePerIP float64
	// MaxHTTPConns bounds the web port's connections that are not
	// WebSockets yet; 0: no bound of their own.
	MaxHTTPConns int
	// Certs is the TLS certificate of the TLS listener and of HTTPS on
	// the web port; nil: neither speaks TLS.
	Certs *CertStore
	// Proxy reads PROXY protocol headers on the plain listener from the
	// networks it trusts; nil: none.
	Proxy *ProxyPolicy
	// Page serves the web port's requests other than /ws (the chat page).
	Page http.Handler
	// Origins are the browser origins a WebSocket may come from besides
	// the page's own (ParseOrigin's form, or "*").
	Origins []string
	Logger  *slog.Logger
}

// Layer runs the transports of one server. Create it with New, run it
// with Run; Stop and ShutdownWeb are safe from any goroutine.
type Layer struct {
	cfg    Config
	adm    *admission
	counts Counts
	booted chan struct{} // closed by the engine's first tick: the loops run

	arriving connSet    // connections on a goroutine before a loop: TLS handshakes, the web port's door
	regMu    sync.Mutex // Engine.Register, one at a time (register)

	// Engine.Stop polls every 500ms until the engine is down, so it runs
	// on a goroutine of its own; Run cancels runCtx when it returns and
	// waits for those goroutines (stops), so none outlives it.
	runCtx    context.Context
	cancelRun context.CancelFunc
	stops     sync.WaitGroup

	mu       sync.Mutex
	ran      bool // Run returned: there is no engine left to stop
	eng      gnet.Engine
	web      *webServer
	stopping bool // Stop was called: the engine stopping is expected
}

// New returns the transport layer for cfg.
func New(cfg Config) *Layer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Layer{cfg: cfg, adm: newAdmission(cfg.Hub, cfg.ConnRatePerIP, cfg.MaxHTTPConns), booted: make(chan struct{})}
	l.runCtx, l.cancelRun = context.WithCancel(context.Background())
	return l
}

// stopEngine stops the event loops from a goroutine of its own, unless
// Run has returned.
func (l *Layer) stopEngine() {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		return
	}
	eng := l.eng
	l.stops.Add(1) // under mu: before Run's Wait, or not at all
	l.mu.Unlock()
	go func() {
		defer l.stops.Done()
		_ = eng.Stop(l.runCtx)
	}()
}

// Counts are the layer's connection counts by transport.
func (l *Layer) Counts() *Counts { return &l.counts }

// Run serves plain TCP on gnet's loops and, when given (non-nil), the TLS
// and web listeners on the stream loops, until Stop; it calls ready once
// every listener accepts. It returns nil after Stop, or the error that
// made the loops or a listener fail on their own. The caller closes the
// listeners (the plain one last: a connection in its backlog during a
// shutdown still gets its bye).
func (l *Layer) Run(plain, tlsLn, webLn net.Listener, ready func()) error {
	defer func() {
		l.mu.Lock()
		l.ran = true
		l.mu.Unlock()
		l.cancelRun()
		l.stops.Wait()
	}()
	engineAddr, cleanup, err := engineSocket()
	if err != nil {
		return err
	}
	defer cleanup()
	engErr := make(chan error, 1)
	go func() { engErr <- gnet.Run(&gnetHandler{layer: l}, engineAddr, l.gnetOptions()...) }()
	select {
	case <-l.booted:
	case err := <-engErr:
		return fmt.Errorf("transport: start event loops: %w", err)
	}
	cleanup() // nothing is ever to connect to the engine's own socket
	acc := &acceptor{h: l.cfg.Hub, ln: plain, adm: l.adm, sendBuffer: l.cfg.SendBuffer,
		hand: l.registerPlain, plain: true, proxy: l.cfg.Proxy}
	accErr := make(chan error, 1)
	go func() { accErr <- acc.run() }()
	if stop := l.runListeners(tlsLn, webLn); stop != nil {
		defer stop()
	}
	ready()
	select {
	case err = <-accErr:
		if err != nil {
			err = fmt.Errorf("transport: accept: %w", err)
			l.cfg.Logger.Error("listener failed; stopping", "err", err.Error())
			l.stopEngine()
		}
		engStopped := <-engErr
		if err == nil && !l.isStopping() {
			err = fmt.Errorf("transport: event loops stopped on their own: %v", engStopped)
		}
	case engStopped := <-engErr:
		_ = plain.Close()
		<-accErr
		if !l.isStopping() {
			err = fmt.Errorf("transport: event loops stopped on their own: %v", engStopped)
		}
	}
	return err
}

// Stop stops the event loops; Run then returns nil. The listeners are the
// caller's to close.
func (l *Layer) Stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.stopEngine()
}

// FailLoops stops the event loops as a failure of theirs would, without
// Stop: Run then returns an error. A seam for testing what a server does
// when its loops die.
func (l *Layer) FailLoops() { l.stopEngine() }

// ShutdownWeb closes the web port's HTTP connections: those idle between
// page requests now, the others once answered (its WebSockets are the
// hub's sessions, which drain through the hub).
func (l *Layer) ShutdownWeb(ctx context.Context) {
	l.mu.Lock()
	web := l.web
	l.mu.Unlock()
	if web != nil {
		go func() { _ = web.http.Shutdown(ctx) }()
	}
}

func (l *Layer) gnetOptions() []gnet.Option {
	return []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(l.cfg.Loops),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{l.cfg.Logger}),
	}
}

// engineSocket is a Unix socket in a fresh private directory for gnet's
// engine, which needs a listener of its own; connections come from the
// acceptor instead. The socket's name is removed once the engine is up,
// so nothing can connect to it.
func engineSocket() (string, func(), error) {
	dir, err := os.MkdirTemp("", "parley-")
	if err != nil {
		return "", nil, fmt.Errorf("transport: engine socket: %w", err)
	}
	var once sync.Once
	return "unix://" + filepath.Join(dir, "engine.sock"), func() { once.Do(func() { _ = os.RemoveAll(dir) }) }, nil
}

// setEngine records the engine; OnBoot calls it.
func (l *Layer) setEngine(eng gnet.Engine) {
	l.mu.Lock()
	l.eng = eng
	l.mu.Unlock()
}

func (l *Layer) engine() gnet.Engine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.eng
}

func (l *Layer) isStopping() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopping
}

// runListeners serves the TLS and web listeners that are given, and
// returns what stops them once the engine has stopped.
func (l *Layer) runListeners(tlsLn, webLn net.Listener) func() {
	if tlsLn == nil && webLn == nil {
		return nil
	}
	var served []func() error
	if tlsLn != nil {
		acc := &acceptor{h: l.cfg.Hub, ln: tlsLn, adm: l.adm, sendBuffer: l.cfg.SendBuffer,
			hand: l.tlsHand(l.cfg.Certs.tlsConfig())}
		served = append(served, acc.run)
	}
	if webLn != nil {
		w := newWebServer(l)
		l.mu.Lock()
		l.web = w
		l.mu.Unlock()
		served = append(served, func() error { return w.serve(webLn) })
	}
	errs := make(chan error, len(served))
	for _, serve := range served {
		go func() { errs <- serve() }()
	}
	return func() {
		for _, ln := range []net.Listener{tlsLn, webLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		for range served {
			if err := <-errs; err != nil {
				l.cfg.Logger.Error("listener failed", "err", err.Error())
			}
		}
		l.arriving.closeAll()
	}
}

// toLoop hands a TLS or WebSocket connection, counted by admission, to
// an event loop, or gives its count back.
func (l *Layer) toLoop(c *net.TCPConn, remote string, w *wireConn) {
	if err := l.register(c, remote, w); err != nil {
		l.cfg.Hub.Unreserve(hub.IPKey(remote))
		l.cfg.Hub.WarnLimited("register", "connection dropped: it could not be handed to an event loop", "remote", remote, "err", err.Error())
	}
}

// errLayerStopped refuses a connection that arrives as the layer stops.
var errLayerStopped = errors.New("transport: stopped")

// connSet is the connections that goroutines work on before they reach a
// loop (TLS handshakes, the web port's door), so that stopping closes
// them and waits for the goroutines. Safe from any goroutine.
type connSet struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	wg      sync.WaitGroup
}

// add counts c in, unless the set is stopped.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// remove is the goroutine's last word on c.
func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll closes the connections in the set, refuses new ones, and waits
// for their goroutines.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.stopped = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
