// Package bench measures broadcast latency and deliveries per second with
// thousands of connections, against Parley, a NATS server and a protocol-
// free floor server on the same machine, with the same load generator and
// the same measuring code.
package bench

import (
	"fmt"
	"io"
	"slices"
	"time"

	"parley/codec"
)

// Target names a system under test.
type Target string

// Targets.
const (
	TargetParley Target = "parley"
	TargetNATS   Target = "nats"
	TargetFloor  Target = "floor"
	// TargetParleyTLS is Parley with its receivers and senders on the
	// TLS listener.
	TargetParleyTLS Target = "parley-tls"
	// TargetParleyWS is Parley with its receivers and senders on
	// WebSocket.
	TargetParleyWS Target = "parley-ws"
	// TargetParleyOneLoop is Parley on plain TCP with one event loop
	// (--loops 1), whatever --server-loops says: what the default number
	// of loops is measured against.
	TargetParleyOneLoop Target = "parley-1loop"
)

// receiving is the target whose receivers t's are: one loop's Parley has
// Parley's.
func (t Target) receiving() Target {
	if t == TargetParleyOneLoop {
		return TargetParley
	}
	return t
}

var knownTargets = []Target{TargetParley, TargetParleyOneLoop, TargetParleyTLS, TargetParleyWS, TargetCentrifugo, TargetRedis, TargetNATS, TargetFloor}

// AllTargets is the order `--target all` runs them in.
var AllTargets = []Target{TargetParley, TargetRedis, TargetNATS, TargetFloor}

// Config describes a benchmark. Zero values mean the documented defaults.
type Config struct {
	Targets []Target // default parley
	// Addr is a running Parley server (host:port) to use instead of
	// starting one; several comma-separated nodes spread the connections.
	Addr string
	// StreamAddr, with Addr, is the running Parley server's WebSocket
	// address (parley-ws) or TLS address (parley-tls, with StreamCertPEM
	// the certificate to trust) for the receivers.
	StreamAddr    string
	StreamCertPEM string
	// NATSURL and FloorAddr are running servers to use instead of starting
	// them.
	NATSURL   string
	FloorAddr string
	// RedisAddr is a running Redis (host:port) to use instead of starting one.
	RedisAddr string

	Conns    []int         // receiving connections, each a sweep point; default 10000
	Senders  int           // sending connections; default 1
	Rates    []float64     // messages per second, all senders together; 0 is saturation; default 0
	Size     int           // message body bytes; default 100
	Duration time.Duration // measured time per run; default 10s
	Warmup   time.Duration // unmeasured time before it; default 2s
	Inflight int           // saturation: messages sent but not yet received by everyone; default 64
	Drain    time.Duration // how long to wait for late deliveries after a run; default 10s
	Procs    int           // load generator processes holding receivers; default 1 (in this process)
	Loops    int           // event loops per load generator process; default 2
	Room     string        // room (NATS: subject); default lobby
	// Rounds measures every target this many times, the targets taking
	// turns in the order of Targets and then the reverse (A B, B A, A B,
	// ...), so that no target always runs first. The ratios are then the
	// median of each round's own. Default 1.
	Rounds int
	// Lean receivers for Parley over TCP: a goroutine and a small buffer
	// each, the same kind as Redis's, for a like-for-like comparison.
	Lean bool

	// ServerLoops is --loops for the Parley server it starts; 0 keeps
	// the server's default.
	ServerLoops int
	// Exe is the parley binary for child processes; default this program.
	Exe string
	// OutDir receives the JSON results and plots; default bench-results.
	OutDir string
	// Log receives progress lines; default discard.
	Log io.Writer
	// PeerLog receives what the servers it starts print themselves (their
	// start-up lines and warnings), so that they stay out of the table;
	// default discard.
	PeerLog io.Writer
}

func (c Config) withDefaults() Config {
	if c.PeerLog == nil {
		c.PeerLog = io.Discard
	}
	if len(c.Targets) == 0 {
		c.Targets = []Target{TargetParley}
	}
	if len(c.Conns) == 0 {
		c.Conns = []int{10000}
	}
	if len(c.Rates) == 0 {
		c.Rates = []float64{0}
	}
	defaults := []struct {
		v   *int
		def int
	}{{&c.Senders, 1}, {&c.Size, 100}, {&c.Inflight, 64}, {&c.Procs, 1}, {&c.Loops, 2}, {&c.Rounds, 1}}
	for _, d := range defaults {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	if c.Room == "" {
		c.Room = codec.Lobby
	}
	if c.OutDir == "" {
		c.OutDir = "bench-results"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

func (c Config) validate() error {
	if c.Size < MinBody {
		return fmt.Errorf("bench: --size must be at least %d bytes to carry a timestamp and a sequence", MinBody)
	}
	if c.Size > codec.DefaultMaxBody {
		return fmt.Errorf("bench: --size must be at most %d bytes", codec.DefaultMaxBody)
	}
	for _, t := range c.Targets {
		if !slices.Contains(knownTargets, t) {
			return fmt.Errorf("bench: unknown target %q", t)
		}
	}
	for _, n := range c.Conns {
		if n < c.Procs {
			return fmt.Errorf("bench: %d connections cannot be split over %d processes", n, c.Procs)
		}
	}
	return nil
}

// GroupConfig is one load generator process's share of the receivers.
type GroupConfig struct {
	Target Target `json:"target"`
	Addr   string `json:"addr"` // host:port, or a NATS URL
	Room   string `json:"room"`
	Conns  int    `json:"conns"`
	// Opening and Worker make the receivers' nicks unique: the point of
	// the run and this process's index. A running server given with
	// --addr holds a closed session's nick for its resumption, so the
	// next point there needs nicks of its own.
	Opening int `json:"opening"`
	Worker  int `json:"worker"`
	Loops   int `json:"loops"`
	// CertPEM is the TLS server's certificate, for TargetParleyTLS.
	CertPEM string `json:"cert_pem,omitempty"`
	// Lean puts Parley's plain TCP receivers on a goroutine and a small
	// buffer each, as Redis's and the stream targets' are, instead of
	// gnet's client.
	Lean bool `json:"lean,omitempty"`
}

// receiverNick is the nick of receiver i of a group.
func (gc GroupConfig) receiverNick(i int) string {
	return fmt.Sprintf("r%d-%d-%d", gc.Opening, gc.Worker, i)
}
