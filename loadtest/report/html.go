package report

import (
	"fmt"
	"html"
	"os"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/components"
	"github.com/go-echarts/go-echarts/v2/opts"
)

func lineData(v []float64) []opts.LineData {
	out := make([]opts.LineData, len(v))
	for i, x := range v {
		out[i] = opts.LineData{Value: x}
	}
	return out
}

func writeHTML(path string, r *Report, s Series) error {
	x := make([]string, len(s.T))
	for i, t := range s.T {
		x[i] = strconv.FormatFloat(t, 'f', 0, 64)
	}
	common := func(title, sub string) []charts.GlobalOpts {
		return []charts.GlobalOpts{
			charts.WithInitializationOpts(opts.Initialization{PageTitle: "seckill load report", Width: "1200px", Height: "520px"}),
			charts.WithTitleOpts(opts.Title{Title: title, Subtitle: sub}),
			charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
			charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "bottom"}),
			charts.WithXAxisOpts(opts.XAxis{Name: "s"}),
			charts.WithDataZoomOpts(opts.DataZoom{Type: "inside"}),
		}
	}
	sub := ""
	if r.Load != nil {
		l := r.Load
		sub = fmt.Sprintf("%s loop, %d requests in %.1fs: %.0f accepted/s, p50 %.2f ms, p99 %.2f ms",
			l.Mode, l.Counts.Sent, l.Elapsed.Seconds(), l.AccPerSec, l.Latency.P50, l.Latency.P99)
	}

	// Main chart: front door vs consumers (left axis), lag (right axis).
	main := charts.NewLine()
	main.SetGlobalOptions(append(common("Peak shaving: accepted/s at the front door vs consumed/s and lag per group", sub),
		charts.WithYAxisOpts(opts.YAxis{Name: "msg/s"}))...)
	main.ExtendYAxis(opts.YAxis{Name: "lag (messages)", Position: "right"})
	main.SetXAxis(x).AddSeries("front door accepted/s", lineData(s.FrontDoor))
	for _, g := range s.Groups {
		main.AddSeries(g+" consumed/s", lineData(s.Consumed[g]))
	}
	for _, g := range s.Groups {
		if lag, ok := s.Lag[g]; ok {
			main.AddSeries(g+" lag", lineData(lag), charts.WithLineChartOpts(opts.LineChart{YAxisIndex: 1}))
		}
	}

	page := components.NewPage()
	page.PageTitle = "seckill load report"
	page.AddCharts(main)

	// Consumers alone (the front door dwarfs them on the main chart).
	cons := charts.NewLine()
	cons.SetGlobalOptions(append(common("Consumed/s per group (throttled at CONSUME_RATE)", ""),
		charts.WithYAxisOpts(opts.YAxis{Name: "msg/s"}))...)
	cons.SetXAxis(x)
	for _, g := range s.Groups {
		cons.AddSeries(g, lineData(s.Consumed[g]))
	}
	page.AddCharts(cons)

	if r.Drain != nil {
		if first, _, _, ok := rssRange(r.Drain); ok {
			mem := charts.NewLine()
			mem.SetGlobalOptions(append(common("RSS per process (process_resident_memory_bytes)", ""),
				charts.WithYAxisOpts(opts.YAxis{Name: "MB"}))...)
			mem.SetXAxis(x)
			for _, svc := range sortedKeys(first) {
				v := make([]float64, len(r.Drain.Samples))
				for i, sm := range r.Drain.Samples {
					v[i] = sm.RSS[svc] / 1e6
				}
				mem.AddSeries(svc, lineData(v))
			}
			page.AddCharts(mem)
		}
	}

	if r.Load != nil && len(r.Load.Timeline) > 0 {
		lx := make([]string, len(r.Load.Timeline))
		var sent, acc, sold, errs, p99 []float64
		for i, sec := range r.Load.Timeline {
			lx[i] = strconv.FormatFloat(sec.T, 'f', 1, 64)
			sent = append(sent, float64(sec.Sent))
			acc = append(acc, float64(sec.Accepted))
			sold = append(sold, float64(sec.SoldOut))
			errs = append(errs, float64(sec.Errors))
			p99 = append(p99, sec.P99)
		}
		fd := charts.NewLine()
		fd.SetGlobalOptions(append(common("Front door, per second of the load", ""),
			charts.WithYAxisOpts(opts.YAxis{Name: "req/s"}))...)
		fd.ExtendYAxis(opts.YAxis{Name: "p99 ms", Position: "right"})
		fd.SetXAxis(lx).
			AddSeries("sent/s", lineData(sent)).
			AddSeries("accepted/s", lineData(acc)).
			AddSeries("sold_out/s", lineData(sold)).
			AddSeries("errors/s", lineData(errs)).
			AddSeries("p99 ms", lineData(p99), charts.WithLineChartOpts(opts.LineChart{YAxisIndex: 1}))
		page.AddCharts(fd)
	}

	if v := r.Verify; v != nil && v.Outcome != nil && len(v.Outcome.StockBackByDeadline) > 0 {
		o := v.Outcome
		bx := make([]string, len(o.StockBackByDeadline))
		var p50, worst, n []float64
		for i, sec := range o.StockBackByDeadline {
			bx[i] = strconv.FormatFloat(sec.T, 'f', 0, 64)
			p50 = append(p50, sec.P50)
			worst = append(worst, sec.Max)
			n = append(n, float64(sec.N))
		}
		sb := charts.NewLine()
		sb.SetGlobalOptions(append(common("Unpaid stock back on sale: release time - pay deadline, by the second of the deadline",
			fmt.Sprintf("%d unpaid orders: p50 %.2f s, p99 %.2f s, max %.2f s", o.StockBack.N, o.StockBack.P50, o.StockBack.P99, o.StockBack.Max)),
			charts.WithYAxisOpts(opts.YAxis{Name: "s after the deadline"}),
			charts.WithXAxisOpts(opts.XAxis{Name: "deadline, s since the sale's start"}))...)
		sb.ExtendYAxis(opts.YAxis{Name: "unpaid orders", Position: "right"})
		sb.SetXAxis(bx).
			AddSeries("p50 s", lineData(p50)).
			AddSeries("max s", lineData(worst)).
			AddSeries("orders with that deadline second", lineData(n), charts.WithLineChartOpts(opts.LineChart{YAxisIndex: 1}))
		page.AddCharts(sb)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := page.Render(f); err != nil {
		f.Close()
		return err
	}
	// A plain summary under the charts (the JSON has everything).
	fmt.Fprintf(f, "<pre style=\"margin:1em\">%s</pre>\n", html.EscapeString(r.Text()))
	return f.Close()
}
