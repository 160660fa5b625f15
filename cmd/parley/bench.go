package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"parley/internal/bench"
)

type benchFlags struct {
	cluster              bool
	clusterNodes         string
	clusterCfg           bench.ClusterConfig
	target, conns, rates string
	transport, scenario  string
	chat                 bench.ChatScenario
	tls                  bool
	cfg                  bench.Config
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure broadcast latency and deliveries per second",
		Long: `Measure broadcast latency and deliveries per second with thousands of
connections in one room, against Parley and, with --target all, against
Redis pub/sub, a NATS server and a protocol-free floor server on the same
machine, with the same load generator and the same measuring code. Other
targets: parley-tls and parley-ws (Parley's receivers and senders over TLS
or WebSocket; --transport tcp,tls,ws picks them), parley-1loop (Parley with
--loops 1, what the default number of loops is compared with), centrifugo
(a Centrifugo binary, v6.9.1 via go install; its receivers and senders on
its WebSocket). Every row reports the server's CPU per delivery and
deliveries per write system call over the measured window. --lean gives
Parley's TCP receivers the shape of the Redis ones (a goroutine each).

Connect phase: --conns receivers connect and join the room (NATS: subscribe
to the subject). Broadcast phase: --senders connections send --size-byte
messages at --rate messages per second in total on a fixed schedule, for
--warmup and then the measured --duration; latency counts from each
message's scheduled time, so a stalled server cannot hide its stall.
--rate 0 is saturation: at most --inflight messages sent but not yet
received by everyone.

--conns and --rate take comma-separated lists; every combination runs.
--rounds N runs all of it N times, the targets' order reversed every other
round so that none always goes first, and prints each ratio as the median
of the N rounds' ratios: the way to read a figure that moves between runs,
such as CPU per delivery at a paced rate on a shared machine.

The table goes to stdout; JSON with every figure and the configuration,
and PNG plots (of the first round), go to --out. Servers are started as
child processes on free loopback ports unless --addr (Parley), --nats-url
or --floor-addr name running ones.
A Parley server it starts runs with --rate-limit 0: its flood control (50
frames/s per connection) would otherwise throttle the senders. A server
given with --addr needs the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "parley", "parley, parley-1loop (--loops 1), parley-tls (over TLS), parley-ws (over WebSocket), centrifugo, redis, nats, floor or all (comma-separated list)")
	fl.StringVar(&f.cfg.RedisAddr, "redis-addr", "", "use this running Redis (host:port)")
	fl.StringVar(&f.scenario, "scenario", "", "chat: the traffic of a chat service instead of one room (users in Zipf-sized rooms, DMs, churn, who; parley and redis targets; --conns users, --rate messages/s)")
	fl.IntVar(&f.chat.PerUser, "chat-rooms-per-user", 3, "chat scenario: rooms each user is in")
	fl.Float64Var(&f.chat.DMShare, "chat-dm-share", 0.2, "chat scenario: the share of messages that are direct messages")
	fl.Float64Var(&f.chat.ChurnRate, "chat-churn", 20, "chat scenario: sessions a second that log in, join a room and leave a second later")
	fl.Float64Var(&f.chat.WhoRate, "chat-who", 5, "chat scenario: who calls a second")
	fl.BoolVar(&f.cluster, "cluster", false, "the cluster benchmark instead (docs/CLUSTER.md): a NATS server, --cluster-nodes nodes and --cluster-loaders load processes with --cluster-users users, each in a group room spread over the nodes, DMs, churn")
	fl.StringVar(&f.clusterNodes, "cluster-nodes", "6", "cluster benchmark: node counts, one run each (comma-separated, e.g. 1,2,3,6)")
	fl.IntVar(&f.clusterCfg.Users, "cluster-users", 100_000, "cluster benchmark: logged-in users (a run of n nodes holds at most n times --cluster-per-node)")
	fl.IntVar(&f.clusterCfg.PerNode, "cluster-per-node", 18_000, "cluster benchmark: the most users one node holds (a process holds about 19,000 sockets here)")
	fl.IntVar(&f.clusterCfg.Loaders, "cluster-loaders", 6, "cluster benchmark: load processes")
	fl.IntVar(&f.clusterCfg.Group, "cluster-group", 10, "cluster benchmark: members per group room")
	fl.Float64Var(&f.clusterCfg.Rate, "cluster-rate", 1000, "cluster benchmark: messages per second in all, says and DMs")
	fl.Float64Var(&f.clusterCfg.DMShare, "cluster-dm-share", 0.2, "cluster benchmark: the share of the messages that are DMs")
	fl.Float64Var(&f.clusterCfg.Churn, "cluster-churn", 6000, "cluster benchmark: extra sessions a minute that log in, join a group room and quit 2 s later")
	fl.DurationVar(&f.clusterCfg.Idle, "cluster-idle", 10*time.Second, "cluster benchmark: the idle window (heartbeats and presence) before the traffic")
	fl.DurationVar(&f.clusterCfg.Duration, "cluster-duration", 30*time.Second, "cluster benchmark: the traffic window")
	fl.BoolVar(&f.cfg.Lean, "lean", false, "Parley's TCP receivers on a goroutine and a small buffer each, like Redis's, instead of gnet's client")
	fl.StringVar(&f.transport, "transport", "", "Parley's receivers over tcp, tls or ws (comma-separated): the same as --target parley, parley-tls, parley-ws")
	fl.BoolVar(&f.tls, "tls", false, "also run parley-tls: the same load with the receivers on Parley's TLS listener, compared with parley in the ratios")
	fl.StringVar(&f.cfg.Addr, "addr", "", "use this running Parley server (host:port; several nodes comma-separated: each --procs worker and each sender takes the next in turn)")
	fl.StringVar(&f.cfg.NATSURL, "nats-url", "", "use this running NATS server")
	fl.StringVar(&f.cfg.FloorAddr, "floor-addr", "", "use this running floor server")
	fl.StringVar(&f.conns, "conns", "10000", "receiving connections (comma-separated list to sweep)")
	fl.StringVar(&f.rates, "rate", "0", "messages per second in total, 0 for saturation (comma-separated list to sweep)")
	fl.IntVar(&f.cfg.Senders, "senders", 1, "sending connections")
	fl.IntVar(&f.cfg.Size, "size", 100, "message body in bytes")
	fl.DurationVar(&f.cfg.Duration, "duration", 10*time.Second, "measured time per run")
	fl.DurationVar(&f.cfg.Warmup, "warmup", 2*time.Second, "unmeasured time before each run")
	fl.IntVar(&f.cfg.Inflight, "inflight", 64, "saturation: messages sent but not yet received by everyone")
	fl.DurationVar(&f.cfg.Drain, "drain", 10*time.Second, "how long to wait for late deliveries after a run before counting them lost")
	fl.IntVar(&f.cfg.Procs, "procs", 1, "load generator processes holding the receivers (one process holds at most ~19000)")
	fl.IntVar(&f.cfg.Loops, "loops", 2, "event loops per load generator process")
	fl.IntVar(&f.cfg.ServerLoops, "server-loops", 0, "--loops of the Parley server it starts (0: the server's default)")
	fl.StringVar(&f.cfg.Room, "room", "lobby", "room (NATS: subject)")
	fl.IntVar(&f.cfg.Rounds, "rounds", 1, "measure every target this many times, taking turns (A B, then B A, ...); the ratios are the medians of the rounds'")
	fl.StringVar(&f.cfg.OutDir, "out", "bench-results", "directory for the JSON results, the plots and the started servers' own output (<time>-peers.log)")
	return cmd
}

func runBench(cmd *cobra.Command, f benchFlags) error {
	cfg := f.cfg
	var err error
	if cfg.Targets, err = parseTargets(f.target); err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if cfg.Targets, err = withTransports(cfg.Targets, f.target, f.transport, f.tls); err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if cfg.Conns, err = parseList(f.conns, strconv.Atoi); err != nil {
		return exitError{code: 2, msg: "invalid --conns: " + err.Error()}
	}
	if cfg.Rates, err = parseList(f.rates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		return exitError{code: 2, msg: "invalid --rate: " + err.Error()}
	}
	cfg.Log = cmd.ErrOrStderr()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	when := time.Now()
	peers, closePeers := peerLog(cfg.OutDir, when)
	defer closePeers(cmd.OutOrStdout())
	cfg.PeerLog = peers
	if f.cluster {
		return runClusterBench(ctx, cmd, f, peers)
	}
	switch f.scenario {
	case "":
	case "chat":
		if cfg.Rounds > 1 {
			return exitError{code: 2, msg: "--rounds applies to the one-room benchmark, not --scenario chat"}
		}
		return runChatScenario(ctx, cmd, cfg, f.chat, when)
	default:
		return exitError{code: 2, msg: fmt.Sprintf("invalid --scenario %q: use chat", f.scenario)}
	}
	results, err := bench.Run(ctx, cfg)
	out := cmd.OutOrStdout()
	if len(results) > 0 {
		fmt.Fprintln(out)
		bench.WriteTable(out, results)
		files, ferr := bench.WriteJSON(cfg.OutDir, when, cfg, results)
		plots, perr := bench.WritePlots(cfg.OutDir, when, results)
		fmt.Fprintf(out, "\nfiles: %s\n", strings.Join(append(files, plots...), " "))
		if ferr != nil || perr != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "parley: writing results: %v %v\n", ferr, perr)
		}
	}
	if err != nil {
		return exitError{code: 1, msg: "bench: " + err.Error()}
	}
	return nil
}

// peerLog opens the file that the servers the benchmark starts print to
// (their start-up lines and warnings stay out of the table), in dir, and
// returns what closes it and names it at the end; without a file, their
// output is dropped.
func peerLog(dir string, when time.Time) (io.Writer, func(out io.Writer)) {
	if dir == "" {
		dir = "bench-results"
	}
	path := filepath.Join(dir, when.UTC().Format("20060102-150405")+"-peers.log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return io.Discard, func(io.Writer) {}
	}
	f, err := os.Create(path)
	if err != nil {
		return io.Discard, func(io.Writer) {}
	}
	return f, func(out io.Writer) {
		_ = f.Close()
		fmt.Fprintf(out, "the servers' own output: %s\n", path)
	}
}

// runChatScenario runs --scenario chat and prints its table and plot.
func runChatScenario(ctx context.Context, cmd *cobra.Command, cfg bench.Config, sc bench.ChatScenario, when time.Time) error {
	results, err := bench.RunChat(ctx, cfg, sc)
	out := cmd.OutOrStdout()
	if len(results) > 0 {
		fmt.Fprintln(out)
		bench.WriteChatTable(out, results)
		dir := cfg.OutDir
		if dir == "" {
			dir = "bench-results"
		}
		if merr := os.MkdirAll(dir, 0o755); merr == nil {
			if path, perr := bench.WriteChatPlot(dir, when, results); perr == nil {
				fmt.Fprintf(out, "\nfiles: %s\n", path)
			}
		}
	}
	if err != nil {
		return exitError{code: 1, msg: "bench: " + err.Error()}
	}
	return nil
}

func parseTargets(s string) ([]bench.Target, error) {
	if s == "all" {
		return bench.AllTargets, nil
	}
	var out []bench.Target
	for _, t := range strings.Split(s, ",") {
		switch bench.Target(t) {
		case bench.TargetParley, bench.TargetParleyOneLoop, bench.TargetParleyTLS, bench.TargetParleyWS, bench.TargetCentrifugo, bench.TargetRedis, bench.TargetNATS, bench.TargetFloor:
			out = append(out, bench.Target(t))
		default:
			return nil, fmt.Errorf("invalid --target %q: use parley, parley-1loop, parley-tls, parley-ws, centrifugo, redis, nats, floor or all", t)
		}
	}
	return out, nil
}

// withTransports applies --transport and --tls: each names a Parley
// target by how its receivers connect; --transport alone replaces the
// default target.
func withTransports(targets []bench.Target, target, transport string, tls bool) ([]bench.Target, error) {
	byName := map[string]bench.Target{"tcp": bench.TargetParley, "tls": bench.TargetParleyTLS, "ws": bench.TargetParleyWS}
	var add []bench.Target
	if transport != "" {
		for _, name := range strings.Split(transport, ",") {
			t, ok := byName[strings.TrimSpace(name)]
			if !ok {
				return nil, fmt.Errorf("invalid --transport %q: use tcp, tls or ws", name)
			}
			add = append(add, t)
		}
		if target == "parley" {
			targets = nil // the default target gives way to the transports asked for
		}
	}
	if tls {
		add = append(add, bench.TargetParleyTLS)
	}
	for _, t := range add {
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	return targets, nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, part := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Hidden commands: the child processes `parley bench` starts.
// runClusterBench runs `parley bench --cluster`.
func runClusterBench(ctx context.Context, cmd *cobra.Command, f benchFlags, peers io.Writer) error {
	cc := f.clusterCfg
	var err error
	if cc.Nodes, err = parseList(f.clusterNodes, strconv.Atoi); err != nil {
		return exitError{code: 2, msg: "invalid --cluster-nodes: " + err.Error()}
	}
	if cc.Exe, err = os.Executable(); err != nil {
		return err
	}
	cc.PeerLog = peers
	if _, err := bench.RunCluster(ctx, cc, cmd.OutOrStdout()); err != nil {
		return exitError{code: 1, msg: "bench --cluster: " + err.Error()}
	}
	return nil
}

func newBenchChildCmds() []*cobra.Command {
	var port int
	var storeDir string
	natsCmd := &cobra.Command{Use: "bench-nats-server", Hidden: true, Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return bench.RunChildServer(func(ctx context.Context) error { return bench.RunNATSServer(ctx, port, storeDir) })
		}}
	natsCmd.Flags().IntVar(&port, "port", 4222, "port")
	natsCmd.Flags().StringVar(&storeDir, "jetstream-dir", "", "enable JetStream, storing in this directory")
	var addr string
	floorCmd := &cobra.Command{Use: "bench-floor", Hidden: true, Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return bench.RunChildServer(func(ctx context.Context) error { return bench.RunFloor(ctx, addr, 0, nil) })
		}}
	floorCmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "address")
	workerCmd := &cobra.Command{Use: "bench-worker", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunWorker(cmd.InOrStdin(), cmd.OutOrStdout(), os.Getpid())
		}}
	var spec string
	loadCmd := &cobra.Command{Use: "bench-cluster-load", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var sp bench.ClusterLoadSpec
			if err := json.Unmarshal([]byte(spec), &sp); err != nil {
				return err
			}
			return bench.RunChildServer(func(ctx context.Context) error {
				return bench.RunClusterLoad(ctx, sp, cmd.InOrStdin(), cmd.OutOrStdout())
			})
		}}
	loadCmd.Flags().StringVar(&spec, "spec", "", "the process's part, JSON")
	return []*cobra.Command{natsCmd, floorCmd, workerCmd, loadCmd}
}
