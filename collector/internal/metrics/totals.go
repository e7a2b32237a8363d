package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// MaxProbesPerSite bounds the probes one site's metrics may hold: an agent
// publishing under ever new probe names cannot grow the collector's memory
// or /metrics. The least recently measured probe gives way.
const MaxProbesPerSite = 64

// lineTotal is the running count of one line-quality stream: gauges of the
// latest minute miss what happened while the agent could not publish (its
// outbox drains in a burst after an outage), counters do not.
type lineTotal struct {
	sent, received int64
	outages        map[string]int64
	outageSeconds  map[string]float64
}

var (
	labelsLQTotal      = []string{"site", "probe", "method"}
	labelsLQCauseTotal = []string{"site", "probe", "method", "cause"}
	descLQSentTotal    = prometheus.NewDesc("hubmon_linequality_probes_sent_total",
		"Line-quality probes sent, over the whole history.", labelsLQTotal, nil)
	descLQLostTotal = prometheus.NewDesc("hubmon_linequality_probes_lost_total",
		"Line-quality probes lost, over the whole history.", labelsLQTotal, nil)
	descLQOutagesTotal = prometheus.NewDesc("hubmon_linequality_outages_total",
		"Disconnections that ended, by cause, over the whole history.", labelsLQCauseTotal, nil)
	descLQOutageSecondsTotal = prometheus.NewDesc("hubmon_linequality_outage_seconds_total",
		"Time disconnected, by cause, over the whole history (counted when each disconnection ends).", labelsLQCauseTotal, nil)
)

var totalDescs = []*prometheus.Desc{descLQSentTotal, descLQLostTotal, descLQOutagesTotal, descLQOutageSecondsTotal}

func (f *Fleet) total(k probeKey) *lineTotal {
	t := f.totals[k]
	if t == nil {
		t = &lineTotal{outages: map[string]int64{}, outageSeconds: map[string]float64{}}
		f.totals[k] = t
	}
	return t
}

// SetLineTotal sets a stream's totals from the history (at start-up).
func (f *Fleet) SetLineTotal(lt store.LineTotal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.total(probeKey{lt.Site, lt.Probe, lt.Method})
	t.sent, t.received = lt.Sent, lt.Received
	for c, n := range lt.Outages {
		t.outages[c] = n
	}
	for c, s := range lt.OutageSeconds {
		t.outageSeconds[c] = s
	}
}

// Count adds a newly stored measurement to the running totals. Call it once
// per stored message (not for duplicates).
func (f *Fleet) Count(m *wire.Measurement) {
	l := m.LineQuality
	if l == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.total(probeKey{m.Site, m.Probe, l.Method})
	t.sent += l.Sent
	t.received += l.Received
	listed := 0.0
	for _, o := range l.Outages {
		t.outages[o.Cause]++
		t.outageSeconds[o.Cause] += o.DurationSeconds
		listed += o.DurationSeconds
	}
	// beyond the 64 a summary lists: counted, cause unknown
	t.outages[wire.CauseUnknown] += l.OutagesDropped
	if l.OutageSecondsTotal != nil && *l.OutageSecondsTotal > listed {
		t.outageSeconds[wire.CauseUnknown] += *l.OutageSecondsTotal - listed
	}
}

func (f *Fleet) collectTotals(emit func(d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string)) {
	for k, t := range f.totals {
		emit(descLQSentTotal, prometheus.CounterValue, float64(t.sent), k.site, k.probe, k.variant)
		emit(descLQLostTotal, prometheus.CounterValue, float64(t.sent-t.received), k.site, k.probe, k.variant)
		for _, c := range []string{wire.CauseWAN, wire.CauseLAN, wire.CauseUnknown} {
			emit(descLQOutagesTotal, prometheus.CounterValue, float64(t.outages[c]), k.site, k.probe, k.variant, c)
			emit(descLQOutageSecondsTotal, prometheus.CounterValue, t.outageSeconds[c], k.site, k.probe, k.variant, c)
		}
	}
}

// enforceCap drops the least recently measured probes of site beyond
// MaxProbesPerSite. Called with f.mu held after adding a probe.
func (f *Fleet) enforceCap(site string) {
	type probeAge struct {
		probe string
		at    int64
	}
	var ps []probeAge
	for k, r := range f.runs {
		if k.site == site {
			ps = append(ps, probeAge{k.probe, r.at.UnixNano()})
		}
	}
	if len(ps) <= MaxProbesPerSite {
		return
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
	for _, p := range ps[:len(ps)-MaxProbesPerSite] {
		for k := range f.runs {
			if k.site == site && k.probe == p.probe {
				delete(f.runs, k)
			}
		}
		for k := range f.light {
			if k.site == site && k.probe == p.probe {
				delete(f.light, k)
			}
		}
		for k := range f.speeds {
			if k.site == site && k.probe == p.probe {
				delete(f.speeds, k)
			}
		}
		for k := range f.totals {
			if k.site == site && k.probe == p.probe {
				delete(f.totals, k)
			}
		}
	}
}
