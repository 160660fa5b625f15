// Package servertest starts real Parley servers for tests in other
// packages, in the manner of net/http/httptest.
package servertest

import (
	"context"
	"testing"
	"time"

	"parley/internal/poll"
	"parley/server"
	"parley/server/natstest"
)

// Wait bounds starting and stopping a server.
const Wait = 10 * time.Second

// Start runs a server for cfg on 127.0.0.1 (port 0 unless cfg.Addr names
// one) with two event loops and no per-address connection rate unless cfg
// says otherwise, waits until it
// listens, and shuts it down when the test ends. Stop it earlier with
// Stop; stopping twice is harmless.
func Start(tb testing.TB, cfg server.Config) *server.Server {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	// Test clients all dial from 127.0.0.1, faster than one address may
	// by default.
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = -1
	}
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		tb.Fatalf("servertest: Serve: %v", err)
	case <-time.After(Wait):
		tb.Fatal("servertest: the server did not start")
	}
	tb.Cleanup(func() { Stop(tb, srv) })
	return srv
}

// Stop shuts srv down gracefully and waits for it.
func Stop(tb testing.TB, srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		tb.Errorf("servertest: Shutdown: %v", err)
	}
}

// FixedAddr returns a free loopback address below the kernel's ephemeral
// port range, for a server that must be restarted on the same address or
// started by another process; see natstest.FixedAddr.
func FixedAddr(tb testing.TB) string { return natstest.FixedAddr(tb) }

// Eventually checks cond every poll.Every until it returns nil, and
// fails the test with what and cond's last error if within passes first.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() error) {
	tb.Helper()
	poll.Until(tb, within, what, cond)
}
