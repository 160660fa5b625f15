package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var targetColours = map[Target]color.Color{
	TargetParley: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	TargetNATS:   color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	TargetFloor:  color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	// TargetParleyTLS is Parley's blue, lighter.
	TargetParleyTLS: color.RGBA{R: 0x6b, G: 0xae, B: 0xd6, A: 0xff},
	// TargetParleyWS is Parley's blue, darker.
	TargetParleyWS: color.RGBA{R: 0x0b, G: 0x3d, B: 0x6b, A: 0xff},
	// TargetParleyOneLoop is Parley's blue, greyed.
	TargetParleyOneLoop: color.RGBA{R: 0x7f, G: 0x8c, B: 0x99, A: 0xff},
	TargetCentrifugo:    color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	TargetRedis:         color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

// WritePlots draws, for each rate, the latency by percentile of every
// target at the largest connection count (HDR style: the x axis stretches
// the tail), and deliveries per second against connection count. It
// returns the paths of the PNG files. With several rounds it draws the
// first.
func WritePlots(dir string, when time.Time, rs []Result) ([]string, error) {
	rs = slices.DeleteFunc(slices.Clone(rs), func(r Result) bool { return r.Round > 1 })
	var paths []string
	for _, rate := range rates(rs) {
		p, err := latencyPlot(rs, rate)
		if err != nil {
			return paths, err
		}
		path := filepath.Join(dir, fmt.Sprintf("%s-latency-%s.png", stamp(when), fileRate(rate)))
		if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	p, err := throughputPlot(rs)
	if err != nil {
		return paths, err
	}
	path := filepath.Join(dir, stamp(when)+"-throughput.png")
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return paths, err
	}
	return append(paths, path), nil
}

func fileRate(rate float64) string {
	if rate == 0 {
		return "max"
	}
	return fmt.Sprintf("%g", rate)
}

func rates(rs []Result) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, r := range rs {
		if !seen[r.Rate] {
			seen[r.Rate] = true
			out = append(out, r.Rate)
		}
	}
	return out
}

// tailX maps a percentile to the HDR plot's x axis: 1/(1-p), on a log
// scale, so 90%, 99%, 99.9% are evenly spaced.
func tailX(pct float64) float64 { return 1 / (1 - pct/100) }

func latencyPlot(rs []Result, rate float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency by percentile, rate " + fileRate(rate) + " msg/s (lower is better)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: tailX(0), Label: "0%"}, {Value: tailX(50), Label: "50%"},
		{Value: tailX(90), Label: "90%"}, {Value: tailX(99), Label: "99%"}, {Value: tailX(99.9), Label: "99.9%"}, {Value: tailX(99.99), Label: "99.99%"}})
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	// The curves rise to the right: the bottom right corner stays free.
	p.Legend.Top = false
	p.Legend.Left = false
	for _, r := range largestConns(rs, rate) {
		if r.hist == nil && r.Histogram != nil {
			r.hist = hdrhistogram.Import(r.Histogram) // a result read back from JSON
		}
		if r.hist == nil || r.hist.TotalCount() == 0 {
			continue
		}
		var pts plotter.XYs
		for _, pct := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99} {
			v := math.Max(float64(r.hist.ValueAtQuantile(pct))/1000, 0.001)
			pts = append(pts, plotter.XY{X: tailX(pct), Y: v})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = targetColours[r.Target]
		line.Width = vg.Points(2)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (%d conns)", r.Target, r.Conns), line)
	}
	return p, nil
}

// largestConns picks, per target, the result at rate with the most
// connections.
func largestConns(rs []Result, rate float64) []Result {
	best := map[Target]Result{}
	for _, r := range rs {
		if r.Rate == rate && r.Conns >= best[r.Target].Conns {
			best[r.Target] = r
		}
	}
	out := make([]Result, 0, len(best))
	for _, t := range AllTargets {
		if r, ok := best[t]; ok {
			out = append(out, r)
		}
	}
	return out
}

// throughputPlot draws deliveries per second against connection count, one
// line per target and rate; without a connection sweep it draws bars, one
// group per rate.
func throughputPlot(rs []Result) (*plot.Plot, error) {
	conns := map[int]bool{}
	for _, r := range rs {
		conns[r.Conns] = true
	}
	if len(conns) == 1 {
		return throughputBars(rs)
	}
	p := plot.New()
	p.Title.Text = "Deliveries per second by connection count (higher is better)"
	p.X.Label.Text = "connections"
	p.Y.Label.Text = "deliveries per second"
	p.Legend.Top = true
	p.Legend.Left = true
	for _, t := range AllTargets {
		for _, rate := range rates(rs) {
			var pts plotter.XYs
			for _, r := range rs {
				if r.Target == t && r.Rate == rate {
					pts = append(pts, plotter.XY{X: float64(r.Conns), Y: r.PerSec})
				}
			}
			if len(pts) == 0 {
				continue
			}
			sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = targetColours[t], targetColours[t]
			p.Add(line, points)
			p.Legend.Add(fmt.Sprintf("%s, rate %s", t, fileRate(rate)), line)
		}
	}
	return p, nil
}

func throughputBars(rs []Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Deliveries per second, %d connections (higher is better)", rs[0].Conns)
	p.Y.Label.Text = "deliveries per second"
	p.Legend.Top = true
	p.Legend.Left = true // above the smallest bars
	rateList := rates(rs)
	labels := make([]string, len(rateList))
	for i, rate := range rateList {
		labels[i] = "rate " + fileRate(rate)
	}
	width := vg.Points(18)
	var targets []Target
	for _, t := range AllTargets {
		for _, r := range rs {
			if r.Target == t {
				targets = append(targets, t)
				break
			}
		}
	}
	for i, t := range targets {
		vals := make(plotter.Values, len(rateList))
		for j, rate := range rateList {
			for _, r := range rs {
				if r.Target == t && r.Rate == rate {
					vals[j] = r.PerSec
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bars.Color = targetColours[t]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(targets)-1)/2)
		p.Add(bars)
		p.Legend.Add(string(t), bars)
	}
	p.NominalX(labels...)
	return p, nil
}
