package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms cover 1 µs to 2 minutes with 3 significant digits,
// in microseconds.
const (
	histMin    = 1
	histMax    = int64(2 * time.Minute / time.Microsecond)
	histDigits = 3
)

// NewHistogram returns an empty latency histogram (values in µs). A
// histogram is not safe for concurrent use: each event loop records into
// its own, and they are merged at the end.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

// Record adds one latency, clamped into the histogram's range.
func Record(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	_ = h.RecordValue(min(max(us, histMin), histMax))
}

// Merge returns one histogram holding the values of all of hs.
func Merge(hs ...*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	out := NewHistogram()
	for _, h := range hs {
		if h != nil {
			out.Merge(h)
		}
	}
	return out
}

// Percentiles is the latency summary of one run, in milliseconds.
type Percentiles struct {
	P50, P90, P99, P999, Max float64
	Count                    int64
}

// Summarize reads the reported percentiles from h.
func Summarize(h *hdrhistogram.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Count: h.TotalCount(),
	}
}
