package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// checkChartName accepts the file names --chart can draw: .svg or .png.
func checkChartName(name string) error {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".svg", ".png":
		return nil
	}
	return usageErrorf("--chart %s: the name must end in .svg or .png", name)
}

// writeChart draws each mode's latency by percentile (the latency below
// which that share of its successful calls finished) on a log scale, and
// saves it in file as SVG or PNG according to its extension.
func writeChart(file, subtitle string, runs []*modeRun) error {
	p := plot.New()
	p.Title.Text = "mcpool bench: call latency by percentile\n" + subtitle
	p.X.Label.Text = "percentile of successful calls (%)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.X.Min, p.X.Max = 0, 100
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = decadeTicks{}
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = plot.ConstantTicks(percentTicks())
	// Bottom right: under the curves, which rise to the right.
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(8), vg.Points(8)
	drawn := 0
	for i, r := range runs {
		if len(r.ok) == 0 {
			continue // nothing to draw, and log scales have no zero
		}
		pts := percentilePoints(r)
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		line.Dashes = plotutil.Dashes(i)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s: p50 %s, p99 %s, %.0f calls/s", r.mode,
			formatMS(percentile(r.ok, 0.50)), formatMS(percentile(r.ok, 0.99)), r.callsPerSecond()), line)
		drawn++
	}
	if drawn == 0 {
		return fmt.Errorf("--chart %s: no call succeeded: nothing to draw", file)
	}
	// Room for the legend under the curves: the lowest 30% of the
	// latency axis (in log terms) is left empty.
	if p.Y.Min > 0 && p.Y.Max > p.Y.Min {
		span := math.Log(p.Y.Max / p.Y.Min)
		p.Y.Min /= math.Exp(span * 0.3 / 0.7)
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, file); err != nil {
		return fmt.Errorf("--chart: %w", err)
	}
	return nil
}

// percentilePoints samples r's latencies (ms) at every half percentile,
// and more finely in the tail, where the modes differ most.
func percentilePoints(r *modeRun) plotter.XYs {
	var qs []float64
	for q := 0.5; q < 99; q += 0.5 {
		qs = append(qs, q)
	}
	for q := 99.0; q <= 100; q += 0.1 {
		qs = append(qs, math.Min(q, 100))
	}
	pts := make(plotter.XYs, len(qs))
	for i, q := range qs {
		pts[i].X = q
		pts[i].Y = ms(percentile(r.ok, q/100))
	}
	return pts
}

// decadeTicks labels a log axis at 1, 2 and 5 times each power of ten, so
// that a range within one decade (0.3ms to 4ms, say) still gets labels.
type decadeTicks struct{}

// Ticks returns the labelled ticks between lo and hi, both above zero.
func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	if len(ticks) < 2 {
		// A range narrower than 1-2-5 steps: label its ends.
		ticks = []plot.Tick{
			{Value: lo, Label: strconv.FormatFloat(lo, 'g', 2, 64)},
			{Value: hi, Label: strconv.FormatFloat(hi, 'g', 2, 64)},
		}
	}
	return ticks
}

// percentTicks labels the percentile axis every 10%, with lesser marks
// every 5%.
func percentTicks() []plot.Tick {
	var ticks []plot.Tick
	for v := 0; v <= 100; v += 5 {
		t := plot.Tick{Value: float64(v)}
		if v%10 == 0 {
			t.Label = strconv.Itoa(v)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
