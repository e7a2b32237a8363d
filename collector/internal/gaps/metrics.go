package gaps

import (
	"math"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hubmon/hubmon/collector/internal/config"
)

var (
	complianceDesc = prometheus.NewDesc("hubmon_gap_compliance_ratio",
		"Share of the hub's speed tests in the period and window that met the threshold profile; absent when there were none.",
		[]string{"site", "profile", "window", "period"}, nil)
	testsDesc = prometheus.NewDesc("hubmon_gap_speedtests",
		"Speed tests of the hub in the period and window that measured a download rate.",
		[]string{"site", "window", "period"}, nil)
	downDesc = prometheus.NewDesc("hubmon_gap_download_bytes_per_second",
		"Median or 10th percentile (statistic) of the hub's download rates in the period and window, in bytes per second.",
		[]string{"site", "window", "period", "statistic"}, nil)
	upDesc = prometheus.NewDesc("hubmon_gap_upload_bytes_per_second",
		"Median or 10th percentile (statistic) of the hub's upload rates in the period and window, in bytes per second.",
		[]string{"site", "window", "period", "statistic"}, nil)
	availabilityDesc = prometheus.NewDesc("hubmon_gap_availability_ratio",
		"Share of the hub's opening hours in the period it was online (line-quality probes, else any successful measurement); absent when it had no opening hours in the period.",
		[]string{"site", "period"}, nil)
	outageDesc = prometheus.NewDesc("hubmon_gap_outage_seconds",
		"Time within the hub's opening hours in the period that its line-quality probes saw the line down; absent without line-quality data.",
		[]string{"site", "period"}, nil)
	contractDesc = prometheus.NewDesc("hubmon_gap_contract_ratio",
		"Median measured rate over the contracted rate in the period, during opening hours (all hours when they are not known); absent without a contract or tests.",
		[]string{"site", "direction", "period"}, nil)
	belowDesc = prometheus.NewDesc("hubmon_gap_below_profile",
		"1 if the hub's compliance with the profile in the period, during opening hours (all hours when they are not known), is below the configured ratio, else 0; absent when there were no tests.",
		[]string{"site", "profile", "period"}, nil)
	computedDesc = prometheus.NewDesc("hubmon_collector_gaps_computed_timestamp_seconds",
		"When the gap figures were last computed (Unix time); absent until the history is loaded.", nil, nil)
	computeDesc = prometheus.NewDesc("hubmon_collector_gaps_compute_seconds",
		"How long the last computation of the gap figures took.", nil, nil)
	trackedDesc = prometheus.NewDesc("hubmon_collector_gaps_tracked_sites",
		"Sites whose recent history the gap computation held in memory at its last computation.", nil, nil)
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{complianceDesc, testsDesc, downDesc, upDesc, availabilityDesc, outageDesc,
		contractDesc, belowDesc, computedDesc, computeDesc, trackedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it sends the figures of the last
// refresh; nothing is computed at scrape time.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	p := e.published.Load()
	if p == nil {
		return // the history is still loading
	}
	for i := range p.samples {
		ch <- &p.samples[i]
	}
	ch <- prometheus.MustNewConstMetric(computedDesc, prometheus.GaugeValue, float64(p.computed.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(computeDesc, prometheus.GaugeValue, p.took.Seconds())
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(p.tracked))
}

// buildMetrics builds the gap series of figs (per period of Periods, each
// by site id). Each family is built in the order the registry sorts it into
// (by label values, labels by name), which makes that sort linear: at
// thousands of sites it dominated the scrape.
func (e *Engine) buildMetrics(figs [][]*Figures) []sample {
	b := &builder{pairs: map[[2]string]*dto.LabelPair{}}
	periods := sortedIndexes(len(Periods), func(i int) string { return Periods[i].Name })
	rules := sortedIndexes(len(e.opts.Rules), func(i int) string { return e.opts.Rules[i].Name })
	windows := sortedIndexes(int(numWindows), func(i int) string { return windowNames[i] })

	// hubmon_gap_compliance_ratio{period, profile, site, window}
	for _, p := range periods {
		for _, r := range rules {
			for _, f := range figs[p] {
				for _, w := range windows {
					if c, ok := f.Windows[w].Compliance(r); ok {
						b.add(complianceDesc, c, "period", Periods[p].Name, "profile", e.opts.Rules[r].Name, "site", f.Site.ID, "window", windowNames[w])
					}
				}
			}
		}
	}
	// hubmon_gap_speedtests{period, site, window}
	for _, p := range periods {
		for _, f := range figs[p] {
			for _, w := range windows {
				if s := f.Windows[w]; s != nil {
					b.add(testsDesc, float64(s.Tests), "period", Periods[p].Name, "site", f.Site.ID, "window", windowNames[w])
				}
			}
		}
	}
	// hubmon_gap_{download,upload}_bytes_per_second{period, site, statistic, window}
	for _, dir := range []struct {
		d        *prometheus.Desc
		med, p10 func(s *Stats) float64
	}{
		{downDesc, func(s *Stats) float64 { return s.DownloadMedian }, func(s *Stats) float64 { return s.DownloadP10 }},
		{upDesc, func(s *Stats) float64 { return s.UploadMedian }, func(s *Stats) float64 { return s.UploadP10 }},
	} {
		for _, p := range periods {
			for _, f := range figs[p] {
				for _, stat := range []struct {
					name string
					get  func(s *Stats) float64
				}{{"median", dir.med}, {"p10", dir.p10}} {
					for _, w := range windows {
						if s := f.Windows[w]; s != nil {
							if v := stat.get(s); !math.IsNaN(v) {
								b.add(dir.d, v/8, "period", Periods[p].Name, "site", f.Site.ID, "statistic", stat.name, "window", windowNames[w])
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
				b.add(availabilityDesc, f.Availability, "period", Periods[p].Name, "site", f.Site.ID)
			}
		}
	}
	for _, p := range periods {
		for _, f := range figs[p] {
			if !math.IsNaN(f.OutageSeconds) {
				b.add(outageDesc, f.OutageSeconds, "period", Periods[p].Name, "site", f.Site.ID)
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
					b.add(contractDesc, v, "direction", dir, "period", Periods[p].Name, "site", f.Site.ID)
				}
			}
		}
	}
	// hubmon_gap_below_profile{period, profile, site}
	for _, p := range periods {
		for _, r := range rules {
			for _, f := range figs[p] {
				if below, ok := f.Below(r, e.opts.BelowRatio); ok {
					v := 0.0
					if below {
						v = 1
					}
					b.add(belowDesc, v, "period", Periods[p].Name, "profile", e.opts.Rules[r].Name, "site", f.Site.ID)
				}
			}
		}
	}
	return b.samples
}

// sample is one gap series. Its label pairs are shared with the other
// series (a site's pair is made once for all its series), so the figures of
// thousands of sites stay small in memory: about 72 bytes a series, against
// about 550 for a const metric. It implements prometheus.Metric.
type sample struct {
	desc   *prometheus.Desc
	value  float64
	labels []*dto.LabelPair // sorted by name, shared: never changed
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	out.Gauge = &dto.Gauge{Value: &s.value}
	return nil
}

// builder makes samples, sharing label pairs and allocating label slices in
// chunks.
type builder struct {
	pairs   map[[2]string]*dto.LabelPair
	chunk   []*dto.LabelPair
	samples []sample
}

// add adds a sample; kv are label names and values, the names in order.
func (b *builder) add(d *prometheus.Desc, v float64, kv ...string) {
	n := len(kv) / 2
	if cap(b.chunk)-len(b.chunk) < n {
		b.chunk = make([]*dto.LabelPair, 0, 1<<14)
	}
	start := len(b.chunk)
	for i := 0; i < len(kv); i += 2 {
		k := [2]string{kv[i], kv[i+1]}
		lp := b.pairs[k]
		if lp == nil {
			lp = &dto.LabelPair{Name: &k[0], Value: &k[1]}
			b.pairs[k] = lp
		}
		b.chunk = append(b.chunk, lp)
	}
	b.samples = append(b.samples, sample{desc: d, value: v, labels: b.chunk[start:len(b.chunk):len(b.chunk)]})
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
