package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// tracker follows one run's messages until every receiver has them: it
// drives the saturation window and tells when the run has drained.
type tracker struct {
	groups      int
	slots       chan struct{} // saturation: one per message in flight; nil when paced
	mu          sync.Mutex
	counts      map[uint64]int      // seq -> groups whose receivers all have it
	outstanding map[uint64]struct{} // measured seqs not yet everywhere
	changed     chan struct{}
}

func newTracker(groups, inflight int) *tracker {
	t := &tracker{groups: groups, counts: map[uint64]int{}, outstanding: map[uint64]struct{}{}, changed: make(chan struct{}, 1)}
	if inflight > 0 {
		t.slots = make(chan struct{}, inflight)
	}
	return t
}

// sent registers seq before it is sent, so its completion cannot be missed.
func (t *tracker) sent(seq uint64, measured bool) {
	t.mu.Lock()
	t.counts[seq] = 0
	if measured {
		t.outstanding[seq] = struct{}{}
	}
	t.mu.Unlock()
}

// complete records that one group's receivers all have seq.
func (t *tracker) complete(seq uint64) {
	t.mu.Lock()
	n, ok := t.counts[seq]
	if !ok {
		t.mu.Unlock()
		return
	}
	done := n+1 == t.groups
	if done {
		delete(t.counts, seq)
		delete(t.outstanding, seq)
	} else {
		t.counts[seq] = n + 1
	}
	t.mu.Unlock()
	if done {
		if t.slots != nil {
			<-t.slots
		}
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// drain waits until every measured message is everywhere or the deadline.
func (t *tracker) drain(deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		t.mu.Lock()
		left := len(t.outstanding)
		t.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-t.changed:
		case <-timer.C:
			return
		}
	}
}

// forwardCompletions feeds every group's completed sequence numbers to the
// current run's tracker, for the life of the point.
func (p *point) forwardCompletions() {
	for _, g := range p.groups {
		go func() {
			for seq := range g.completed() {
				if t := p.track.Load(); t != nil {
					t.complete(seq)
				}
			}
		}()
	}
}

// broadcast runs one rate: warmup, measured window, drain; then it
// collects the receivers' figures.
func (p *point) broadcast(rate float64) Result {
	cfg := p.cfg
	inflight := 0
	if rate == 0 {
		inflight = cfg.Inflight
	}
	t := newTracker(len(p.groups), inflight)
	p.track.Store(t)
	start := time.Now().Add(50 * time.Millisecond)
	from, to := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	for _, g := range p.groups {
		g.setWindow(from, to)
	}
	srv0, gen0 := p.serverStat().CPU, p.genCPU()
	window := p.sampleWindow(from, to)
	var measured atomic.Int64
	var wg sync.WaitGroup
	for i, s := range p.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rate > 0 {
				p.paced(s, Schedule{Start: start, Rate: rate, Senders: len(p.senders), Index: i}, from, to, t, &measured)
			} else {
				p.saturate(s, start, from, to, t, &measured)
			}
		}()
	}
	wg.Wait()
	t.drain(time.Now().Add(cfg.Drain))
	srv1, gen1 := p.serverStat().CPU, p.genCPU()
	reports := make([]GroupReport, len(p.groups))
	for i, g := range p.groups {
		reports[i] = g.collect()
	}
	w := <-window
	hist, total := mergeReports(reports)
	r := Result{
		Target: p.target, Conns: p.conns, Rate: rate, Inflight: inflight,
		Messages: measured.Load(), Received: total.Received, Closed: total.Closed, Reasons: total.Reasons,
		Resumed: total.Resumed, Unrecovered: total.Unrecovered,
		Latency: Summarize(hist), Histogram: hist.Export(), hist: hist,
		ServerCPU: (srv1 - srv0).Seconds(), GenCPU: (gen1 - gen0).Seconds(), Wall: cfg.Duration.Seconds(),
		WindowCPU: (w[1].CPU - w[0].CPU).Seconds(), WindowWrites: w[1].Writes - w[0].Writes,
	}
	if err := p.sendErr.Swap(nil); err != nil {
		r.SendError = (*err).Error()
	}
	r.Expected = r.Messages * int64(p.conns)
	r.Lost = r.Expected - r.Received
	r.PerSec = float64(r.Received) / cfg.Duration.Seconds()
	if r.Received > 0 && r.WindowCPU > 0 {
		r.CPUPerDelivery = r.WindowCPU / float64(r.Received) * 1e6
	}
	if r.WindowWrites > 0 {
		r.DeliveriesPerWrite = float64(r.Received) / float64(r.WindowWrites)
	}
	return r
}

// sampleWindow reads the server's CPU time and write calls at from and at
// to, the measured window, and sends both when it has them.
func (p *point) sampleWindow(from, to time.Time) <-chan [2]ProcStat {
	out := make(chan [2]ProcStat, 1)
	go func() {
		var w [2]ProcStat
		for i, at := range []time.Time{from, to} {
			time.Sleep(time.Until(at))
			w[i] = p.serverStat()
		}
		out <- w
	}()
	return out
}

// paced sends on the fixed schedule until to; a message is sent late
// rather than skipped when the sender falls behind, and its latency still
// counts from its due time.
func (p *point) paced(s sender, sched Schedule, from, to time.Time, t *tracker, measured *atomic.Int64) {
	for k := int64(0); ; k++ {
		due := sched.Due(k)
		if !due.Before(to) {
			return
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if !p.sendOne(s, due, from, t, measured) {
			return
		}
	}
}

// saturate sends as soon as a slot of the inflight window is free.
func (p *point) saturate(s sender, start, from, to time.Time, t *tracker, measured *atomic.Int64) {
	time.Sleep(time.Until(start))
	deadline := time.NewTimer(time.Until(to))
	defer deadline.Stop()
	for {
		select {
		case t.slots <- struct{}{}:
		case <-deadline.C:
			return
		}
		now := time.Now()
		if !now.Before(to) {
			<-t.slots
			return
		}
		if !p.sendOne(s, now, from, t, measured) {
			return
		}
	}
}

// sendOne sends one message. A message counts as sent in the window before
// the send, so a send that fails half way can only show up as lost.
func (p *point) sendOne(s sender, due, from time.Time, t *tracker, measured *atomic.Int64) bool {
	seq := p.seq.Add(1)
	inWindow := !due.Before(from)
	t.sent(seq, inWindow)
	if inWindow {
		measured.Add(1)
	}
	if err := s.send(due.UnixNano(), seq); err != nil {
		p.sendErr.CompareAndSwap(nil, &err)
		return false
	}
	return true
}
