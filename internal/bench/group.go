package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// group is a set of receivers, in this process or in a worker process.
type group interface {
	setWindow(from, to time.Time)
	completed() <-chan uint64
	collect() GroupReport
	close()
}

// receivers is the in-process implementation of group.
type receivers interface {
	group
	open() error
}

// workerMsg is one line between the coordinator and a worker process.
type workerMsg struct {
	Cmd    string       `json:"cmd,omitempty"` // to the worker: window, collect
	From   int64        `json:"from,omitempty"`
	To     int64        `json:"to,omitempty"`
	Ready  bool         `json:"ready,omitempty"` // from the worker
	Ack    bool         `json:"ack,omitempty"`   // the window is set
	Error  string       `json:"error,omitempty"`
	Done   uint64       `json:"done,omitempty"`
	Report *GroupReport `json:"report,omitempty"`
	PID    int          `json:"pid,omitempty"`
}

// RunWorker is the body of a load generator worker process: it reads its
// GroupConfig and then commands from in, and writes readiness, completed
// sequence numbers and reports to out, one JSON object per line.
func RunWorker(in io.Reader, out io.Writer, pid int) error {
	dec := json.NewDecoder(in)
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m workerMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	var cfg GroupConfig
	if err := dec.Decode(&cfg); err != nil {
		return err
	}
	g, err := openLocalGroup(cfg)
	if err != nil {
		send(workerMsg{Error: err.Error()})
		return err
	}
	defer g.close()
	go func() {
		for seq := range g.completed() {
			send(workerMsg{Done: seq})
		}
	}()
	send(workerMsg{Ready: true, PID: pid})
	for {
		var m workerMsg
		if err := dec.Decode(&m); err != nil {
			return nil // the coordinator closed our stdin: done
		}
		switch m.Cmd {
		case "window":
			g.setWindow(time.Unix(0, m.From), time.Unix(0, m.To))
			send(workerMsg{Ack: true})
		case "collect":
			r := g.collect()
			send(workerMsg{Report: &r})
		}
	}
}

// remoteGroup is a group held by a worker process, driven over its stdin
// and stdout.
type remoteGroup struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	done    chan uint64
	reports chan GroupReport
	ready   chan workerMsg
	acks    chan struct{}
	pid     int
}

// startRemoteGroup starts `exe bench-worker` for cfg and waits until its
// receivers are connected.
func startRemoteGroup(exe string, cfg GroupConfig) (*remoteGroup, error) {
	cmd := exec.Command(exe, "bench-worker")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := newRemoteGroup(in, out)
	g.cmd = cmd
	return g, g.start(cfg)
}

// newRemoteGroup speaks the worker protocol over in and out.
func newRemoteGroup(in io.WriteCloser, out io.Reader) *remoteGroup {
	g := &remoteGroup{in: in, enc: json.NewEncoder(in), done: make(chan uint64, completionRing),
		reports: make(chan GroupReport, 1), ready: make(chan workerMsg, 1), acks: make(chan struct{}, 1)}
	go g.read(out)
	return g
}

func (g *remoteGroup) start(cfg GroupConfig) error {
	if err := g.enc.Encode(cfg); err != nil {
		return err
	}
	m, ok := <-g.ready
	if !ok {
		return fmt.Errorf("worker %d exited before it was ready", cfg.Worker)
	}
	if m.Error != "" {
		return fmt.Errorf("worker %d: %s", cfg.Worker, m.Error)
	}
	g.pid = m.PID
	return nil
}

func (g *remoteGroup) read(out io.Reader) {
	defer close(g.ready)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for sc.Scan() {
		var m workerMsg
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case m.Ready || m.Error != "":
			g.ready <- m
		case m.Done != 0:
			select {
			case g.done <- m.Done:
			default:
			}
		case m.Report != nil:
			g.reports <- *m.Report
		case m.Ack:
			g.acks <- struct{}{}
		}
	}
}

// setWindow returns once the worker has applied the window, so no
// delivery of the run can reach it first.
func (g *remoteGroup) setWindow(from, to time.Time) {
	if g.enc.Encode(workerMsg{Cmd: "window", From: from.UnixNano(), To: to.UnixNano()}) != nil {
		return
	}
	select {
	case <-g.acks:
	case <-time.After(30 * time.Second):
	}
}

func (g *remoteGroup) completed() <-chan uint64 { return g.done }

func (g *remoteGroup) collect() GroupReport {
	if err := g.enc.Encode(workerMsg{Cmd: "collect"}); err != nil {
		return GroupReport{Hist: NewHistogram().Export()}
	}
	select {
	case r := <-g.reports:
		return r
	case <-time.After(30 * time.Second):
		return GroupReport{Hist: NewHistogram().Export()}
	}
}

func (g *remoteGroup) close() {
	g.in.Close()
	if g.cmd != nil {
		done := make(chan struct{})
		go func() { _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
		}
	}
}

// mergeReports adds up the reports of several groups.
func mergeReports(rs []GroupReport) (*hdrhistogram.Histogram, GroupReport) {
	total := GroupReport{Reasons: map[string]int64{}}
	hs := make([]*hdrhistogram.Histogram, 0, len(rs))
	for _, r := range rs {
		if r.Hist != nil {
			hs = append(hs, hdrhistogram.Import(r.Hist))
		}
		total.Received += r.Received
		total.Closed += r.Closed
		total.Resumed += r.Resumed
		total.Unrecovered += r.Unrecovered
		for k, v := range r.Reasons {
			total.Reasons[k] += v
		}
	}
	return Merge(hs...), total
}

// dialAll runs dial for receivers 0 to n-1, 8 at a time, and returns the
// first error, after which no more are dialled.
func dialAll(n int, dial func(i int) error) error {
	var next atomic.Int64
	errc := make(chan error, 1)
	var dialers sync.WaitGroup
	for range 8 {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := dial(int(i)); err != nil {
					select {
					case errc <- fmt.Errorf("dial receiver %d: %w", i, err):
					default:
					}
					next.Store(int64(n)) // the others stop too
					return
				}
			}
		}()
	}
	dialers.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// waitLogins waits until readyc closes (all n receivers logged in) or a
// receiver was refused, for a minute at most.
func waitLogins(readyc <-chan struct{}, failed <-chan error, ready *atomic.Int64, n int) error {
	select {
	case <-readyc:
		return nil
	case err := <-failed:
		return err
	case <-time.After(time.Minute):
		return fmt.Errorf("only %d of %d receivers logged in within a minute", ready.Load(), n)
	}
}
