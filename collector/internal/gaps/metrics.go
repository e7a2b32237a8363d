package gaps

import (
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
)

// The gap figures, served on their own endpoint (MetricsHandler) from a blob
// written at each refresh: nothing is computed at scrape time.
var (
	famCompliance = exposition.NewFamily("hubmon_gap_compliance_ratio",
		"Share of the hub's speed tests in the period and window that met the threshold profile; absent when there were none.",
		exposition.Gauge, "site", "profile", "window", "period")
	famTests = exposition.NewFamily("hubmon_gap_speedtests",
		"Speed tests of the hub in the period and window that measured a download rate.",
		exposition.Gauge, "site", "window", "period")
	famDown = exposition.NewFamily("hubmon_gap_download_bytes_per_second",
		"Median or 10th percentile (statistic) of the hub's download rates in the period and window, in bytes per second.",
		exposition.Gauge, "site", "window", "period", "statistic")
	famUp = exposition.NewFamily("hubmon_gap_upload_bytes_per_second",
		"Median or 10th percentile (statistic) of the hub's upload rates in the period and window, in bytes per second.",
		exposition.Gauge, "site", "window", "period", "statistic")
	famAvailability = exposition.NewFamily("hubmon_gap_availability_ratio",
		"Share of the hub's opening hours in the period it was online (line-quality probes, else any successful measurement); absent when it had no opening hours in the period.",
		exposition.Gauge, "site", "period")
	famOutage = exposition.NewFamily("hubmon_gap_outage_seconds",
		"Time within the hub's opening hours in the period that its line-quality probes saw the line down; absent without line-quality data.",
		exposition.Gauge, "site", "period")
	famContract = exposition.NewFamily("hubmon_gap_contract_ratio",
		"Median measured rate over the contracted rate in the period, during opening hours (all hours when they are not known); absent without a contract or tests.",
		exposition.Gauge, "site", "direction", "period")
	famBelow = exposition.NewFamily("hubmon_gap_below_profile",
		"1 if the hub's compliance with the profile in the period, during opening hours (all hours when they are not known), is below the configured ratio, else 0; absent when there were no tests.",
		exposition.Gauge, "site", "profile", "period")
)

// How the computation goes, on /metrics (a registry) with the collector's
// other health figures.
var (
	computedDesc = prometheus.NewDesc("hubmon_collector_gaps_computed_timestamp_seconds",
		"When the gap figures were last computed (Unix time); absent until the history is loaded.", nil, nil)
	computeDesc = prometheus.NewDesc("hubmon_collector_gaps_compute_seconds",
		"How long the last computation of the gap figures took (writing their exposition included).", nil, nil)
	trackedDesc = prometheus.NewDesc("hubmon_collector_gaps_tracked_sites",
		"Sites whose recent history the gap computation held in memory at its last computation.", nil, nil)
	exposedDesc = prometheus.NewDesc("hubmon_collector_gaps_exposition_bytes",
		"Size of the gap endpoint's text as last written, uncompressed (encoding=identity) and as kept, gzip-compressed (encoding=gzip).", []string{"encoding"}, nil)
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{computedDesc, computeDesc, trackedDesc, exposedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: how the last refresh went.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	p := e.published.Load()
	if p == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(exposedDesc, prometheus.GaugeValue, float64(p.blob.Size()), "identity")
	ch <- prometheus.MustNewConstMetric(exposedDesc, prometheus.GaugeValue, float64(p.blob.CompressedSize()), "gzip")
	if p.computed.IsZero() {
		return // the history is still loading
	}
	ch <- prometheus.MustNewConstMetric(computedDesc, prometheus.GaugeValue, float64(p.computed.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(computeDesc, prometheus.GaugeValue, p.took.Seconds())
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(p.tracked))
}

// MetricsHandler serves the gap endpoint: Options.Extra's series and the gap
// figures of the last refresh, as written then (before the history is
// loaded, Extra's alone).
func (e *Engine) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := e.published.Load()
		if p == nil {
			w.Header().Set("Content-Type", exposition.ContentType)
			return
		}
		p.blob.ServeHTTP(w, r)
	})
}

// writeFigures writes the gap series of figs (per period of Periods, each
// by site id), in the order a registry would sort them.
func (e *Engine) writeFigures(w *exposition.Writer, figs [][]*Figures) {
	periods := sortedIndexes(len(Periods), func(i int) string { return Periods[i].Name })
	rules := sortedIndexes(len(e.opts.Rules), func(i int) string { return e.opts.Rules[i].Name })
	windows := sortedIndexes(int(numWindows), func(i int) string { return windowNames[i] })

	// hubmon_gap_compliance_ratio{period, profile, site, window}
	for _, p := range periods {
		for _, r := range rules {
			for _, f := range figs[p] {
				for _, wi := range windows {
					if c, ok := f.Windows[wi].Compliance(r); ok {
						w.Sample(famCompliance, c, f.Site.ID, e.opts.Rules[r].Name, windowNames[wi], Periods[p].Name)
					}
				}
			}
		}
	}
	// hubmon_gap_speedtests{period, site, window}
	for _, p := range periods {
		for _, f := range figs[p] {
			for _, wi := range windows {
				if s := f.Windows[wi]; s != nil {
					w.Sample(famTests, float64(s.Tests), f.Site.ID, windowNames[wi], Periods[p].Name)
				}
			}
		}
	}
	// hubmon_gap_{download,upload}_bytes_per_second{period, site, statistic, window}
	for _, dir := range []struct {
		fam      *exposition.Family
		med, p10 func(s *Stats) float64
	}{
		{famDown, func(s *Stats) float64 { return s.DownloadMedian }, func(s *Stats) float64 { return s.DownloadP10 }},
		{famUp, func(s *Stats) float64 { return s.UploadMedian }, func(s *Stats) float64 { return s.UploadP10 }},
	} {
		for _, p := range periods {
			for _, f := range figs[p] {
				for _, stat := range []struct {
					name string
					get  func(s *Stats) float64
				}{{"median", dir.med}, {"p10", dir.p10}} {
					for _, wi := range windows {
						if s := f.Windows[wi]; s != nil {
							if v := stat.get(s); !math.IsNaN(v) {
								w.Sample(dir.fam, v/8, f.Site.ID, windowNames[wi], Periods[p].Name, stat.name)
							}
						}
					}
				}
			}
		}
	}
	// hubmon_gap_availability_ratio{period, site}, hubmon_gap_outage_seconds
	for _, p := range periods {
		for _, f := range figs[p] {
			if !math.IsNaN(f.Availability) {
				w.Sample(famAvailability, f.Availability, f.Site.ID, Periods[p].Name)
			}
		}
	}
	for _, p := range periods {
		for _, f := range figs[p] {
			if !math.IsNaN(f.OutageSeconds) {
				w.Sample(famOutage, f.OutageSeconds, f.Site.ID, Periods[p].Name)
			}
		}
	}
	// hubmon_gap_contract_ratio{direction, period, site}
	for _, dir := range []string{"download", "upload"} {
		for _, p := range periods {
			for _, f := range figs[p] {
				v := f.ContractDownload
				if dir == "upload" {
					v = f.ContractUpload
				}
				if !math.IsNaN(v) {
					w.Sample(famContract, v, f.Site.ID, dir, Periods[p].Name)
				}
			}
		}
	}
	// hubmon_gap_below_profile{period, profile, site}
	for _, p := range periods {
		for _, r := range rules {
			for _, f := range figs[p] {
				if below, ok := f.Below(r, e.opts.BelowRatio); ok {
					w.Sample(famBelow, b2f(below), f.Site.ID, e.opts.Rules[r].Name, Periods[p].Name)
				}
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sortedIndexes returns 0..n-1 ordered by name(i).
func sortedIndexes(n int, name func(i int) string) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(name(a), name(b)) })
	return idx
}

func sortSites(list []config.Site) {
	slices.SortFunc(list, func(a, b config.Site) int { return strings.Compare(a.ID, b.ID) })
}
