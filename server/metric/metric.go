// Package metric is the one instrument the hub and the cluster broker
// share with the admin endpoint: a histogram of durations whose Observe
// takes no lock and allocates nothing, read whole at scrape time.
package metric

import "sync/atomic"

// Bounds are the upper bounds, in seconds, of Histogram's
// buckets: 50 µs to 10 s.
var Bounds = [numBounds]float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

const numBounds = 16

// boundsNS are Bounds in nanoseconds, for Observe's comparisons.
var boundsNS = func() (b [numBounds]int64) {
	for i, s := range Bounds {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// Histogram counts observations in Bounds' buckets with atomics:
// Observe takes no lock and allocates nothing. The zero value is ready.
type Histogram struct {
	counts [numBounds + 1]atomic.Uint64 // one per bound, and +Inf
	sum    atomic.Uint64                // nanoseconds
}

// Observe records d nanoseconds. Safe from any goroutine.
func (h *Histogram) Observe(ns int64) {
	i := 0
	for i < numBounds && ns > boundsNS[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(uint64(max(ns, 0)))
}

// Snapshot is a Histogram read at one moment: cumulative counts
// per bound (the Prometheus form), the total count and the sum in seconds.
type Snapshot struct {
	Buckets map[float64]uint64
	Count   uint64
	Sum     float64
}

// Add merges o into s.
func (s *Snapshot) Add(o Snapshot) {
	if s.Buckets == nil {
		s.Buckets = map[float64]uint64{}
	}
	for b, n := range o.Buckets {
		s.Buckets[b] += n
	}
	s.Count += o.Count
	s.Sum += o.Sum
}

// Snapshot reads h. Safe from any goroutine.
func (h *Histogram) Snapshot() Snapshot {
	out := Snapshot{Buckets: make(map[float64]uint64, len(Bounds))}
	var cum uint64
	for i, b := range Bounds {
		cum += h.counts[i].Load()
		out.Buckets[b] = cum
	}
	out.Count = cum + h.counts[len(Bounds)].Load()
	out.Sum = float64(h.sum.Load()) / 1e9
	return out
}
