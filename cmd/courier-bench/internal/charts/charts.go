// Package charts draws the run's PNG charts with gonum/plot: end-to-end
// latency percentiles against offered rate, delivered throughput against
// offered rate with the raw limits as horizontal lines, the edge's memory
// per session against sessions, and group fan-out frames/s against
// deliveries/s. Builds share a colour per series; the baseline is dashed.
package charts

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/courierhq/courier/cmd/courier-bench/internal/report"
)

// Write draws every chart that has data into dir and returns the file
// names written.
func Write(r *report.Results, dir string) (names []string, err error) {
	// gonum/plot panics on data it cannot draw (e.g. 0 on a log axis); a
	// chart is not worth the run's results.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("draw charts: %v", p)
		}
	}()
	r = firstRound(r)
	for _, c := range []struct {
		name string
		draw func(*report.Results) (*plot.Plot, bool)
	}{
		{"latency.png", latency},
		{"throughput.png", throughput},
		{"memory.png", memory},
		{"fanout.png", fanout},
	} {
		p, ok := c.draw(r)
		if !ok {
			continue
		}
		if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, c.name)); err != nil {
			return names, fmt.Errorf("draw %s: %w", c.name, err)
		}
		names = append(names, c.name)
	}
	return names, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = cleanTicks{}
	p.Y.Tick.Marker = cleanTicks{}
	return p
}

// cleanTicks are gonum's default ticks labelled without trailing zeros.
type cleanTicks struct{}

func (cleanTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

func logAxis(a *plot.Axis) {
	a.Scale = plot.LogScale{}
	a.Tick.Marker = plot.LogTicks{Prec: -1}
}

func style(l *plotter.Line, s *plotter.Scatter, series int, baseline bool) {
	c := plotutil.Color(series)
	l.LineStyle.Color = c
	l.LineStyle.Width = vg.Points(1.5)
	if s != nil {
		s.GlyphStyle.Color = c
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		s.GlyphStyle.Radius = vg.Points(2.5)
	}
	if baseline {
		l.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		if s != nil {
			s.GlyphStyle.Shape = draw.BoxGlyph{}
		}
	}
}

func addSeries(p *plot.Plot, name string, xys plotter.XYs, series int, baseline bool) {
	if len(xys) == 0 {
		return
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return
	}
	style(l, s, series, baseline)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
}

func hline(p *plot.Plot, name string, y float64, c color.Color) {
	f := plotter.NewFunction(func(float64) float64 { return y })
	f.LineStyle.Color = c
	f.LineStyle.Width = vg.Points(1)
	f.LineStyle.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(f)
	p.Legend.Add(fmt.Sprintf("%s (%.0f)", name, y), f)
}

func suffix(b report.Build, builds int) string {
	if builds < 2 {
		return ""
	}
	return " — " + b.Label + " (" + b.Rev + ")"
}

func latency(r *report.Results) (*plot.Plot, bool) {
	p := newPlot("End-to-end latency (POST due time → WebSocket frame)", "offered rate (msg/s)", "latency (ms, log scale)")
	logAxis(&p.Y)
	any := false
	bound := 0.0
	for _, b := range r.Builds {
		if b.E2E == nil {
			continue
		}
		bound = b.E2E.P99Bound
		for k, q := range []struct {
			name string
			f    func(i int) float64
		}{
			{"p50", func(i int) float64 { return b.E2E.Steps[i].Latency.P50 }},
			{"p90", func(i int) float64 { return b.E2E.Steps[i].Latency.P90 }},
			{"p99", func(i int) float64 { return b.E2E.Steps[i].Latency.P99 }},
			{"p99.9", func(i int) float64 { return b.E2E.Steps[i].Latency.P999 }},
		} {
			var xys plotter.XYs
			for i, s := range b.E2E.Steps {
				if s.Warmup || s.Latency.N == 0 {
					continue
				}
				xys = append(xys, plotter.XY{X: s.Rate, Y: math.Max(q.f(i), 0.1)})
			}
			addSeries(p, q.name+suffix(b, len(r.Builds)), xys, k, b.Label == "old")
			any = any || len(xys) > 0
		}
	}
	if bound > 0 {
		hline(p, "p99 bound, ms", bound, color.RGBA{R: 200, A: 255})
	}
	return p, any
}

func throughput(r *report.Results) (*plot.Plot, bool) {
	p := newPlot("Delivered vs offered rate, with the emulators' raw limits", "offered rate (msg/s)", "delivered (msg/s, log scale)")
	logAxis(&p.Y)
	any := false
	maxX := 0.0
	lo, hi := math.Inf(1), 0.0
	for i, b := range r.Builds {
		if b.E2E == nil {
			continue
		}
		var xys plotter.XYs
		for _, s := range b.E2E.Steps {
			if s.Warmup {
				continue
			}
			y := math.Max(s.Achieved, 0.1)
			xys = append(xys, plotter.XY{X: s.Rate, Y: y})
			maxX = math.Max(maxX, s.Rate)
			lo, hi = math.Min(lo, y), math.Max(hi, y)
		}
		name := "delivered"
		if len(r.Builds) > 1 {
			name += " — " + b.Label
		}
		addSeries(p, name, xys, i, b.Label == "old")
		any = any || len(xys) > 0
	}
	if !any {
		return p, false
	}
	ideal := plotter.NewFunction(func(x float64) float64 { return x })
	ideal.XMin, ideal.XMax = math.Max(lo/2, 0.1), maxX*1.05 // a log axis has no 0
	ideal.LineStyle.Color = color.Gray{Y: 150}
	ideal.LineStyle.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
	p.Add(ideal)
	p.Legend.Add("delivered = offered", ideal)
	for i, l := range r.Raw.Limits() {
		if l.MsgS > 0 {
			hline(p, l.Name, l.MsgS, plotutil.Color(i+3))
			lo, hi = math.Min(lo, l.MsgS), math.Max(hi, l.MsgS)
		}
	}
	p.X.Min, p.X.Max = 0, maxX*1.05
	p.Y.Min, p.Y.Max = lo/2, hi*8 // room for the legend
	return p, true
}

func memory(r *report.Results) (*plot.Plot, bool) {
	p := newPlot("ws-edge memory per idle session", "sessions", "KiB per session")
	any := false
	for i, b := range r.Builds {
		if b.Edge == nil || len(b.Edge.Idle) == 0 {
			continue
		}
		var goMem, rss plotter.XYs
		for _, pt := range b.Edge.Idle {
			goMem = append(goMem, plotter.XY{X: float64(pt.Sessions), Y: pt.GoPerSession / 1024})
			rss = append(rss, plotter.XY{X: float64(pt.Sessions), Y: pt.RSSPerSession / 1024})
		}
		addSeries(p, "Go heap + stacks"+suffix(b, len(r.Builds)), goMem, 2*i, b.Label == "old")
		addSeries(p, "RSS"+suffix(b, len(r.Builds)), rss, 2*i+1, b.Label == "old")
		any = true
	}
	p.Y.Min = 0
	return p, any
}

func fanout(r *report.Results) (*plot.Plot, bool) {
	p := newPlot("Group fan-out: 1 edge process, every delivery to all of its sessions", "deliveries/s", "frames/s delivered")
	any := false
	for i, b := range r.Builds {
		if b.Edge == nil || len(b.Edge.Group) == 0 {
			continue
		}
		var xys plotter.XYs
		for _, s := range b.Edge.Group {
			xys = append(xys, plotter.XY{X: s.Rate, Y: s.FramesPerS})
		}
		addSeries(p, "ws-edge"+suffix(b, len(r.Builds)), xys, i, b.Label == "old")
		any = true
	}
	if peer := r.Peer(); peer != nil && len(peer.Group) > 0 {
		var xys plotter.XYs
		for _, s := range peer.Group {
			xys = append(xys, plotter.XY{X: s.Rate, Y: s.FramesPerS})
		}
		addSeries(p, "peer: "+peer.Name, xys, len(r.Builds)+1, false)
	}
	p.Y.Min = 0
	return p, any
}

// firstRound is r with its first round only, and of the end-to-end
// ladders only the pairs without acks: one line per build and percentile
// (report.md's comparisons have every round, mode and spread).
func firstRound(r *report.Results) *report.Results {
	c := *r
	c.Builds = nil
	for _, b := range r.Builds {
		if b.Repeat != 0 {
			continue
		}
		if b.E2E != nil {
			e := *b.E2E
			e.Steps = nil
			for _, s := range b.E2E.Steps {
				if (s.Mode == "" || s.Mode == "pairs") && !s.Acks {
					e.Steps = append(e.Steps, s)
				}
			}
			b.E2E = &e
		}
		c.Builds = append(c.Builds, b)
	}
	return &c
}
