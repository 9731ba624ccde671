package testenv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Counter sums the counter samples named name in g whose labels include
// every pair of match (nil matches all); 0 when there is none.
func Counter(t testing.TB, g prometheus.Gatherer, name string, match map[string]string) float64 {
	t.Helper()
	return sum(t, g, name, match, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
}

// Gauge sums the gauge samples named name in g whose labels include every
// pair of match (nil matches all); 0 when there is none.
func Gauge(t testing.TB, g prometheus.Gatherer, name string, match map[string]string) float64 {
	t.Helper()
	return sum(t, g, name, match, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
}

func sum(t testing.TB, g prometheus.Gatherer, name string, match map[string]string, value func(*dto.Metric) float64) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("testenv: gather metrics: %v", err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue samples
				}
			}
			n += value(m)
		}
	}
	return n
}
