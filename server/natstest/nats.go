// Package natstest runs a real NATS server with JetStream inside a test
// process, for the cluster tests, and finds loopback ports that survive a
// restart.
package natstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS is a real NATS server with JetStream, embedded in the test process,
// for cluster tests. It listens on a fixed loopback address and keeps its
// JetStream storage in a temporary directory, so Stop and Start restart it
// with its streams and buckets intact.
type NATS struct {
	tb   testing.TB
	addr string
	dir  string

	mu  sync.Mutex
	srv *natsserver.Server
}

// Start starts a NATS server for the test and stops it when the test
// ends.
func Start(tb testing.TB) *NATS {
	tb.Helper()
	n := &NATS{tb: tb, addr: FixedAddr(tb), dir: tb.TempDir()}
	n.Start()
	tb.Cleanup(n.Stop)
	return n
}

// URL is the address clients connect to.
func (n *NATS) URL() string { return "nats://" + n.addr }

// Start starts the server if it is stopped.
func (n *NATS) Start() {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	host, port, _ := net.SplitHostPort(n.addr)
	p, _ := strconv.Atoi(port)
	srv, err := natsserver.NewServer(&natsserver.Options{
		Host: host, Port: p, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: n.dir,
	})
	if err != nil {
		n.tb.Fatalf("natstest: nats: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		n.tb.Fatal("natstest: nats did not start")
	}
	n.srv = srv
}

// Stop stops the server, dropping every client connection.
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// FixedAddr returns a free loopback address below the kernel's ephemeral
// port range (32768 and up on Linux). Use it for a server that must be
// restarted on the same address, or started by another process: a port-0
// address freed and bound again can meanwhile be taken as the local port
// of some outgoing connection of a test running in parallel.
func FixedAddr(tb testing.TB) string {
	tb.Helper()
	for i := 0; i < 100; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	tb.Fatal("natstest: no free port below the ephemeral range")
	return ""
}
