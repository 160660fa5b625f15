package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The cluster benchmark (`parley bench --cluster`, make bench-cluster,
// docs/CLUSTER.md "Measured"): one NATS server with JetStream, N `parley
// serve --nats` nodes and several load processes, all child processes of
// this one, with the shape of Centrifugo's published benchmark scaled to
// one machine: every user in a group room of Group members spread over
// the nodes, direct messages as its personal channel, a steady message
// rate and sessions churning. Each node count in Nodes is one run.

// ClusterConfig shapes the cluster benchmark. Zero values take defaults.
type ClusterConfig struct {
	Exe        string        // the parley binary
	Nodes      []int         // node counts, one run each; default 6
	Users      int           // logged-in users; default 100,000
	PerNode    int           // the most users one node holds (its open files); default 18,000
	Loaders    int           // load processes; default 6
	Group      int           // members per group room; default 10
	Rate       float64       // messages per second, says and DMs; default 1,000
	DMShare    float64       // default 0.2
	Churn      float64       // extra sessions a minute; default 6,000
	Idle       time.Duration // the idle window, before traffic; default 10 s
	Duration   time.Duration // the traffic window; default 30 s
	ServerArgs []string      // more flags for every node
	PeerLog    io.Writer     // the children's output; default discarded
}

func (c ClusterConfig) withDefaults() ClusterConfig {
	if len(c.Nodes) == 0 {
		c.Nodes = []int{6}
	}
	setIf(&c.Users, 100_000)
	setIf(&c.PerNode, 18_000)
	setIf(&c.Loaders, 6)
	setIf(&c.Group, 10)
	if c.Rate <= 0 {
		c.Rate = 1000
	}
	if c.DMShare <= 0 {
		c.DMShare = 0.2
	}
	if c.Churn < 0 {
		c.Churn = 0
	} else if c.Churn == 0 {
		c.Churn = 6000
	}
	if c.Idle <= 0 {
		c.Idle = 10 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.PeerLog == nil {
		c.PeerLog = io.Discard
	}
	return c
}

func setIf(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

// ClusterRow is one run's figures.
type ClusterRow struct {
	Nodes, Users      int
	Ready             time.Duration // every user logged in and joined
	RSSPerConn        []float64     // per node, bytes: (RSS after logins - RSS before) / its users
	NATSRSS           int64
	IdleNodeCPU       float64 // cores, all nodes together, at idle (heartbeats, pings, presence)
	IdleNATSCPU       float64
	NodeCPU, NATSCPU  float64 // cores over the traffic window
	Deliveries        float64 // per second: room messages and DMs received
	Same, Cross, DM   *hdrhistogram.Histogram
	Says, DMs         int64
	SayFails, DMFails map[string]int64
	Churned           int64
	Members, Missing  int
	Dups, Behind      int
	LoginFails        int
	CPUPerKDeliveries float64 // CPU milliseconds (nodes and NATS) per 1,000 deliveries
}

// RunCluster runs the cluster benchmark for each node count and prints a
// table per run and the scaling table to w.
func RunCluster(ctx context.Context, cfg ClusterConfig, w io.Writer) ([]ClusterRow, error) {
	cfg = cfg.withDefaults()
	raiseOpenFiles()
	var rows []ClusterRow
	for _, n := range cfg.Nodes {
		users := min(cfg.Users, n*cfg.PerNode)
		fmt.Fprintf(w, "cluster: %d nodes, %d users, %d load processes, %.0f msg/s (%.0f%% DMs), %.0f churn/min, %s idle, %s traffic\n",
			n, users, cfg.Loaders, cfg.Rate, cfg.DMShare*100, cfg.Churn, cfg.Idle, cfg.Duration)
		row, err := runClusterOnce(ctx, cfg, n, users, w)
		if err != nil {
			return rows, fmt.Errorf("%d nodes: %w", n, err)
		}
		printClusterRow(w, row)
		rows = append(rows, row)
	}
	printClusterScaling(w, rows)
	return rows, nil
}

// raiseOpenFiles lifts this process's soft open-file limit to its hard
// one; the children inherit it.
func raiseOpenFiles() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// loadProc is a running load process.
type loadProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func runClusterOnce(ctx context.Context, cfg ClusterConfig, nodes, users int, w io.Writer) (ClusterRow, error) {
	row := ClusterRow{Nodes: nodes, Users: users, SayFails: map[string]int64{}, DMFails: map[string]int64{},
		Same: newHist(), Cross: newHist(), DM: newHist()}
	dir, err := os.MkdirTemp("", "parley-bench-cluster-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(dir)
	natsProc, err := startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
		return []string{"bench-nats-server", "--port", strconv.Itoa(port), "--jetstream-dir", dir}
	}, "nats://", "")
	if err != nil {
		return row, fmt.Errorf("nats server: %w", err)
	}
	defer natsProc.stop()
	var addrs []string
	var pids []int
	for i := 0; i < nodes; i++ {
		args := append([]string{"serve"}, BenchServerFlags...)
		args = append(args, "--nats", natsProc.addrs[0], "--node-id", fmt.Sprintf("n%d", i), "--max-conns", "0")
		args = append(args, cfg.ServerArgs...)
		node, err := startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
			return append(args, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
		}, "", "")
		if err != nil {
			return row, fmt.Errorf("node %d: %w", i, err)
		}
		defer node.stop()
		addrs = append(addrs, node.addrs[0])
		pids = append(pids, node.pid)
	}
	before := make([]ProcStat, nodes)
	for i, pid := range pids {
		before[i], _ = ReadProcStat(pid)
	}

	start := time.Now()
	procs, err := startLoaders(ctx, cfg, addrs, users)
	if err != nil {
		return row, err
	}
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	}()
	for _, p := range procs {
		var ready struct{ Fails int }
		if err := readJSONLine(p.out, &ready); err != nil {
			return row, fmt.Errorf("a load process: %w", err)
		}
		row.LoginFails += ready.Fails
	}
	row.Ready = time.Since(start)
	for i, pid := range pids {
		st, _ := ReadProcStat(pid)
		perNode := users / nodes
		if i < users%nodes {
			perNode++
		}
		row.RSSPerConn = append(row.RSSPerConn, float64(st.RSS-before[i].RSS)/float64(max(perNode, 1)))
	}
	ns, _ := ReadProcStat(natsProc.pid)
	row.NATSRSS = ns.RSS
	fmt.Fprintf(w, "  all logged in and joined in %s; idle for %s\n", row.Ready.Round(time.Millisecond), cfg.Idle)

	nodeCPU := func() time.Duration {
		var t time.Duration
		for _, pid := range pids {
			st, _ := ReadProcStat(pid)
			t += st.CPU
		}
		return t
	}
	natsCPU := func() time.Duration { st, _ := ReadProcStat(natsProc.pid); return st.CPU }
	n0, s0, t0 := nodeCPU(), natsCPU(), time.Now()
	time.Sleep(cfg.Idle)
	el := time.Since(t0).Seconds()
	row.IdleNodeCPU, row.IdleNATSCPU = (nodeCPU()-n0).Seconds()/el, (natsCPU()-s0).Seconds()/el

	n0, s0, t0 = nodeCPU(), natsCPU(), time.Now()
	for _, p := range procs {
		if _, err := io.WriteString(p.in, "start\n"); err != nil {
			return row, err
		}
	}
	var cpuWindow time.Duration
	var natsWindow time.Duration
	var results []ClusterLoadResult
	sampled := false
	for _, p := range procs {
		var res ClusterLoadResult
		if err := readJSONLine(p.out, &res); err != nil {
			return row, fmt.Errorf("a load process's result: %w", err)
		}
		if !sampled {
			cpuWindow, natsWindow, sampled = nodeCPU()-n0, natsCPU()-s0, true
		}
		results = append(results, res)
	}
	el = time.Since(t0).Seconds()
	row.NodeCPU, row.NATSCPU = cpuWindow.Seconds()/el, natsWindow.Seconds()/el
	got := mergeClusterResults(&row, results)
	row.Deliveries = float64(got) / cfg.Duration.Seconds() // sent within the window, received by its drain's end
	if got > 0 {
		row.CPUPerKDeliveries = (cpuWindow + natsWindow).Seconds() * 1e6 / float64(got)
	}
	return row, nil
}

// startLoaders starts cfg.Loaders load processes, each with its share of
// the users and the traffic.
func startLoaders(ctx context.Context, cfg ClusterConfig, addrs []string, users int) ([]*loadProc, error) {
	var procs []*loadProc
	per := (users + cfg.Loaders - 1) / cfg.Loaders
	for i := 0; i < cfg.Loaders; i++ {
		from, to := i*per, min((i+1)*per, users)
		if from >= to {
			break
		}
		share := float64(to-from) / float64(users)
		spec := ClusterLoadSpec{Addrs: addrs, Users: users, From: from, To: to, Group: cfg.Group, Rate: cfg.Rate * share,
			DMShare: cfg.DMShare, Churn: cfg.Churn * share, Duration: cfg.Duration, Drain: 3 * time.Second, Index: i}
		data, _ := json.Marshal(spec)
		cmd := exec.CommandContext(ctx, cfg.Exe, "bench-cluster-load", "--spec", string(data))
		cmd.Stderr = cfg.PeerLog
		in, err := cmd.StdinPipe()
		if err != nil {
			return procs, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return procs, err
		}
		if err := cmd.Start(); err != nil {
			return procs, err
		}
		procs = append(procs, &loadProc{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)})
	}
	return procs, nil
}

func readJSONLine(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// mergeClusterResults adds up the load processes' reports and checks
// every member's stream against the highest seq acked in its room; it
// returns the deliveries.
func mergeClusterResults(row *ClusterRow, results []ClusterLoadResult) int64 {
	final := map[string]uint64{}
	var got int64
	for _, r := range results {
		row.LoginFails += r.LoginFails
		row.Says += r.Says
		row.DMs += r.DMs
		row.Churned += r.Churned
		got += r.MsgsGot + r.DMsGot
		for k, v := range r.SayFails {
			row.SayFails[k] += v
		}
		for k, v := range r.DMFails {
			row.DMFails[k] += v
		}
		for room, seq := range r.Acked {
			final[room] = max(final[room], seq)
		}
		for _, pair := range []struct {
			into *hdrhistogram.Histogram
			data []byte
		}{{row.Same, r.Same}, {row.Cross, r.Cross}, {row.DM, r.DM}} {
			var snap hdrhistogram.Snapshot
			if json.Unmarshal(pair.data, &snap) == nil {
				pair.into.Merge(hdrhistogram.Import(&snap))
			}
		}
	}
	for _, r := range results {
		for _, s := range r.Streams {
			row.Members++
			row.Missing += s.Missing
			row.Dups += s.Dups
			if f := final[s.Room]; f > s.Last {
				row.Behind++
				row.Missing += int(f - s.Last)
			}
		}
	}
	return got
}

func ms(h *hdrhistogram.Histogram, q float64) string {
	if h.TotalCount() == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(h.ValueAtQuantile(q))/1000)
}

func printClusterRow(w io.Writer, r ClusterRow) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	var rss []string
	for _, b := range r.RSSPerConn {
		rss = append(rss, fmt.Sprintf("%.1f", b/1024))
	}
	fmt.Fprintf(tw, "  connections per node\t%d\n", r.Users/r.Nodes)
	fmt.Fprintf(tw, "  RSS per connection, KiB, per node\t%s\n", strings.Join(rss, " "))
	fmt.Fprintf(tw, "  NATS RSS, MiB\t%.0f\n", float64(r.NATSRSS)/(1<<20))
	fmt.Fprintf(tw, "  idle CPU, cores: nodes / NATS\t%.2f / %.2f\n", r.IdleNodeCPU, r.IdleNATSCPU)
	fmt.Fprintf(tw, "  traffic CPU, cores: nodes / NATS\t%.2f / %.2f\n", r.NodeCPU, r.NATSCPU)
	fmt.Fprintf(tw, "  says acked / DMs acked / churned\t%d / %d / %d\n", r.Says, r.DMs, r.Churned)
	fmt.Fprintf(tw, "  refused: says / DMs\t%v / %v\n", r.SayFails, r.DMFails)
	fmt.Fprintf(tw, "  deliveries/s\t%.0f\n", r.Deliveries)
	fmt.Fprintf(tw, "  p50 / p99 ms: same node\t%s / %s\n", ms(r.Same, 50), ms(r.Same, 99))
	fmt.Fprintf(tw, "  p50 / p99 ms: cross node\t%s / %s\n", ms(r.Cross, 50), ms(r.Cross, 99))
	fmt.Fprintf(tw, "  p50 / p99 ms: direct messages\t%s / %s\n", ms(r.DM, 50), ms(r.DM, 99))
	fmt.Fprintf(tw, "  members checked / missing seqs / duplicates / login failures\t%d / %d / %d / %d\n", r.Members, r.Missing, r.Dups, r.LoginFails)
	fmt.Fprintf(tw, "  CPU ms per 1,000 deliveries (nodes + NATS)\t%.1f\n", r.CPUPerKDeliveries)
	_ = tw.Flush()
}

func printClusterScaling(w io.Writer, rows []ClusterRow) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tusers\tready s\tKiB/conn\tidle cores\tdeliveries/s\tcross p50 ms\tcross p99 ms\tcores\tCPU ms/1k deliveries\tmissing\t")
	for _, r := range rows {
		kib := 0.0
		for _, b := range r.RSSPerConn {
			kib += b / 1024
		}
		kib /= float64(max(len(r.RSSPerConn), 1))
		cross := r.Cross
		if cross.TotalCount() == 0 {
			cross = r.Same
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.2f\t%.0f\t%s\t%s\t%.2f\t%.1f\t%d\t\n", r.Nodes, r.Users, r.Ready.Seconds(), kib,
			r.IdleNodeCPU+r.IdleNATSCPU, r.Deliveries, ms(cross, 50), ms(cross, 99), r.NodeCPU+r.NATSCPU, r.CPUPerKDeliveries, r.Missing)
	}
	_ = tw.Flush()
}

// newHist is a latency histogram in microseconds, up to a minute.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }
