package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/gaps"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
	"github.com/hubmon/hubmon/collector/internal/web"
)

// newEngine returns the gap engine.
func newEngine(cfg *config.Config, st *store.Store, hubs *sites.Registry, log *slog.Logger) *gaps.Engine {
	return gaps.New(gaps.Options{Store: st, Sites: hubs, Rules: cfg.Thresholds.Rules(), BelowRatio: cfg.Thresholds.BelowRatioValue(),
		Presence: cfg.Gaps.Presence, Interval: cfg.Gaps.Interval, Logger: log.With("component", "gaps")})
}

// newRegistry builds the registry of /metrics: the Go and process
// collectors, build information, the collector's own health, the size of
// the history, the state of the sites file and the gap figures. Inputs
// started later (the broker, the speed-test server, the echo responder) add
// their own counters to it. The per-site series of the fleet and the sites
// file are written straight to the text format (newHandler).
func newRegistry(st *store.Store, hubs *sites.Registry, engine *gaps.Engine) (*prometheus.Registry, *metrics.Health) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.RegisterBuildInfo(reg, version, revision)
	health := metrics.NewHealth(reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hubmon_collector_store_size_bytes", Help: "Size of the history database and its write-ahead log on disk.",
	}, func() float64 { return float64(st.SizeBytes()) }))
	reg.MustRegister(hubs)
	reg.MustRegister(engine)
	return reg, health
}

// newHandler is the collector's HTTP handler: /metrics (reg, then every
// site's latest figures and what the sites file says about it), the status
// pages, the gap report and the health checks.
func newHandler(reg prometheus.Gatherer, fleet *metrics.Fleet, hubs *sites.Registry, engine *gaps.Engine, log *slog.Logger, ready func(context.Context) error) http.Handler {
	return web.Handler(web.Options{Gatherer: reg, Series: []func(*exposition.Writer){fleet.WriteSeries, hubs.WriteSeries, hubs.WriteOpen},
		Version: version, Logger: log, Report: engine.Handler(), Sites: fleet.Sites, Ready: ready})
}
