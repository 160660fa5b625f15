// Package server is the Parley chat server: sessions, rooms, direct
// messages, heartbeat and fan-out over gnet event loops. It implements
// docs/PROTOCOL.md.
//
// A Server is created with New and run with Serve. All exported methods of
// Server are safe to call from any goroutine. With Config.NATS set, the
// server is one node of a cluster that shares rooms, direct messages,
// presence and nicks through NATS (docs/CLUSTER.md).
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"parley/codec"
)

// ShutdownGrace is how long Serve gives its sessions to receive bye shutdown
// after its context is cancelled.
const ShutdownGrace = 4 * time.Second

// ErrServerClosed is returned by Serve when it is called twice.
var ErrServerClosed = errors.New("server: Serve called more than once")

// Server is a Parley chat server.
type Server struct {
	cfg   Config
	hub   *hub
	ready chan struct{} // closed once the listener is bound
	done  chan struct{} // closed when Serve returns

	mu      sync.Mutex
	eng     gnet.Engine
	addr    net.Addr
	serving bool
}

// New returns a server for cfg. Fields left zero take their defaults.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, hub: newHub(cfg), ready: make(chan struct{}), done: make(chan struct{})}, nil
}

func (c Config) validate() error {
	switch {
	case c.Heartbeat < 0, c.IdleTimeout < 0, c.LoginTimeout < 0, c.PresenceInterval < 0:
		return errors.New("server: durations must not be negative")
	case c.MaxConns < 0, c.MaxFrame < 0, c.MaxBody < 0, c.MaxOutbound < 0, c.MaxRooms < 0, c.Loops < 0,
		c.RateBurst < 0, c.MaxConnsPerIP < 0, c.SocketSendBuffer < 0, c.FloodGrace < 0:
		return errors.New("server: limits must not be negative")
	case c.NodeHeartbeat < 0:
		return errors.New("server: node heartbeat must not be negative")
	case !validToken(c.NodeID), !validToken(c.ClusterName):
		return errors.New("server: node id and cluster name are letters, digits, '_' and '-'")
	case c.MaxBody > c.MaxFrame-256:
		return fmt.Errorf("server: max body %d does not fit in max frame %d with room for the other fields", c.MaxBody, c.MaxFrame)
	}
	return nil
}

// Serve listens and serves until ctx is cancelled or Shutdown is called.
// On cancellation it shuts down gracefully, giving sessions ShutdownGrace to
// receive bye shutdown. It returns nil after a clean stop, or the error
// that kept the server from listening.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.serving = true
	s.mu.Unlock()
	defer close(s.done)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
			defer cancel()
			_ = s.Shutdown(sctx)
		case <-stop:
		}
	}()
	if n := s.hub.cluster; n != nil {
		if err := n.start(); err != nil {
			return err
		}
		// After the engine stops: the sessions' leaves and releases are out.
		defer n.stop()
	}
	handler := &gnetHandler{srv: s, hub: s.hub}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithTicker(true),
		// A restarted server must bind its port while old connections
		// linger in TIME_WAIT.
		gnet.WithReuseAddr(true),
		gnet.WithLogger(gnetLogger{s.cfg.Logger}),
	}
	if s.cfg.SocketSendBuffer > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(s.cfg.SocketSendBuffer))
	}
	return gnet.Run(handler, "tcp://"+s.cfg.Addr, opts...)
}

// booted records the engine and the bound address; OnBoot calls it.
func (s *Server) booted(eng gnet.Engine) {
	var addr net.Addr
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			addr = sockaddrToTCP(sa)
		}
		_ = unix.Close(fd)
	}
	s.mu.Lock()
	s.eng, s.addr = eng, addr
	s.mu.Unlock()
	close(s.ready)
}

func sockaddrToTCP(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// Ready is closed once the server listens; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when Serve has returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// Addr returns the address the server listens on (with the real port when
// Config.Addr asked for port 0), or nil before Ready.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops accepting connections, sends every session bye shutdown,
// waits until they are closed or ctx ends, then stops the event loops and
// waits for Serve to return. Sessions still open when ctx ends are closed
// without waiting further.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-s.hub.shutdown():
	case <-ctx.Done():
	}
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	// Engine.Stop polls every 500ms; stopping from a goroutine and waiting
	// for Serve to return is faster.
	go func() { _ = eng.Stop(context.Background()) }()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats is a snapshot of the server's tables and counters.
type Stats struct {
	Conns    int // open connections
	Sessions int // logged-in sessions in the session table
	Nicks    int // entries in the nick index
	Rooms    int // live rooms, the lobby included
	Online   int // logged-in users
	// Closes counts the connections closed since the start, by reason
	// (disconnect for those the peer dropped).
	Closes map[codec.Reason]int64
	// Refused counts connections refused with server_full.
	Refused int64
	// Cluster is the node's view of its cluster; nil on a single node.
	Cluster *ClusterStats
}

// Stats returns a snapshot of the server's tables.
func (s *Server) Stats() Stats {
	h := s.hub
	var cluster *ClusterStats
	if h.cluster != nil {
		cluster = h.cluster.stats()
	}
	return Stats{
		Cluster:  cluster,
		Conns:    int(h.conns.Load()),
		Sessions: h.sessions.len(),
		Nicks:    h.nicks.len(),
		Rooms:    h.rooms.len(),
		Online:   int(h.online.Load()),
		Closes:   h.closes.snapshot(),
		Refused:  h.refused.Load(),
	}
}
