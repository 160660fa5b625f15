package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"parley/codec"
	"parley/internal/poll"
	"parley/server"
	"parley/server/servertest"
	"parley/server/tlstest"
)

const waitFor = 10 * time.Second

// shortConfig is a run of a few seconds with small counts. The window is
// 2 s: a saturation run sends in it only as its in-flight messages reach
// every receiver, and under two race runs side by side the first ones
// took the whole of a 0.5 s window.
func shortConfig(t Target) Config {
	return Config{
		Targets: []Target{t}, Conns: []int{40}, Rates: []float64{200, 0}, Senders: 2,
		Duration: 2 * time.Second, Warmup: 200 * time.Millisecond, Drain: waitFor, Inflight: 8,
	}
}

func startParley(t *testing.T) string {
	return servertest.Start(t, server.Config{RateLimit: -1}).Addr().String()
}

func startFloor(t *testing.T) string {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	go func() { defer close(done); _ = RunFloor(ctx, "127.0.0.1:0", 2, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a.String()
	case <-time.After(waitFor):
		t.Fatal("floor did not start")
		return ""
	}
}

func startNATS(t *testing.T) string {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = RunNATSServer(ctx, port, "") }()
	t.Cleanup(func() { cancel(); <-done })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitListening(addr, waitFor); err != nil {
		t.Fatal(err)
	}
	return "nats://" + addr
}

// checkResults asserts that every run delivered everything it sent.
func checkResults(t *testing.T, rs []Result, want int) {
	t.Helper()
	if len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	for _, r := range rs {
		if r.Messages == 0 || r.Expected != r.Messages*int64(r.Conns) {
			t.Errorf("%s rate %g: %d messages, %d expected", r.Target, r.Rate, r.Messages, r.Expected)
		}
		if r.Received != r.Expected || r.Lost != 0 || r.Closed != 0 || r.SendError != "" {
			t.Errorf("%s rate %g: expected %d, received %d, lost %d, closed %d, send error %q", r.Target, r.Rate, r.Expected, r.Received, r.Lost, r.Closed, r.SendError)
		}
		if r.Latency.Count != r.Received || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
			t.Errorf("%s rate %g: latency %+v", r.Target, r.Rate, r.Latency)
		}
	}
	// Paced at 200/s for 2 s: 400 messages in the window, give or take one
	// at each edge.
	if m := rs[0].Messages; m < 399 || m > 401 {
		t.Errorf("paced run sent %d messages in the window, want 400", m)
	}
}

func TestRunParley(t *testing.T) {
	cfg := shortConfig(TargetParley)
	cfg.Addr = startParley(t)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, 2)
}

// TestRunParleyStreams runs the receivers on WebSocket and, in a second run,
// on TLS, against one running server.
func TestRunParleyStreams(t *testing.T) {
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, t.TempDir(), 1)
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	// With a certificate the WebSocket listener serves wss: one server each.
	ws := servertest.Start(t, server.Config{RateLimit: -1, ConnRatePerIP: -1, WSAddr: "127.0.0.1:0"})
	tls := servertest.Start(t, server.Config{RateLimit: -1, ConnRatePerIP: -1, TLSAddr: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	for _, c := range []struct {
		target     Target
		addr, recv string
	}{{TargetParleyWS, ws.Addr().String(), ws.WSAddr().String()}, {TargetParleyTLS, tls.Addr().String(), tls.TLSAddr().String()}} {
		cfg := shortConfig(c.target)
		cfg.Addr, cfg.StreamAddr, cfg.StreamCertPEM = c.addr, c.recv, string(pemBytes)
		rs, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		checkResults(t, rs, 2)
	}
}

// TestRunRedis runs the Redis target against a redis-server the bench
// starts, and Parley's lean receivers against a running server: the
// like-for-like pair of make bench. It skips without redis-server.
func TestRunRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server installed (apt-get install redis-server; .ci/run installs it)")
	}
	cfg := shortConfig(TargetRedis)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, 2)
	// The server's write calls are counted in every row; its CPU time, in
	// clock ticks of 10 ms, shows over a short window only at saturation.
	for _, r := range rs {
		if r.WindowWrites <= 0 || r.DeliveriesPerWrite <= 0 || (r.Rate == 0 && r.CPUPerDelivery <= 0) {
			t.Errorf("rate %g: %d writes, %v deliveries per write, %v µs of CPU per delivery: the server's /proc was not read",
				r.Rate, r.WindowWrites, r.DeliveriesPerWrite, r.CPUPerDelivery)
		}
	}
	lean := shortConfig(TargetParley)
	lean.Addr, lean.Lean = startParley(t), true
	rs, err = Run(context.Background(), lean)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, 2)
}

func TestRunFloor(t *testing.T) {
	cfg := shortConfig(TargetFloor)
	cfg.FloorAddr = startFloor(t)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, 2)
}

func TestRunNATS(t *testing.T) {
	cfg := shortConfig(TargetNATS)
	cfg.NATSURL = startNATS(t)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, 2)
}

// TestRunPointsShareAServer runs two points against one running Parley
// server: the server holds the first point's nicks for their resumption,
// so the second point's receivers and sender need nicks of their own.
func TestRunPointsShareAServer(t *testing.T) {
	cfg := shortConfig(TargetParley)
	cfg.Conns, cfg.Rates, cfg.Addr = []int{40, 40}, []float64{200}, startParley(t)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		checkResults(t, []Result{r}, 1)
	}
	if len(rs) != 2 {
		t.Fatalf("%d results, want 2", len(rs))
	}
}

// TestRunRounds runs two targets for two rounds: the second round runs
// them in the other order, every run delivers everything, and the table
// shows the rounds and the median ratios.
func TestRunRounds(t *testing.T) {
	cfg := shortConfig(TargetParley)
	cfg.Targets = []Target{TargetParley, TargetFloor}
	cfg.Rates, cfg.Rounds = []float64{200}, 2
	cfg.Addr, cfg.FloorAddr = startParley(t), startFloor(t)
	rs, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rs {
		order = append(order, fmt.Sprintf("%d %s", r.Round, r.Target))
		checkResults(t, []Result{r}, 1)
	}
	if want := []string{"1 parley", "1 floor", "2 floor", "2 parley"}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("runs %v, want %v", order, want)
	}
	checkTable(t, rs, "round", "parley/floor", "median of 2 rounds")
}

// TestWorkersMergeHistograms runs two load generator workers over pipes,
// as `--procs 2` runs them in child processes, and checks that their
// completions and histograms add up.
func TestWorkersMergeHistograms(t *testing.T) {
	addr := startFloor(t)
	var groups []*remoteGroup
	for w := 0; w < 2; w++ {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go func() { _ = RunWorker(inR, outW, 0); outW.Close() }()
		g := newRemoteGroup(inW, outR)
		if err := g.start(GroupConfig{Target: TargetFloor, Addr: addr, Room: "lobby", Conns: 10 + w*5, Worker: w, Loops: 1}); err != nil {
			t.Fatal(err)
		}
		defer g.close()
		groups = append(groups, g)
	}
	s, err := openSender(senderSpec{target: TargetFloor, addr: addr, room: "lobby", name: "sender-0", size: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	from := time.Now()
	for _, g := range groups {
		g.setWindow(from, from.Add(time.Hour))
	}
	for seq := uint64(1); seq <= 20; seq++ {
		if err := s.send(time.Now().UnixNano(), seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups {
		seen := map[uint64]bool{}
		timeout := time.After(waitFor)
		for len(seen) < 20 {
			select {
			case seq := <-g.completed():
				seen[seq] = true
			case <-timeout:
				t.Fatalf("only %d of 20 messages completed in a worker", len(seen))
			}
		}
	}
	reports := []GroupReport{groups[0].collect(), groups[1].collect()}
	hist, total := mergeReports(reports)
	if reports[0].Received != 200 || reports[1].Received != 300 {
		t.Fatalf("workers received %d and %d, want 200 and 300", reports[0].Received, reports[1].Received)
	}
	if total.Received != 500 || hist.TotalCount() != 500 {
		t.Fatalf("merged: %d received, %d in the histogram", total.Received, hist.TotalCount())
	}
}

func TestWriteJSONAndTable(t *testing.T) {
	h := NewHistogram()
	Record(h, 5*time.Millisecond)
	rs := []Result{
		{Target: TargetParley, Conns: 10, Rate: 10, Messages: 1, Expected: 10, Received: 10, PerSec: 100, Latency: Summarize(h), Histogram: h.Export(), hist: h},
		{Target: TargetNATS, Conns: 10, Rate: 10, Messages: 1, Expected: 10, Received: 9, Lost: 1, PerSec: 50, Latency: Summarize(h), Histogram: h.Export(), hist: h},
	}
	dir := t.TempDir()
	when := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	cfg := Config{Targets: []Target{TargetParley, TargetNATS}, Conns: []int{10}, Rates: []float64{10}}
	paths, err := WriteJSON(dir, when, cfg, rs)
	if err != nil || len(paths) != 2 || filepath.Base(paths[0]) != "20261121-090000-parley.json" {
		t.Fatalf("WriteJSON = %v, %v", paths, err)
	}
	raw, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Target != TargetNATS || len(rep.Results) != 1 || rep.Results[0].Lost != 1 || rep.Config.Conns[0] != 10 || rep.Results[0].Histogram == nil {
		t.Fatalf("report = %+v", rep)
	}
	plots, err := WritePlots(dir, when, rs)
	if err != nil || len(plots) != 2 {
		t.Fatalf("WritePlots = %v, %v", plots, err)
	}
	checkTable(t, rs, "parley/nats", "2.00", "1 deliveries lost")
}

// checkTable asserts that WriteTable's output for rs holds every want.
func checkTable(t *testing.T, rs []Result, wants ...string) {
	t.Helper()
	var b strings.Builder
	WriteTable(&b, rs)
	for _, want := range wants {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestReceiversResume: Parley receivers whose connections drop mid-run
// dial again and resume their room: every receiver ends with every
// message once, those sent while it was away included, and the run counts
// the resumes.
func TestReceiversResume(t *testing.T) {
	addr := startParley(t)
	const conns, msgs = 10, 40
	g, err := newFramedGroup(GroupConfig{Target: TargetParley, Addr: addr, Room: "lobby", Conns: conns, Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if err := g.open(); err != nil {
		t.Fatal(err)
	}
	s, err := openSender(senderSpec{target: TargetParley, addr: addr, room: "lobby", name: "sender-0", size: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	from := time.Now()
	g.setWindow(from, from.Add(time.Hour))
	seen := map[uint64]bool{}
	wait := func(upTo int) {
		timeout := time.After(waitFor)
		for len(seen) < upTo {
			select {
			case seq := <-g.completed():
				seen[seq] = true
			case <-timeout:
				t.Fatalf("only %d of %d messages reached every receiver", len(seen), upTo)
			}
		}
	}
	for seq := uint64(1); seq <= msgs; seq++ {
		if seq == msgs/2 {
			wait(msgs/2 - 1)
			g.mu.Lock()
			for _, c := range g.conns {
				_ = c.Close() // dropped, as a network would
			}
			g.mu.Unlock()
		}
		if err := s.send(time.Now().UnixNano(), seq); err != nil {
			t.Fatal(err)
		}
	}
	wait(msgs)
	// A resume's recovered notice follows its replay: the last message
	// can complete before the last receiver has read the notice.
	var r GroupReport
	poll.Until(t, waitFor, "every receiver's recovered notice", func() error {
		if r = g.collect(); r.Resumed < conns {
			return fmt.Errorf("%d of %d resumed", r.Resumed, conns)
		}
		return nil
	})
	if r.Received != conns*msgs || r.Resumed != conns || r.Unrecovered != 0 {
		t.Fatalf("received %d (want %d), resumed %d (want %d), not recovered %d", r.Received, conns*msgs, r.Resumed, conns, r.Unrecovered)
	}
}

// writeConn is the one gnet.Conn method a receiver's frame handling uses
// to answer the server (Write), over a real connection to it; the rest of
// the interface is not used here.
type writeConn struct {
	gnet.Conn
	nc net.Conn
}

func (w writeConn) Write(b []byte) (int, error) { return w.nc.Write(b) }

// TestReceiverFillsGaps: a receiver told of a gap pages the missing
// messages from the server's history and counts them as deliveries.
func TestReceiverFillsGaps(t *testing.T) {
	addr := startParley(t)
	s, err := openSender(senderSpec{target: TargetParley, addr: addr, room: "lobby", name: "sender-0", size: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := codec.NewReader(nc, 0)
	next := func(typ string) []byte {
		_ = nc.SetReadDeadline(time.Now().Add(waitFor))
		for {
			body, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			var ev codec.Event
			if codec.DecodeEvent(body, &ev) == nil && ev.Type == typ {
				return append([]byte(nil), body...)
			}
		}
	}
	_, _ = nc.Write(codec.MustEncode(&codec.Login{Nick: "filler"}))
	next(codec.TypeWelcome)
	for seq := uint64(1); seq <= 10; seq++ {
		if err := s.send(time.Now().UnixNano(), seq); err != nil {
			t.Fatal(err)
		}
		next(codec.TypeMsg)
	}
	g := &framedGroup{cfg: GroupConfig{Target: TargetParley, Room: "lobby", Conns: 1}, sink: newSink(1, 1)}
	from := time.Now().Add(-time.Hour)
	g.sink.setWindow(from, from.Add(2*time.Hour))
	rc := &rconn{parleyRecv: parleyRecv{room: "lobby", fill: true, loggedIn: true}, g: g, nick: "filler"}
	c := writeConn{nc: nc}
	g.frame(c, rc, codec.MustEncode(&codec.Gap{Room: "lobby", First: 3, Last: 8})[codec.HeaderSize:], time.Now().UnixNano())
	g.frame(c, rc, next(codec.TypeHistory), time.Now().UnixNano())
	if rep := g.sink.collect(); rep.Received != 6 || rc.last != 8 {
		t.Fatalf("the fill delivered %d messages up to seq %d, want 6 up to 8", rep.Received, rc.last)
	}
}

// TestChatScenario runs the chat scenario small against a running Parley
// server and, when redis-server is installed, against Redis: nothing is
// lost in any class, and every class is measured.
func TestChatScenario(t *testing.T) {
	cfg := Config{Targets: []Target{TargetParley}, Addr: startParley(t), Conns: []int{120}, Rates: []float64{200},
		Duration: time.Second, Warmup: 200 * time.Millisecond, Drain: waitFor}
	if _, err := exec.LookPath("redis-server"); err == nil {
		cfg.Targets = append(cfg.Targets, TargetRedis)
	}
	sc := ChatScenario{Rooms: 12, LargeRoom: 30, ChurnRate: 10}
	rs, err := RunChat(context.Background(), cfg, sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(cfg.Targets) {
		t.Fatalf("%d results for %d targets", len(rs), len(cfg.Targets))
	}
	for _, r := range rs {
		for c := range numClasses {
			if r.Expected[c] == 0 || r.Received[c] != r.Expected[c] || r.Latency[c].Count != r.Received[c] {
				t.Errorf("%s, %s: expected %d, received %d, latency count %d", r.Target, classNames[c], r.Expected[c], r.Received[c], r.Latency[c].Count)
			}
		}
		if r.Churned == 0 || r.Whos == 0 || r.LargestRoom < sc.LargeRoom {
			t.Errorf("%s: %d churned sessions, %d who calls, largest room %d", r.Target, r.Churned, r.Whos, r.LargestRoom)
		}
	}
	var out strings.Builder
	WriteChatTable(&out, rs)
	if !strings.Contains(out.String(), "direct messages") {
		t.Errorf("table:\n%s", out.String())
	}
	if _, err := WriteChatPlot(t.TempDir(), time.Now(), rs); err != nil {
		t.Fatal(err)
	}
}
