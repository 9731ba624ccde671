package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"seckill/pkg/metrics"
	"seckill/pkg/testbroker"
)

// metricsHandler serves the broker process's Prometheus metrics (-metrics):
// the Go runtime and process collectors — process_resident_memory_bytes is
// the broker RSS the load tool charts while a backlog builds and drains —
// and the delayed messages not yet delivered.
func metricsHandler(srv *testbroker.Server) http.Handler {
	reg := metrics.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "testbroker_delayed_pending",
		Help: "Scheduled messages (delay levels and retries) not yet delivered.",
	}, func() float64 { return float64(srv.PendingDelayed()) }))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
