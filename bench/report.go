package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints one row per result and, when several targets ran, the
// ratios of Parley to the others.
func WriteTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tconns\trate\tdeliveries/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\texpected\treceived\tlost\tclosed\tconnect s\tsrv RSS MiB\tRSS/conn KiB\tsrv CPU s\tgen CPU s\tCPU µs/deliv\tdeliv/write\t")
	for _, r := range rs {
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

// writeRatios prints parley/nats and parley/floor for every point both ran.
// Above 1 is better for Parley in deliveries/s, worse in latency.
func writeRatios(w io.Writer, rs []Result) {
	type key struct {
		conns int
		rate  float64
	}
	by := map[Target]map[key]Result{}
	for _, r := range rs {
		if by[r.Target] == nil {
			by[r.Target] = map[key]Result{}
		}
		by[r.Target][key{r.Conns, r.Rate}] = r
	}
	var lines []string
	for _, r := range rs {
		others := []Target{TargetRedis, TargetNATS, TargetFloor}
		switch r.Target {
		case TargetParley:
		case TargetParleyTLS, TargetParleyWS:
			others = []Target{TargetParley, TargetCentrifugo} // what the transport costs, and the one it competes with
		default:
			continue
		}
		for _, other := range others {
			o, ok := by[other][key{r.Conns, r.Rate}]
			if !ok {
				continue
			}
			lines = append(lines, fmt.Sprintf("%s/%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", r.Target, other, r.Conns, rateCell(r),
				ratio(r.PerSec, o.PerSec), ratio(r.Latency.P50, o.Latency.P50), ratio(r.Latency.P90, o.Latency.P90),
				ratio(r.Latency.P99, o.Latency.P99), ratio(r.Latency.P999, o.Latency.P999), ratio(r.Latency.Max, o.Latency.Max)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nratios (deliveries/s: above 1 means Parley delivers more; latency: below 1 means Parley is faster)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ratio\tconns\trate\tdeliveries/s\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
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
