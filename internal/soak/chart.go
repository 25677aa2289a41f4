package soak

import (
	"fmt"
	"image/color"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series are the soak's time series, bucketed, in minutes from its start:
// what the chart draws.
type Series struct {
	// Bucket is the width of a bucket.
	Bucket time.Duration
	// Latency are the p50, p90 and p99 of each bucket's requests, in ms
	// (buckets without requests left out).
	P50, P90, P99 plotter.XYs
	// Outcomes are each bucket's requests by outcome, per second, for every
	// outcome but data.
	Outcomes map[string]plotter.XYs
	// RSS is each replica process's RSS, in MiB, by its label.
	RSS map[string]plotter.XYs
	// Faults are the fault windows, in minutes.
	Faults []Span
}

// MakeSeries buckets what the soak recorded: about 120 buckets, none
// under a second.
func MakeSeries(in Input) Series {
	d := in.End.Sub(in.Start)
	s := Series{Bucket: max((d / 120).Round(time.Second), time.Second), Outcomes: map[string]plotter.XYs{}, RSS: map[string]plotter.XYs{}}
	minutes := func(t time.Time) float64 { return t.Sub(in.Start).Minutes() }
	n := int(math.Ceil(float64(d) / float64(s.Bucket)))
	lat := make([][]time.Duration, n)
	counts := map[string][]float64{}
	for _, r := range in.Requests {
		i := int(r.At.Sub(in.Start) / s.Bucket)
		if i < 0 || i >= n {
			continue
		}
		lat[i] = append(lat[i], r.Latency)
		if r.Outcome != OutcomeData {
			if counts[r.Outcome] == nil {
				counts[r.Outcome] = make([]float64, n)
			}
			counts[r.Outcome][i]++
		}
	}
	mid := func(i int) float64 { return (time.Duration(i)*s.Bucket + s.Bucket/2).Minutes() }
	for i, ds := range lat {
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		for _, p := range []struct {
			xys *plotter.XYs
			q   float64
		}{{&s.P50, 0.5}, {&s.P90, 0.9}, {&s.P99, 0.99}} {
			*p.xys = append(*p.xys, plotter.XY{X: mid(i), Y: max(ms(Percentile(ds, p.q)), 0.01)})
		}
	}
	for code, cs := range counts {
		xys := make(plotter.XYs, n)
		for i, c := range cs {
			xys[i] = plotter.XY{X: mid(i), Y: c / s.Bucket.Seconds()}
		}
		s.Outcomes[code] = xys
	}
	labels := processLabels(in.Processes)
	for _, r := range in.Resources {
		l := labels[r.PID]
		if l == "" {
			l = fmt.Sprintf("%s (pid %d)", r.Replica, r.PID)
		}
		s.RSS[l] = append(s.RSS[l], plotter.XY{X: minutes(r.At), Y: float64(r.RSS) / (1 << 20)})
	}
	for _, w := range in.Windows {
		s.Faults = append(s.Faults, Span{Label: w.Label, Kind: w.Kind, From: minutes(w.Start), To: minutes(w.End)})
	}
	return s
}

// processLabels names each replica process: the replica, and "restarted"
// for a later life of it.
func processLabels(ps []Process) map[int]string {
	out := map[int]string{}
	lives := map[string]int{}
	for _, p := range ps {
		lives[p.Replica]++
		out[p.PID] = p.Replica
		if lives[p.Replica] > 1 {
			out[p.PID] = fmt.Sprintf("%s, restarted", p.Replica)
		}
	}
	return out
}

// minuteTicks marks every minute (every five past twenty), labelled.
type minuteTicks struct{}

// Ticks returns the ticks of [lo, hi] minutes.
func (minuteTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1.0
	if hi-lo > 20 {
		step = 5
	}
	var ts []plot.Tick
	for m := math.Ceil(lo/step) * step; m <= hi; m += step {
		ts = append(ts, plot.Tick{Value: m, Label: fmt.Sprintf("%g", m)})
	}
	return ts
}

// plainTicks are gonum's default ticks, labelled without trailing zeros.
type plainTicks struct{}

// Ticks returns the default ticks of [lo, hi], relabelled.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// logTicks label 1, 2 and 5 times each power of ten.
type logTicks struct{}

// Ticks returns the ticks of [lo, hi] on a log scale.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for p := math.Floor(math.Log10(lo)); p <= math.Ceil(math.Log10(hi)); p++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, p)
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return ts
}

// faultColor shades a fault window by what failed: the upstream (orange,
// red for the outage), Redis (purple), a replica (blue).
func faultColor(k Kind) color.Color {
	switch k {
	case KindUpstreamOutage:
		return color.NRGBA{R: 230, G: 60, B: 50, A: 50}
	case KindRedisKill:
		return color.NRGBA{R: 140, G: 80, B: 200, A: 50}
	case KindReplicaKill, KindReplicaDrain:
		return color.NRGBA{R: 50, G: 110, B: 220, A: 50}
	}
	return color.NRGBA{R: 240, G: 150, B: 30, A: 50}
}

// bands shades the fault windows over a plot's whole height, with their
// labels when labelled.
type bands struct {
	spans    []Span
	labelled bool
}

// Plot draws the bands.
func (b bands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := text.Style{Color: color.NRGBA{A: 200}, Font: p.X.Tick.Label.Font, Rotation: math.Pi / 2, XAlign: draw.XRight, YAlign: draw.YTop, Handler: p.X.Tick.Label.Handler}
	for _, s := range b.spans {
		x0, x1 := trX(s.From), trX(s.To)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		c.FillPolygon(faultColor(s.Kind), []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
		if b.labelled {
			c.FillText(sty, vg.Point{X: x0 + 2, Y: c.Max.Y - 4}, s.Label)
		}
	}
}

// Chart draws the soak as a PNG: latency percentiles, outcomes other than
// a clean answer, and each replica's RSS, over time, with the fault
// windows shaded and labelled.
func Chart(in Input, w io.Writer) error {
	s := MakeSeries(in)
	end := in.End.Sub(in.Start).Minutes()
	newPlot := func(title, ylabel string) *plot.Plot {
		p := plot.New()
		for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
			&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
			f.Variant = "Sans"
		}
		p.Title.Text = title
		p.Title.TextStyle.Font.Size = vg.Points(13)
		p.X.Label.Text = "minutes since the start"
		p.Y.Label.Text = ylabel
		p.X.Min, p.X.Max = 0, end
		p.X.Tick.Marker = minuteTicks{}
		p.Y.Tick.Marker = plainTicks{}
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font.Size = vg.Points(9)
		p.Legend.ThumbnailWidth = vg.Points(24)
		p.Legend.Padding = vg.Points(3)
		return p
	}
	add := func(p *plot.Plot, name string, xys plotter.XYs, i int, dashed bool) error {
		if len(xys) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("soak chart: %s: %w", name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}

	lat := newPlot(fmt.Sprintf("Client-side latency through HAProxy (every %s)", s.Bucket), "ms (log scale)")
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = logTicks{}
	lat.Add(bands{spans: s.Faults, labelled: true})
	for i, l := range []struct {
		name string
		xys  plotter.XYs
	}{{"p50", s.P50}, {"p90", s.P90}, {"p99", s.P99}} {
		if err := add(lat, l.name, l.xys, i, false); err != nil {
			return err
		}
	}

	out := newPlot("Requests by outcome other than a clean answer (stale: served by stale-if-error)", "requests/s")
	out.Add(bands{spans: s.Faults})
	out.Y.Min = 0
	for i, code := range slices.Sorted(maps.Keys(s.Outcomes)) {
		if err := add(out, code, s.Outcomes[code], i, code == OutcomeStale); err != nil {
			return err
		}
	}
	if len(s.Outcomes) == 0 {
		out.Y.Max = 1
		out.Legend.Add("none")
	}

	rss := newPlot("RSS per replica process", "MiB")
	rss.Add(bands{spans: s.Faults})
	rss.Y.Min = 0
	for i, name := range slices.Sorted(maps.Keys(s.RSS)) {
		if err := add(rss, name, s.RSS[name], i, false); err != nil {
			return err
		}
	}

	// Room above the lines for the legends.
	lat.Y.Max *= 4
	out.Y.Max *= 1.3
	rss.Y.Max *= 1.2

	img := vgimg.NewWith(vgimg.UseWH(13*vg.Inch, 12*vg.Inch), vgimg.UseDPI(110))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(12), PadY: vg.Points(14)}
	plots := [][]*plot.Plot{{lat}, {out}, {rss}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}
