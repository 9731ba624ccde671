package stock

import "github.com/prometheus/client_golang/prometheus"

// Metrics are inventory-service's business counters. IDs never become labels.
type Metrics struct {
	Deductions  prometheus.Counter
	Releases    prometheus.Counter
	GiveBacks   prometheus.Counter
	Skipped     *prometheus.CounterVec // tag, reason
	Duplicates  *prometheus.CounterVec // handler
	LedgerLines prometheus.Counter
	SaleResets  prometheus.Counter
	SoldOutSent *prometheus.CounterVec // sold_out
	Rebuilds    *prometheus.CounterVec // result: done, cancelled, failed
	Rebuilding  prometheus.Gauge
	RedisResets prometheus.Counter
}

// NewMetrics registers the counters on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deductions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_deductions_total", Help: "Order deductions applied to the DB stock.",
		}),
		Releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_releases_total", Help: "Closed orders whose stock went back to the DB.",
		}),
		GiveBacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_redis_givebacks_total", Help: "Released orders given back to the Redis stock.",
		}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inventory_skipped_events_total", Help: "Order events consumed without a stock effect, by reason.",
		}, []string{"tag", "reason"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inventory_duplicates_total", Help: "Messages whose effect was already applied (redelivery or re-send).",
		}, []string{"handler"}),
		LedgerLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_ledger_entries_total", Help: "Lines appended to the stock ledger.",
		}),
		SaleResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_sale_resets_total", Help: "Sales created or reset through the admin API.",
		}),
		SoldOutSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inventory_soldout_published_total", Help: "SOLDOUT broadcasts sent.",
		}, []string{"sold_out"}),
		Rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inventory_stock_rebuilds_total", Help: "Redis stock rebuilds from the database after Redis lost a product, by result.",
		}, []string{"result"}),
		Rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "inventory_stock_rebuilds_in_progress", Help: "Products whose Redis stock this replica is rebuilding (they take no orders).",
		}),
		RedisResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_redis_resets_total", Help: "Times this replica found Redis restarted or emptied (another run_id than the loaded marker's) and dropped every product's stock for a rebuild.",
		}),
	}
	reg.MustRegister(m.Deductions, m.Releases, m.GiveBacks, m.Skipped, m.Duplicates,
		m.LedgerLines, m.SaleResets, m.SoldOutSent, m.Rebuilds, m.Rebuilding, m.RedisResets)
	return m
}
