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

// The collector serves two expositions, for two Prometheus jobs
// (deploy/prometheus/prometheus.yml):
//
//   - /metrics (job hubmon-collector, every 30 s): the collector's own
//     health from a registry (newRegistry), then every site's latest
//     figures (metrics.Fleet) and whether each hub is open, written straight
//     to the text format;
//   - /metrics/gaps (job hubmon-gaps, every 2 minutes): each hub's gap
//     figures and what the sites file says about it (name, location,
//     contract, seats), which change only when the gap figures are
//     recomputed (every gaps.interval, 5 minutes by default) or the file is
//     reloaded: written once per refresh and kept compressed (gaps.Engine).

// newEngine returns the gap engine, which also publishes the sites' series
// on the gap endpoint.
func newEngine(cfg *config.Config, st *store.Store, hubs *sites.Registry, log *slog.Logger) *gaps.Engine {
	return gaps.New(gaps.Options{Store: st, Sites: hubs, Rules: cfg.Thresholds.Rules(), BelowRatio: cfg.Thresholds.BelowRatioValue(),
		Presence: cfg.Gaps.Presence, Interval: cfg.Gaps.Interval, Extra: hubs.WriteSeries, Logger: log.With("component", "gaps")})
}

// newRegistry builds the registry of /metrics: the Go and process
// collectors, build information, the collector's own health, the size of
// the history, the state of the sites file and of the gap computation.
// Inputs started later (the broker, the speed-test server, the echo
// responder) add their own counters to it.
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

// newHandler is the collector's HTTP handler: both expositions, the status
// pages, the gap report and the health checks.
func newHandler(reg prometheus.Gatherer, fleet *metrics.Fleet, hubs *sites.Registry, engine *gaps.Engine, log *slog.Logger, ready func(context.Context) error) http.Handler {
	return web.Handler(newWebOptions(reg, fleet, hubs, engine, log, ready))
}

// newWebOptions is what newHandler serves; run adds the status pages' sites
// file and USO profile.
func newWebOptions(reg prometheus.Gatherer, fleet *metrics.Fleet, hubs *sites.Registry, engine *gaps.Engine, log *slog.Logger, ready func(context.Context) error) web.Options {
	return web.Options{Gatherer: reg, Series: []func(*exposition.Writer){fleet.WriteSeries, hubs.WriteOpen},
		Gaps: engine.MetricsHandler(), Version: version, Logger: log, Report: engine.Handler(), Sites: fleet.Sites, Ready: ready}
}
