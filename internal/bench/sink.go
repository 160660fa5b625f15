package bench

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// completionRing is how many sequence numbers the sink tracks at once;
// more than the largest inflight window by far.
const completionRing = 1 << 16

// sink counts and times deliveries for one group of receivers. Deliveries
// are recorded into shards, each with its own lock and histogram, so event
// loops and subscription goroutines rarely contend.
type sink struct {
	receivers int // connections in the group: deliveries per message
	shards    []*shard
	window    atomic.Pointer[window]
	counts    [completionRing]atomic.Int32 // deliveries so far, by seq
	completed chan uint64                  // seqs every receiver has got
	closed    atomic.Int64                 // receivers closed by the server
	reasons   sync.Map                     // bye reason -> *atomic.Int64
	recovered atomic.Int64                 // resumes that got every message missed
	lost      atomic.Int64                 // resumes the server could not fill
}

// window is the measured interval: messages due in [from, to).
type window struct{ from, to int64 }

type shard struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	received int64
}

func newSink(receivers, shards int) *sink {
	s := &sink{receivers: receivers, completed: make(chan uint64, completionRing)}
	for i := 0; i < shards; i++ {
		s.shards = append(s.shards, &shard{hist: NewHistogram()})
	}
	s.window.Store(&window{})
	return s
}

// setWindow starts a measured interval and clears the previous figures,
// the partial counts of messages a closed receiver never got included.
func (s *sink) setWindow(from, to time.Time) {
	for i := range s.counts {
		s.counts[i].Store(0)
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		sh.hist.Reset()
		sh.received = 0
		sh.mu.Unlock()
	}
	s.window.Store(&window{from.UnixNano(), to.UnixNano()})
}

// deliver records one delivery of message seq, due at due (Unix ns), into
// shard i.
func (s *sink) deliver(i int, due int64, seq uint64, now int64) {
	if w := s.window.Load(); due >= w.from && due < w.to {
		sh := s.shards[i%len(s.shards)]
		sh.mu.Lock()
		Record(sh.hist, time.Duration(now-due))
		sh.received++
		sh.mu.Unlock()
	}
	c := &s.counts[seq%completionRing]
	if c.Add(1) == int32(s.receivers) {
		c.Store(0)
		select {
		case s.completed <- seq:
		default: // nobody is waiting: not in saturation mode
		}
	}
}

// closedBy records that the server closed a receiver with reason.
func (s *sink) closedBy(reason string) {
	s.closed.Add(1)
	v, _ := s.reasons.LoadOrStore(reason, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// resumed records a receiver's resume after a drop.
func (s *sink) resumed(recovered bool) {
	if recovered {
		s.recovered.Add(1)
	} else {
		s.lost.Add(1)
	}
}

// collect merges the shards' figures.
func (s *sink) collect() GroupReport {
	var r GroupReport
	hs := make([]*hdrhistogram.Histogram, 0, len(s.shards))
	for _, sh := range s.shards {
		sh.mu.Lock()
		hs = append(hs, sh.hist)
		r.Received += sh.received
		sh.mu.Unlock()
	}
	r.Hist = Merge(hs...).Export()
	r.Closed = s.closed.Load()
	r.Resumed, r.Unrecovered = s.recovered.Load(), s.lost.Load()
	r.Reasons = map[string]int64{}
	s.reasons.Range(func(k, v any) bool {
		r.Reasons[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return r
}

// GroupReport is what one group of receivers measured in one run.
type GroupReport struct {
	Hist     *hdrhistogram.Snapshot `json:"hist"`
	Received int64                  `json:"received"`
	Closed   int64                  `json:"closed"`
	Reasons  map[string]int64       `json:"reasons,omitempty"`
	// Resumed and Unrecovered count receivers that dropped and came back:
	// with every message they missed replayed, or told it was not.
	Resumed     int64 `json:"resumed,omitempty"`
	Unrecovered int64 `json:"unrecovered,omitempty"`
}
