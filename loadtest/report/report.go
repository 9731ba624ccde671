// Package report writes what a load run measured: report.json, an HTML page
// with interactive charts (go-echarts) and a PNG of the main chart
// (go-chart): accepted/s at the front door against consumed/s and lag of
// each consumer group over time, the picture of peak shaving; and a PNG of
// each process's RSS against the backlog (rss.png).
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"seckill/loadtest/drain"
	"seckill/loadtest/load"
	"seckill/loadtest/verify"
)

// Machine describes where the run happened.
type Machine struct {
	Host       string `json:"host"`
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go_version"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

// DrainReport is the consumer side of the run.
type DrainReport struct {
	Samples      []drain.Sample     `json:"samples"`
	Drained      bool               `json:"drained"`
	DrainedAfter float64            `json:"drained_after_s"` // seconds since the start of the load
	Waiting      string             `json:"waiting,omitempty"`
	Rates        map[string]float64 `json:"drain_rate_per_s"`       // median consumed/s while backlogged
	ConsumeRate  float64            `json:"consume_rate,omitempty"` // the services' CONSUME_RATE, if told
	ScrapeErrors int                `json:"scrape_errors"`
}

// Report is report.json.
type Report struct {
	Command string          `json:"command"`
	Machine Machine         `json:"machine"`
	Sale    load.Sale       `json:"sale"`
	Load    *load.Result    `json:"load"`
	Pay     *load.PayResult `json:"pay,omitempty"`
	Drain   *DrainReport    `json:"drain,omitempty"`
	Verify  *verify.Result  `json:"verify,omitempty"`
	// Decisions is how much payment_decisions_total{result} grew from
	// before the load to after the verifier (paid, late, expired).
	Decisions map[string]float64 `json:"payment_decisions,omitempty"`
	Written   time.Time          `json:"written"`
}

// LoadAvg returns /proc/loadavg's first three fields ("" elsewhere).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// NewMachine describes this machine now.
func NewMachine() Machine {
	h, _ := os.Hostname()
	return Machine{Host: h, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: LoadAvg()}
}

// Write writes report.json, report.html, report.png and (with RSS samples)
// rss.png into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.Written = time.Now()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	series := r.series()
	if err := writeHTML(filepath.Join(dir, "report.html"), r, series); err != nil {
		return fmt.Errorf("write report.html: %w", err)
	}
	if err := writePNG(filepath.Join(dir, "report.png"), r, series); err != nil {
		return fmt.Errorf("write report.png: %w", err)
	}
	if err := writeRSSPNG(filepath.Join(dir, "rss.png"), r); err != nil {
		return fmt.Errorf("write rss.png: %w", err)
	}
	return nil
}

// Series are the chart's lines over a common time axis (seconds).
type Series struct {
	T         []float64
	FrontDoor []float64            // accepted/s at the front door
	Consumed  map[string][]float64 // group -> consumed/s
	Lag       map[string][]float64 // group -> lag (clustering groups only)
	Groups    []string
}

// series builds the chart lines from the drain samples (one a second from
// the start of the load); without them, from the load timeline alone.
func (r *Report) series() Series {
	s := Series{Consumed: map[string][]float64{}, Lag: map[string][]float64{}}
	if r.Drain == nil || len(r.Drain.Samples) == 0 {
		if r.Load != nil {
			for _, sec := range r.Load.Timeline {
				s.T = append(s.T, sec.T)
				s.FrontDoor = append(s.FrontDoor, float64(sec.Accepted))
			}
		}
		return s
	}
	samples := r.Drain.Samples
	s.Groups = drain.Groups(samples)
	hasLag := map[string]bool{}
	for _, sm := range samples {
		for g, v := range sm.Groups {
			if v.Lag >= 0 {
				hasLag[g] = true
			}
		}
	}
	for i, sm := range samples {
		s.T = append(s.T, sm.T)
		fd := 0.0
		if i > 0 {
			if dt := sm.T - samples[i-1].T; dt > 0 {
				fd = float64(sm.Accepted-samples[i-1].Accepted) / dt
			}
		}
		s.FrontDoor = append(s.FrontDoor, fd)
		for _, g := range s.Groups {
			v := sm.Groups[g]
			s.Consumed[g] = append(s.Consumed[g], v.Rate)
			if hasLag[g] {
				s.Lag[g] = append(s.Lag[g], max(v.Lag, 0))
			}
		}
	}
	return s
}
