package report

import (
	"fmt"
	"os"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

var palette = []drawing.Color{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255},
	{R: 0x94, G: 0x67, B: 0xbd, A: 255}, {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
	{R: 0xe3, G: 0x77, B: 0xc2, A: 255}, {R: 0x7f, G: 0x7f, B: 0x7f, A: 255},
	{R: 0xbc, G: 0xbd, B: 0x22, A: 255}, {R: 0x17, G: 0xbe, B: 0xcf, A: 255},
}

// writePNG draws the main chart: front door accepted/s and consumed/s per
// group on the left axis, lag per group (dashed) on the right axis.
func writePNG(path string, r *Report, s Series) error {
	if len(s.T) < 2 {
		// go-chart needs two points; draw a flat line rather than nothing.
		s.T = append(s.T, 0, 1)
		s.FrontDoor = append(s.FrontDoor, 0, 0)
	}
	var series []chart.Series
	color := 0
	add := func(name string, y []float64, secondary, dashed bool) {
		st := chart.Style{StrokeColor: palette[color%len(palette)], StrokeWidth: 2}
		if dashed {
			st.StrokeDashArray = []float64{5, 3}
			st.StrokeWidth = 1.5
		}
		color++
		// go-chart draws the primary axis on the right: rates go on the
		// secondary (left) axis, lag on the primary (right) one.
		cs := chart.ContinuousSeries{Name: name, XValues: s.T, YValues: y, Style: st}
		if !secondary {
			cs.YAxis = chart.YAxisSecondary
		}
		series = append(series, cs)
	}
	add("front door accepted/s", s.FrontDoor, false, false)
	for _, g := range s.Groups {
		add(g+" consumed/s", s.Consumed[g], false, false)
	}
	color = 1
	hasLag := false
	for _, g := range s.Groups {
		if lag, ok := s.Lag[g]; ok {
			add(g+" lag (right)", lag, true, true)
			hasLag = true
		} else {
			color++
		}
	}
	if !hasLag {
		// go-chart wants a range on the secondary axis once it is drawn.
		add("", make([]float64, len(s.T)), true, true)
	}
	c := chart.Chart{
		Title:      "accepted/s at the front door vs consumed/s and lag per group",
		Width:      1600,
		Height:     700,
		Background: chart.Style{Padding: chart.Box{Top: 50, Left: 330, Right: 20, Bottom: 20}},
		XAxis:      chart.XAxis{Name: "seconds since the start of the load"},
		YAxis:      chart.YAxis{Name: "lag (messages, dashed)"},
		YAxisSecondary: chart.YAxis{
			Name: "msg/s (solid)",
		},
		Series: series,
	}
	return renderPNG(path, &c)
}

// writeRSSPNG draws each process's RSS (MB, left) and the backlog — the lag
// summed over the clustering groups (grey, right) — over time:
// whether memory stays flat while a backlog builds and drains. Nothing is
// written when the run has no RSS samples.
func writeRSSPNG(path string, r *Report) error {
	if r.Drain == nil || len(r.Drain.Samples) < 2 {
		return nil
	}
	// A process missing from a sample (restarting, a failed scrape) has no
	// point there rather than a drop to 0.
	var t, backlog []float64
	rssT, rss := map[string][]float64{}, map[string][]float64{}
	for _, sm := range r.Drain.Samples {
		if len(sm.Groups) > 0 {
			t = append(t, sm.T)
			lag := 0.0
			for _, g := range sm.Groups {
				lag += max(g.Lag, 0)
			}
			backlog = append(backlog, lag)
		}
		for p, v := range sm.RSS {
			rssT[p] = append(rssT[p], sm.T)
			rss[p] = append(rss[p], v/1e6)
		}
	}
	if len(rss) == 0 {
		return nil
	}
	var series []chart.Series
	for i, p := range sortedKeys(rss) {
		if len(rss[p]) < 2 {
			continue
		}
		series = append(series, chart.ContinuousSeries{Name: p + " RSS MB", XValues: rssT[p], YValues: rss[p],
			YAxis: chart.YAxisSecondary, Style: chart.Style{StrokeColor: palette[i%len(palette)], StrokeWidth: 2}})
	}
	if len(t) < 2 {
		// go-chart wants a range on the primary axis.
		t, backlog = []float64{0, 1}, []float64{0, 0}
	}
	series = append(series, chart.ContinuousSeries{Name: "backlog: lag of every group (grey, right)", XValues: t, YValues: backlog,
		Style: chart.Style{StrokeColor: palette[7], StrokeWidth: 1.5}})
	whole := func(v any) string {
		if f, ok := v.(float64); ok {
			return fmt.Sprintf("%.0f", f)
		}
		return fmt.Sprint(v)
	}
	c := chart.Chart{
		Title:          "resident memory per process vs the backlog",
		Width:          1600,
		Height:         600,
		Background:     chart.Style{Padding: chart.Box{Top: 50, Left: 330, Right: 20, Bottom: 20}},
		XAxis:          chart.XAxis{Name: "seconds since the start of the load", ValueFormatter: whole, Ticks: ticks(r.Drain.Samples[len(r.Drain.Samples)-1].T)},
		YAxis:          chart.YAxis{Name: "messages not yet consumed (grey)", ValueFormatter: whole},
		YAxisSecondary: chart.YAxis{Name: "RSS MB (colours)", ValueFormatter: whole},
		Series:         series,
	}
	return renderPNG(path, &c)
}

// renderPNG writes c, with its legend on the left, to path.
func renderPNG(path string, c *chart.Chart) error {
	c.Elements = []chart.Renderable{chart.LegendLeft(c)}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.Render(chart.PNG, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ticks are about ten round marks from 0 to end (seconds).
func ticks(end float64) []chart.Tick {
	step := 1.0
	for _, m := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600} {
		step = m
		if end/m <= 12 {
			break
		}
	}
	var out []chart.Tick
	for v := 0.0; v <= end+step/2; v += step {
		out = append(out, chart.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
	}
	return out
}
