package bench

import (
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestScheduleIsEvenAndInterleaved(t *testing.T) {
	start := time.Unix(1000, 0)
	a := Schedule{Start: start, Rate: 100, Senders: 2, Index: 0}
	b := Schedule{Start: start, Rate: 100, Senders: 2, Index: 1}
	// Together: one message every 10ms, alternating a, b, a, b...
	for k := int64(0); k < 50; k++ {
		if got, want := a.Due(k), start.Add(time.Duration(2*k)*10*time.Millisecond); got != want {
			t.Fatalf("a.Due(%d) = %v, want %v", k, got, want)
		}
		if got, want := b.Due(k), start.Add(time.Duration(2*k+1)*10*time.Millisecond); got != want {
			t.Fatalf("b.Due(%d) = %v, want %v", k, got, want)
		}
	}
	from, to := start.Add(2*time.Second), start.Add(12*time.Second)
	if n := a.Count(from, to) + b.Count(from, to); n != 1000 {
		t.Fatalf("10s at 100/s: %d messages due", n)
	}
	if a.Count(start.Add(-time.Second), start) != 0 {
		t.Fatal("nothing is due before the start")
	}
}

func TestScheduleFractionalRate(t *testing.T) {
	s := Schedule{Start: time.Unix(0, 0), Rate: 3, Senders: 1}
	if s.Due(3) != time.Unix(1, 0) {
		t.Fatalf("Due(3) at 3/s = %v", s.Due(3))
	}
	if n := s.Count(time.Unix(0, 0), time.Unix(10, 0)); n != 30 {
		t.Fatalf("Count = %d", n)
	}
}

func TestBodyRoundTrip(t *testing.T) {
	b := Body(nil, 1763716800123456789, 42, 100)
	if len(b) != 100 {
		t.Fatalf("len %d", len(b))
	}
	due, seq, ok := ParseBody(b)
	if !ok || due != 1763716800123456789 || seq != 42 {
		t.Fatalf("ParseBody = %d %d %v", due, seq, ok)
	}
	frame := []byte(`{"type":"msg","from":"s0","room":"bench","body":"` + string(b) + `","ts":1,"seq":42}`)
	if due, seq, ok = ParseFrame(frame); !ok || seq != 42 || due != 1763716800123456789 {
		t.Fatalf("ParseFrame = %d %d %v", due, seq, ok)
	}
	for _, bad := range []string{`{"type":"ping"}`, `{"type":"presence","room":"bench","count":3}`, `{"body":"nope"}`} {
		if _, _, ok := ParseFrame([]byte(bad)); ok {
			t.Fatalf("ParseFrame(%s) ok", bad)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for i := 1; i <= 900; i++ {
		Record(a, time.Duration(i)*time.Millisecond/10) // 0.1 .. 90 ms
	}
	for i := 0; i < 100; i++ {
		Record(b, time.Second)
	}
	m := Merge(a, b, nil)
	p := Summarize(m)
	if p.Count != 1000 {
		t.Fatalf("count %d", p.Count)
	}
	if math.Abs(p.P50-50) > 0.5 || p.P99 < 999 || p.Max < 999 {
		t.Fatalf("percentiles %+v", p)
	}
	// A histogram survives the export used between worker processes.
	back := hdrhistogram.Import(m.Export())
	if !back.Equals(m) {
		t.Fatal("export/import changed the histogram")
	}
}

// TestThreadsRuntime: the process's run time, summed over its threads,
// grows by about the CPU a busy loop burns.
func TestThreadsRuntime(t *testing.T) {
	before, ok := threadsRuntime("/proc/self")
	if !ok {
		t.Skip("no /proc/self/task/*/sched here")
	}
	// Spin for 50 ms of this process's CPU time, as the kernel's rusage
	// counts it, however loaded the machine is.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start := cpu(); cpu()-start < 50*time.Millisecond; {
	}
	after, _ := threadsRuntime("/proc/self")
	if d := after - before; d < 40*time.Millisecond || d > 10*time.Second {
		t.Fatalf("50 ms of CPU counted as %v of run time", d)
	}
}

// TestChatBodyRoundTrip: what chatBody writes parseChatBody reads back,
// and a body that is not one is refused.
func TestChatBodyRoundTrip(t *testing.T) {
	b := chatBody(nil, 1764590000123456789, 42, classDM, 9999, 100)
	if len(b) != 100 {
		t.Fatalf("body is %d bytes, want 100", len(b))
	}
	due, class, from, ok := parseChatBody(b)
	if !ok || due != 1764590000123456789 || class != classDM || from != 9999 {
		t.Fatalf("parsed %d %d %d %v", due, class, from, ok)
	}
	for _, bad := range []string{"", "1:2:3", "1:2:9:4:", "x:2:0:4:", "1:2:0:-4:", "99999999999999999999:1:0:1:"} {
		if _, _, _, ok := parseChatBody([]byte(bad)); ok {
			t.Errorf("%q parsed as a chat body", bad)
		}
	}
}

// TestRoundsTakeTurns: odd rounds run the targets as given, even rounds in
// reverse, so neither of two targets always goes first.
func TestRoundsTakeTurns(t *testing.T) {
	targets := []Target{TargetParley, TargetRedis, TargetFloor}
	var got []Target
	for round := 1; round <= 3; round++ {
		got = append(got, roundOrder(targets, round)...)
	}
	want := []Target{TargetParley, TargetRedis, TargetFloor, TargetFloor, TargetRedis, TargetParley, TargetParley, TargetRedis, TargetFloor}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if targets[0] != TargetParley {
		t.Fatalf("roundOrder reversed its argument: %v", targets)
	}
}

// TestRatiosAreMediansOfRounds: each round's ratio pairs figures of the
// same round, and the table prints their median, not the ratio of the
// medians nor the last round's.
func TestRatiosAreMediansOfRounds(t *testing.T) {
	row := func(target Target, round int, perSec, p99, cpu float64) Result {
		return Result{Target: target, Round: round, Conns: 1000, Rate: 10, PerSec: perSec, Latency: Percentiles{P50: 1, P90: 1, P99: p99, P999: 1, Max: 1}, CPUPerDelivery: cpu}
	}
	rs := []Result{
		// p99 ratios by round: 1.6, 2, 0.5. Their median is 1.60; the
		// ratio of the medians would be 8/8 = 1.00 and the last round's
		// 0.50. CPU ratios: 1.5, 1.1, 0.9, median 1.10.
		row(TargetParley, 1, 10000, 8, 6), row(TargetRedis, 1, 10000, 5, 4),
		row(TargetRedis, 2, 10000, 10, 4), row(TargetParley, 2, 10000, 20, 4.4),
		row(TargetParley, 3, 10000, 4, 3.6), row(TargetRedis, 3, 10000, 8, 4),
	}
	var b strings.Builder
	writeRatios(&b, rs)
	out := b.String()
	if !strings.Contains(out, "median of 3 rounds") {
		t.Fatalf("no rounds line:\n%s", out)
	}
	var fields []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "parley/redis" {
			fields = f
		}
	}
	// parley/redis 1000 10/s deliveries p50 p90 p99 p99.9 max cpu
	want := []string{"parley/redis", "1000", "10/s", "1.00", "1.00", "1.00", "1.60", "1.00", "1.00", "1.10"}
	if !slices.Equal(fields, want) {
		t.Fatalf("ratio row %q, want %q:\n%s", fields, want, out)
	}
	if m := medianRatio([]float64{3, 1, 2, 10}); m != "2.50" {
		t.Fatalf("median of four = %s, want 2.50", m)
	}
	// Against a target that delivered nothing, the deliveries' ratio is
	// inf; its latencies, which it has none of, are left out.
	var none ratioRow
	none.add(Result{PerSec: 1e6, Latency: Percentiles{P50: 10}, CPUPerDelivery: 0.5}, Result{})
	if d, p50 := medianRatio(none.cols[0]), medianRatio(none.cols[1]); d != "inf" || p50 != "n/a" {
		t.Fatalf("against nothing delivered: deliveries %s, p50 %s; want inf and n/a", d, p50)
	}
}
