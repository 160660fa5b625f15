package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteChatTable prints one row per target and class, then the totals.
func WriteChatTable(w io.Writer, rs []ChatResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tclass\texpected\treceived\tlost\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, r := range rs {
		for c := range numClasses {
			l := r.Latency[c]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Target, classNames[c],
				r.Expected[c], r.Received[c], r.Expected[c]-r.Received[c], l.P50, l.P90, l.P99, l.P999, l.Max)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tusers\trooms\tlargest room\tmessages\tdeliveries/s\tCPU µs/deliv\tdeliv/write\tsrv RSS MiB\tchurned sessions\twho calls\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%d\t%d\t\n", r.Target, r.Users, r.Rooms, r.LargestRoom, r.Messages,
			r.PerSec, orDash(r.CPUPerDelivery, "%.3f"), orDash(r.DeliveriesPerWrite, "%.2f"), mib(r.RSS), r.Churned, r.Whos)
	}
	tw.Flush()
}

// WriteChatPlot draws latency by percentile for each class and target,
// and returns the PNG's path.
func WriteChatPlot(dir string, when time.Time, rs []ChatResult) (string, error) {
	p := plot.New()
	p.Title.Text = "Chat scenario: latency by percentile and class (lower is better)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: tailX(0), Label: "0%"}, {Value: tailX(50), Label: "50%"},
		{Value: tailX(90), Label: "90%"}, {Value: tailX(99), Label: "99%"}, {Value: tailX(99.9), Label: "99.9%"}})
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = false, false
	dashes := [numClasses][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}
	lines := 0
	for _, r := range rs {
		for c := range numClasses {
			h := r.hists[c]
			if h == nil || h.TotalCount() == 0 {
				continue
			}
			var pts plotter.XYs
			for _, pct := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9} {
				pts = append(pts, plotter.XY{X: tailX(pct), Y: math.Max(float64(h.ValueAtQuantile(pct))/1000, 0.001)})
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return "", err
			}
			line.Color = targetColours[r.Target]
			line.Width = vg.Points(2)
			line.Dashes = dashes[c]
			p.Add(line)
			p.Legend.Add(fmt.Sprintf("%s, %s", r.Target, classNames[c]), line)
			lines++
		}
	}
	if lines == 0 { // a log axis with nothing on it cannot be drawn
		return "", errors.New("chat plot: no deliveries were measured")
	}
	p.Legend.ThumbnailWidth = vg.Points(30)
	path := filepath.Join(dir, stamp(when)+"-chat-latency.png")
	return path, p.Save(8*vg.Inch, 5*vg.Inch, path)
}
