package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Health is the collector's own instrumentation.
type Health struct {
	// Messages counts received messages by kind (measurement, status) and
	// result (stored, duplicate, stale, rejected, store_error).
	Messages *prometheus.CounterVec
	// Rejected counts refused messages by reason (wire.Reason).
	Rejected *prometheus.CounterVec
	// IngestDelay observes, per stored measurement, the time from measurement
	// to commit: large when an agent's outbox drains after an outage.
	IngestDelay prometheus.Histogram
	// CommitSeconds observes the duration of each store transaction.
	CommitSeconds prometheus.Histogram
	// BatchSize observes messages per store transaction.
	BatchSize prometheus.Histogram
	// Acks counts acknowledgements published to agents, by result.
	Acks *prometheus.CounterVec
	// ClockUnsynced counts stored measurements whose agent said its clock
	// was not synchronised (wire.Measurement.ClockUnsynced).
	ClockUnsynced prometheus.Counter
}

// NewHealth creates the collector's own metrics and registers them on reg.
func NewHealth(reg prometheus.Registerer) *Health {
	h := &Health{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubmon_collector_messages_total",
			Help: "Messages received from agents, by kind and result (stored, duplicate, stale, rejected, store_error).",
		}, []string{"kind", "result"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubmon_collector_rejected_messages_total",
			Help: "Messages refused by validation, by reason.",
		}, []string{"reason"}),
		IngestDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hubmon_collector_ingest_delay_seconds",
			Help:    "Time from a measurement being taken to it being committed to the history.",
			Buckets: []float64{0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600},
		}),
		CommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hubmon_collector_store_commit_seconds",
			Help:    "Duration of each history transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hubmon_collector_store_batch_messages",
			Help:    "Messages committed per history transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
		Acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubmon_collector_acks_published_total",
			Help: "Acknowledgement messages published to agents, by result (ok, error).",
		}, []string{"result"}),
		ClockUnsynced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hubmon_collector_clock_unsynced_measurements_total",
			Help: "Measurements stored whose agent said its clock was not synchronised, or was stepped, when it measured: their time may be wrong.",
		}),
	}
	// pre-create the series dashboards and alerts rely on, so they read 0, not absent
	for _, k := range []string{"measurement", "status"} {
		for _, r := range []string{"stored", "duplicate", "rejected", "store_error"} {
			h.Messages.WithLabelValues(k, r)
		}
	}
	h.Messages.WithLabelValues("status", "stale")
	h.Acks.WithLabelValues("ok")
	h.Acks.WithLabelValues("error")
	reg.MustRegister(h.Messages, h.Rejected, h.IngestDelay, h.CommitSeconds, h.BatchSize, h.Acks, h.ClockUnsynced)
	return h
}

// RegisterBuildInfo registers hubmon_build_info on reg.
func RegisterBuildInfo(reg prometheus.Registerer, version, revision string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hubmon_build_info",
		Help:        "A metric with a constant value 1, labelled by the collector's version, revision and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	reg.MustRegister(g)
}
