package server

import (
	"io"
	"log/slog"
	"runtime"
	"time"

	"parley/codec"
)

// Config configures a Server. The zero value of every field means its
// documented default, so Config{} is a working server on :8060.
type Config struct {
	// Addr is the TCP address to listen on. Default ":8060". Port 0 picks a
	// free port; Server.Addr reports it.
	Addr string
	// Loops is the number of event loops (goroutines that own connections).
	// Default runtime.GOMAXPROCS(0).
	Loops int
	// Heartbeat is how often the server pings each logged-in session.
	// Default 10s.
	Heartbeat time.Duration
	// IdleTimeout closes a session that sent no frame for this long, with
	// reason timeout. Default 30s.
	IdleTimeout time.Duration
	// LoginTimeout closes a connection that has not logged in for this long,
	// with reason login_timeout. Default 10s.
	LoginTimeout time.Duration
	// MaxConns is the most connections served at once; one more gets bye
	// server_full. Default 0: no limit beyond the operating system's.
	MaxConns int
	// MaxFrame is the largest frame body accepted, in bytes. Default 65536.
	MaxFrame int
	// MaxBody is the largest message body, in bytes. Default 4096.
	MaxBody int
	// MaxOutbound is how many bytes may wait to be sent to one client before
	// it is closed as a slow consumer. Default 4 MiB.
	MaxOutbound int
	// PresenceLimit is the room size above which joins and leaves are
	// counted into presence frames instead of sent one by one. Default 500;
	// negative means never.
	PresenceLimit int
	// PresenceInterval is the shortest time between two presence frames of
	// one room. Default 1s.
	PresenceInterval time.Duration
	// MaxRooms is the most rooms one session may be in. Default 64.
	MaxRooms int
	// RateLimit is the flood control: frames per second one connection may
	// send, on average. Frames over it are dropped and answered with error
	// rate_limited (at most once a second). Default 50; negative turns
	// flood control off.
	RateLimit float64
	// RateBurst is how many frames a connection may send at once above
	// RateLimit. Default 100.
	RateBurst int
	// FloodGrace closes a connection with bye flood once it has kept
	// exceeding RateLimit this long (a flood ends after a second without a
	// dropped frame). Default 5s.
	FloodGrace time.Duration
	// MaxConnsPerIP is the most connections from one IP address; one more
	// gets bye server_full. Default 0: no limit.
	MaxConnsPerIP int
	// SocketSendBuffer fixes the kernel send buffer of each connection, in
	// bytes, turning off its autotuning. With MaxOutbound it bounds what a
	// client that never reads can cost. Default 0: the kernel's default.
	SocketSendBuffer int
	// Logger receives one line per connection opened, login and close.
	// Default: discard.
	Logger *slog.Logger

	// NATS is the URL of the NATS server (with JetStream) that joins this
	// node to a cluster; docs/CLUSTER.md has the design. Default "": a
	// single node that needs nothing else.
	NATS string
	// NodeID names this node in its cluster. It must be unique among the
	// running nodes and is letters, digits, '_' and '-'. Default: a random id.
	NodeID string
	// ClusterName prefixes the cluster's NATS subjects, key-value buckets
	// and stream, so several clusters can share one NATS server. Letters,
	// digits, '_' and '-'. Default "parley".
	ClusterName string
	// NodeHeartbeat is how often a node tells the others it is alive. A node
	// silent for 3 heartbeats is dead: its users leave every room with
	// reason disconnect and its nicks are released. Default 1s.
	NodeHeartbeat time.Duration
}

// Defaults of Config.
const (
	DefaultAddr             = ":8060"
	DefaultHeartbeat        = 10 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultLoginTimeout     = 10 * time.Second
	DefaultMaxOutbound      = 4 << 20
	DefaultPresenceLimit    = 500
	DefaultPresenceInterval = time.Second
	DefaultRateLimit        = 50
	DefaultRateBurst        = 100
	DefaultFloodGrace       = 5 * time.Second
	DefaultClusterName      = "parley"
	DefaultNodeHeartbeat    = time.Second
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setDefault(&c.Addr, DefaultAddr)
	setDefault(&c.Loops, runtime.GOMAXPROCS(0))
	setDefault(&c.Heartbeat, DefaultHeartbeat)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.LoginTimeout, DefaultLoginTimeout)
	setDefault(&c.MaxFrame, codec.DefaultMaxFrame)
	setDefault(&c.MaxBody, codec.DefaultMaxBody)
	setDefault(&c.MaxOutbound, DefaultMaxOutbound)
	setDefault(&c.PresenceLimit, DefaultPresenceLimit)
	setDefault(&c.PresenceInterval, DefaultPresenceInterval)
	setDefault(&c.MaxRooms, codec.DefaultMaxRooms)
	setDefault(&c.RateLimit, DefaultRateLimit)
	setDefault(&c.RateBurst, DefaultRateBurst)
	setDefault(&c.FloodGrace, DefaultFloodGrace)
	setDefault(&c.ClusterName, DefaultClusterName)
	setDefault(&c.NodeHeartbeat, DefaultNodeHeartbeat)
	setDefault(&c.NodeID, randomNodeID())
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// tickInterval is how often the server sweeps for timeouts and flushes
// presence: often enough that a timeout fires within about a quarter of its
// length, and at least once a second.
func (c Config) tickInterval() time.Duration {
	d := time.Second
	for _, t := range []time.Duration{c.Heartbeat / 2, c.IdleTimeout / 4, c.LoginTimeout / 4, c.PresenceInterval} {
		if t > 0 && t < d {
			d = t
		}
	}
	return max(d, 5*time.Millisecond)
}
