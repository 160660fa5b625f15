package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints one row per result, with its round when there were
// several, and, when several targets ran, the ratios of Parley to the
// others.
func WriteTable(w io.Writer, rs []Result) {
	rounds := slices.ContainsFunc(rs, func(r Result) bool { return r.Round > 1 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if rounds {
		fmt.Fprint(tw, "round\t")
	}
	fmt.Fprintln(tw, "target\tconns\trate\tdeliveries/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\texpected\treceived\tlost\tclosed\tconnect s\tsrv RSS MiB\tRSS/conn KiB\tsrv CPU s\tgen CPU s\tCPU µs/deliv\tdeliv/write\t")
	for _, r := range rs {
		if rounds {
			fmt.Fprintf(tw, "%d\t", r.Round)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t\n",
			r.Target, r.Conns, rateCell(r), r.PerSec, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999, r.Latency.Max,
			r.Expected, r.Received, r.Lost, r.Closed, r.ConnectSecs, mib(r.RSSEnd), kibPerConn(r), r.ServerCPU, r.GenCPU,
			orDash(r.CPUPerDelivery, "%.3f"), orDash(r.DeliveriesPerWrite, "%.1f"))
	}
	tw.Flush()
	writeRatios(w, rs)
	for _, r := range rs {
		if r.Lost != 0 || r.Closed != 0 || r.SendError != "" {
			fmt.Fprintf(w, "\n%s, %d conns, rate %s: %d deliveries lost, %d receivers closed %v, %d resumed (%d not recovered)",
				r.Target, r.Conns, rateCell(r), r.Lost, r.Closed, r.Reasons, r.Resumed, r.Unrecovered)
			if r.SendError != "" {
				fmt.Fprintf(w, ", send error: %s", r.SendError)
			}
			fmt.Fprintln(w)
		}
	}
}

// orDash formats v, or "-" when it was not measured (a server this run
// did not start, whose /proc it cannot read).
func orDash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func rateCell(r Result) string {
	if r.Rate == 0 {
		return fmt.Sprintf("max (inflight %d)", r.Inflight)
	}
	return fmt.Sprintf("%g/s", r.Rate)
}

func mib(b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

func kibPerConn(r Result) string {
	if r.RSSPerConn == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", r.RSSPerConn/1024)
}

// writeRatios prints Parley's ratios to the other targets for every point
// both ran. Above 1 is better for Parley in deliveries/s, worse in latency
// and CPU per delivery. With several rounds each ratio is the median of the
// rounds' own, each taken between runs a few seconds apart.
func writeRatios(w io.Writer, rs []Result) {
	type at struct {
		target       Target
		round, conns int
		rate         float64
	}
	by := map[at]Result{}
	rounds := 0
	for _, r := range rs {
		by[at{r.Target, r.Round, r.Conns, r.Rate}] = r
		rounds = max(rounds, r.Round)
	}
	var rows []*ratioRow
	index := map[string]*ratioRow{}
	for _, r := range rs {
		for _, other := range comparedWith(r.Target) {
			o, ok := by[at{other, r.Round, r.Conns, r.Rate}]
			if !ok {
				continue
			}
			key := fmt.Sprintf("%s/%s\t%d\t%s", r.Target, other, r.Conns, rateCell(r))
			if index[key] == nil {
				index[key] = &ratioRow{label: key}
				rows = append(rows, index[key])
			}
			index[key].add(r, o)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nratios (deliveries/s: above 1 means Parley delivers more, inf that the other delivered nothing; latency and CPU per delivery: below 1 means Parley is faster or cheaper)")
	if rounds > 1 {
		fmt.Fprintf(w, "each the median of %d rounds' ratios\n", rounds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ratio\tconns\trate\tdeliveries/s\tp50\tp90\tp99\tp99.9\tmax\tCPU/deliv\t")
	for _, row := range rows {
		fmt.Fprint(tw, row.label)
		for _, col := range row.cols {
			fmt.Fprintf(tw, "\t%s", medianRatio(col))
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}

// comparedWith lists the targets a target's ratios are taken against:
// Parley against one loop of its own (what the default number of loops
// gives) and the others; a Parley transport against plain Parley (what
// the transport costs) and the server it competes with.
func comparedWith(t Target) []Target {
	switch t {
	case TargetParley:
		return []Target{TargetParleyOneLoop, TargetRedis, TargetNATS, TargetFloor}
	case TargetParleyTLS, TargetParleyWS:
		return []Target{TargetParley, TargetCentrifugo}
	}
	return nil
}

// ratioRow is one pair of targets at one point: each column's ratio in
// every round, left out where the other target's figure was zero, but
// for deliveries: there a target that delivered against one that
// delivered nothing is infinitely ahead, which medianRatio prints as inf.
type ratioRow struct {
	label string
	cols  [7][]float64 // deliveries/s, p50, p90, p99, p99.9, max, CPU per delivery
}

func (row *ratioRow) add(r, o Result) {
	a := [7]float64{r.PerSec, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.CPUPerDelivery}
	b := [7]float64{o.PerSec, o.Latency.P50, o.Latency.P90, o.Latency.P99, o.Latency.P999, o.Latency.Max, o.CPUPerDelivery}
	for i := range a {
		switch {
		case b[i] != 0 && (i != 6 || a[i] != 0): // a CPU figure of 0 was not measured
			row.cols[i] = append(row.cols[i], a[i]/b[i])
		case i == 0 && a[i] > 0: // the other delivered nothing
			row.cols[i] = append(row.cols[i], math.Inf(1))
		}
	}
}

// medianRatio formats the median of vs, or n/a when there is none.
func medianRatio(vs []float64) string {
	if len(vs) == 0 {
		return "n/a"
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	if math.IsInf(m, 1) {
		return "inf"
	}
	return fmt.Sprintf("%.2f", m)
}

// Report is the JSON file of one target's results.
type Report struct {
	Time    time.Time `json:"time"`
	Target  Target    `json:"target"`
	Config  Config    `json:"config"`
	Results []Result  `json:"results"`
}

// WriteJSON writes bench-results/<time>-<target>.json for each target and
// returns the paths.
func WriteJSON(dir string, when time.Time, cfg Config, rs []Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg.Log = nil
	var paths []string
	for _, t := range cfg.withDefaults().Targets {
		rep := Report{Time: when, Target: t, Config: cfg}
		for _, r := range rs {
			if r.Target == t {
				rep.Results = append(rep.Results, r)
			}
		}
		if len(rep.Results) == 0 {
			continue
		}
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return paths, err
		}
		path := filepath.Join(dir, stamp(when)+"-"+string(t)+".json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func stamp(t time.Time) string { return strings.ReplaceAll(t.UTC().Format("20060102-150405"), ":", "") }
