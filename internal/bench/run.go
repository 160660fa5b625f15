package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is one row of the report: one target, connection count and rate.
type Result struct {
	Target      Target           `json:"target"`
	Round       int              `json:"round"` // 1, 2, ... of Config.Rounds
	Conns       int              `json:"conns"`
	Rate        float64          `json:"rate"`     // 0: saturation
	Inflight    int              `json:"inflight"` // the window, in saturation
	Messages    int64            `json:"messages"` // sent in the measured window
	Expected    int64            `json:"expected_deliveries"`
	Received    int64            `json:"received_deliveries"`
	Lost        int64            `json:"lost"`
	Closed      int64            `json:"closed_receivers"`
	Reasons     map[string]int64 `json:"close_reasons,omitempty"`
	Resumed     int64            `json:"resumed_receivers,omitempty"`     // dropped, came back, every message replayed
	Unrecovered int64            `json:"unrecovered_receivers,omitempty"` // dropped, came back, told some were lost
	PerSec      float64          `json:"deliveries_per_sec"`
	Latency     Percentiles      `json:"latency_ms"`
	ConnectSecs float64          `json:"connect_seconds"`
	ConnsPerSec float64          `json:"conns_per_sec"`
	RSSConnect  int64            `json:"server_rss_after_connect"`
	RSSEnd      int64            `json:"server_rss_end"`
	RSSPerConn  float64          `json:"server_rss_per_conn"`
	ServerCPU   float64          `json:"server_cpu_seconds"`
	GenCPU      float64          `json:"loadgen_cpu_seconds"`
	Wall        float64          `json:"measured_seconds"`
	// The server over the measured window: its CPU time and write system
	// calls, and what they come to per delivery received in the window.
	WindowCPU          float64                `json:"server_cpu_seconds_in_window"`
	WindowWrites       int64                  `json:"server_write_calls_in_window"`
	CPUPerDelivery     float64                `json:"server_cpu_us_per_delivery"`
	DeliveriesPerWrite float64                `json:"deliveries_per_write_call"`
	Note               string                 `json:"note,omitempty"`
	SendError          string                 `json:"send_error,omitempty"`
	Histogram          *hdrhistogram.Snapshot `json:"histogram"`
	hist               *hdrhistogram.Histogram
}

// prepare applies the defaults, checks cfg and finds the binary for the
// child processes.
func (c Config) prepare() (Config, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, err
		}
		c.Exe = exe
	}
	return c, nil
}

// Run runs every combination of target, connection count and rate.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	var all []Result
	openings := 0 // points opened so far: each gets receivers with nicks of its own
	for round := 1; round <= cfg.Rounds; round++ {
		for _, t := range roundOrder(cfg.Targets, round) {
			for _, conns := range cfg.Conns {
				rs, err := runPoint(ctx, cfg, t, conns, &openings)
				if err != nil {
					return all, fmt.Errorf("%s with %d connections: %w", t, conns, err)
				}
				for i := range rs {
					rs[i].Round = round
				}
				all = append(all, rs...)
			}
		}
	}
	return all, nil
}

// roundOrder is the order the targets run in in a round: as given in odd
// rounds, reversed in even ones. Whatever the machine charges the first
// run after a quiet spell, or the run after a heavy one, falls on each
// target in turn.
func roundOrder(targets []Target, round int) []Target {
	if round%2 == 1 {
		return targets
	}
	reversed := slices.Clone(targets)
	slices.Reverse(reversed)
	return reversed
}

// point is one target at one connection count: a server, its receivers and
// its senders, reused for every rate.
type point struct {
	cfg     Config
	target  Target
	conns   int
	opening int // which point of the run this is, for the receivers' nicks
	srv     *running
	groups  []group
	pids    []int // worker processes
	senders []sender
	seq     atomic.Uint64
	track   atomic.Pointer[tracker] // the current run's
	sendErr atomic.Pointer[error]   // the first send error of the current run

	connect    time.Duration
	rssConnect int64
}

// runPoint measures every rate at one connection count. The server and
// its connections are reused from one rate to the next, unless a run ended
// with deliveries missing: a backlog left in the server would distort the
// next run, so it gets a fresh server.
func runPoint(ctx context.Context, cfg Config, t Target, conns int, openings *int) ([]Result, error) {
	var out []Result
	for i := 0; i < len(cfg.Rates); {
		p, err := openPoint(cfg, t, conns, *openings)
		*openings++
		if err != nil {
			return out, err
		}
		for ; i < len(cfg.Rates) && ctx.Err() == nil; i++ {
			r := p.measure(cfg.Rates[i])
			fmt.Fprintf(cfg.Log, "%s: rate %s: %.0f deliveries/s, p99 %.1fms, lost %d\n", t, rateLabel(r.Rate), r.PerSec, r.Latency.P99, r.Lost)
			out = append(out, r)
			if r.Lost != 0 && i+1 < len(cfg.Rates) {
				fmt.Fprintf(cfg.Log, "%s: deliveries were lost: restarting the server for the next run\n", t)
				i++
				break
			}
		}
		p.close()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// openPoint starts the target and connects receivers and senders.
func openPoint(cfg Config, t Target, conns, opening int) (*point, error) {
	fmt.Fprintf(cfg.Log, "%s: starting for %d connections\n", t, conns)
	srv, err := startTarget(cfg, t)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "%s: %s\n", t, srv.note)
	p := &point{cfg: cfg, target: t, conns: conns, opening: opening, srv: srv}
	start := time.Now()
	if err := p.openGroups(); err != nil {
		p.close()
		return nil, err
	}
	p.connect = time.Since(start)
	fmt.Fprintf(cfg.Log, "%s: %d receivers connected in %.2fs\n", t, conns, p.connect.Seconds())
	p.rssConnect = p.serverStat().RSS
	if err := p.openSenders(); err != nil {
		p.close()
		return nil, err
	}
	p.forwardCompletions()
	return p, nil
}

// measure runs one rate and adds the point's connection figures.
func (p *point) measure(rate float64) Result {
	r := p.broadcast(rate)
	r.ConnectSecs, r.ConnsPerSec, r.RSSConnect = p.connect.Seconds(), float64(p.conns)/p.connect.Seconds(), p.rssConnect
	r.RSSEnd = p.serverStat().RSS
	r.RSSPerConn = float64(p.rssConnect) / float64(p.conns)
	r.Note = p.srv.note
	return r
}

// openGroups connects the receivers, split over cfg.Procs processes (in
// this one when Procs is 1) and over the target's nodes.
func (p *point) openGroups() error {
	per := p.conns / p.cfg.Procs
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for w := 0; w < p.cfg.Procs; w++ {
		n := per
		if w == p.cfg.Procs-1 {
			n = p.conns - per*(p.cfg.Procs-1)
		}
		addrs := p.srv.addrs
		if len(p.srv.recvAddrs) > 0 {
			addrs = p.srv.recvAddrs
		}
		gc := GroupConfig{Target: p.target.receiving(), Addr: addrs[w%len(addrs)], Room: p.cfg.Room, Conns: n, Opening: p.opening, Worker: w, Loops: p.cfg.Loops, CertPEM: p.srv.certPEM, Lean: p.cfg.Lean}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, pid, err := p.openGroup(gc)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if g != nil {
				p.groups = append(p.groups, g)
				p.pids = append(p.pids, pid)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func (p *point) openGroup(gc GroupConfig) (group, int, error) {
	if p.cfg.Procs == 1 {
		g, err := openLocalGroup(gc)
		return g, 0, err
	}
	g, err := startRemoteGroup(p.cfg.Exe, gc)
	if err != nil {
		if g != nil {
			g.close()
		}
		return nil, 0, err
	}
	return g, g.pid, nil
}

func (p *point) openSenders() error {
	addrs := p.srv.addrs
	if len(p.srv.recvAddrs) > 0 { // TLS, WebSocket: senders on the receivers' transport
		addrs = p.srv.recvAddrs
	}
	for i := 0; i < p.cfg.Senders; i++ {
		s, err := openSender(senderSpec{target: p.target, addr: addrs[i%len(addrs)], certPEM: p.srv.certPEM,
			name: fmt.Sprintf("sender-%d-%d", p.opening, i), room: p.cfg.Room, size: p.cfg.Size})
		if err != nil {
			return fmt.Errorf("sender %d: %w", i, err)
		}
		p.senders = append(p.senders, s)
	}
	return nil
}

func (p *point) close() {
	for _, s := range p.senders {
		s.close()
	}
	for _, g := range p.groups {
		g.close()
	}
	p.srv.stop()
}

func (p *point) serverStat() ProcStat {
	if p.srv.pid == 0 {
		return ProcStat{}
	}
	st, _ := ReadProcStat(p.srv.pid)
	return st
}

// genCPU is the load generator's CPU time: this process and its workers.
func (p *point) genCPU() time.Duration {
	st, _ := ReadProcStat(0)
	total := st.CPU
	for _, pid := range p.pids {
		if pid > 0 {
			ws, _ := ReadProcStat(pid)
			total += ws.CPU
		}
	}
	return total
}

func rateLabel(rate float64) string {
	if rate == 0 {
		return "saturation"
	}
	return fmt.Sprintf("%g/s", rate)
}
