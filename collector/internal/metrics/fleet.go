// Package metrics exposes what the collector knows to Prometheus.
//
// Fleet holds the latest figures of every site in memory and emits them as
// const metrics at scrape time (the node_exporter pattern), so a series exists
// only while there is something true to say: a failed test never shows as a
// zero speed, and every value comes with the time it was measured so
// dashboards show its age instead of a frozen gauge that looks live.
// Health holds the collector's own counters. Both register on a registry the
// caller owns; nothing here touches prometheus.DefaultRegisterer.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// probeKey names a probe of a site; variant tells apart the line-quality
// streams (udp, icmp) of one probe.
type probeKey struct{ site, probe, variant string }

// figure is a value and when it was measured.
type figure struct {
	v  float64
	at time.Time
}

type speedState struct {
	lastAttempt   time.Time
	lastSuccess   time.Time
	success       bool
	download      *figure
	upload        *figure
	latency       *figure
	jitter        *figure
	loadedDown    *figure
	loadedUp      *figure
	addedDown     *figure
	addedUp       *figure
	grade         string
	gradeAt       time.Time
	downloadBytes int64
	uploadBytes   int64
}

// runState is the last run of any probe, for the generic probe series.
type runState struct {
	kind    string
	at      time.Time
	success bool
}

// Fleet is a prometheus.Collector of the latest state of every site. It is
// safe for concurrent use.
type Fleet struct {
	mu     sync.Mutex
	speeds map[probeKey]*speedState
	// the most recent measurement of each light probe (line quality, DNS,
	// HTTP, Wi-Fi), exported whole: a DNS name or service removed from the
	// agent's config disappears, and one probe's series are bounded by the
	// schema's limit on results per message
	light  map[probeKey]*wire.Measurement
	runs   map[probeKey]runState
	totals map[probeKey]*lineTotal
	agents map[string]store.Agent
}

// NewFleet returns an empty Fleet.
func NewFleet() *Fleet {
	return &Fleet{speeds: map[probeKey]*speedState{}, light: map[probeKey]*wire.Measurement{},
		runs: map[probeKey]runState{}, totals: map[probeKey]*lineTotal{}, agents: map[string]store.Agent{}}
}

// bytes converts a bits-per-second figure to the bytes per second that
// Prometheus conventions (and promtool) ask for.
func (f *figure) bytes() *figure {
	if f == nil {
		return nil
	}
	return &figure{f.v / 8, f.at}
}

func pick(cur *figure, v *float64, at time.Time) *figure {
	if v == nil || (cur != nil && cur.at.After(at)) {
		return cur
	}
	return &figure{*v, at}
}

// Observe records a stored measurement. Each figure keeps the value of the
// most recent test that measured it; older measurements arriving late (an
// outbox draining after an outage) never replace newer ones.
func (f *Fleet) Observe(m *wire.Measurement) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := probeKey{site: m.Site, probe: m.Probe}
	r, known := f.runs[k]
	if !known || !m.MeasuredAt.Before(r.at) {
		f.runs[k] = runState{kind: m.Kind, at: m.MeasuredAt, success: m.Success}
	}
	if !known {
		defer f.enforceCap(m.Site) // after this probe's state is in place
	}
	if m.Kind != wire.KindSpeedtest {
		lk := k
		if m.LineQuality != nil {
			lk.variant = m.LineQuality.Method
		}
		if cur := f.light[lk]; cur == nil || !m.MeasuredAt.Before(cur.MeasuredAt) {
			f.light[lk] = m
		}
		return
	}
	if m.Speedtest == nil {
		return
	}
	s := f.speeds[k]
	if s == nil {
		s = &speedState{}
		f.speeds[k] = s
	}
	at := m.MeasuredAt
	if !at.Before(s.lastAttempt) {
		s.lastAttempt, s.success = at, m.Success
		s.downloadBytes, s.uploadBytes = m.Speedtest.DownloadBytes, m.Speedtest.UploadBytes
	}
	if m.Success && at.After(s.lastSuccess) {
		s.lastSuccess = at
	}
	st := m.Speedtest
	s.download = pick(s.download, st.DownloadBitsPerSecond, at)
	s.upload = pick(s.upload, st.UploadBitsPerSecond, at)
	s.latency = pick(s.latency, st.LatencySeconds, at)
	s.jitter = pick(s.jitter, st.JitterSeconds, at)
	s.loadedDown = pick(s.loadedDown, st.LatencyUnderDownloadSeconds, at)
	s.loadedUp = pick(s.loadedUp, st.LatencyUnderUploadSeconds, at)
	s.addedDown = pick(s.addedDown, st.AddedLatencyUnderDownloadSeconds, at)
	s.addedUp = pick(s.addedUp, st.AddedLatencyUnderUploadSeconds, at)
	if st.BufferbloatGrade != "" && !at.Before(s.gradeAt) {
		s.grade, s.gradeAt = st.BufferbloatGrade, at
	}
}

// ObserveAgent records the stored state of a site's agent.
func (f *Fleet) ObserveAgent(a store.Agent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents[a.Site] = a
}

// Seen records that a site sent something at t.
func (f *Fleet) Seen(site string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.agents[site]; ok && t.After(a.LastSeenAt) {
		a.LastSeenAt = t
		f.agents[site] = a
	}
}

var (
	labelsProbe = []string{"site", "probe"}
	labelsSite  = []string{"site"}

	descDownload = prometheus.NewDesc("hubmon_speedtest_download_bytes_per_second",
		"Download rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", labelsProbe, nil)
	descUpload = prometheus.NewDesc("hubmon_speedtest_upload_bytes_per_second",
		"Upload rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", labelsProbe, nil)
	descLatency = prometheus.NewDesc("hubmon_speedtest_latency_seconds",
		"Idle round-trip time to the speed-test server, of the most recent test that measured it.", labelsProbe, nil)
	descJitter = prometheus.NewDesc("hubmon_speedtest_jitter_seconds",
		"Jitter (standard deviation of the idle RTT), of the most recent test that measured it.", labelsProbe, nil)
	descFigureTime = prometheus.NewDesc("hubmon_speedtest_figure_timestamp_seconds",
		"When the exported value of each figure was measured (Unix time).", []string{"site", "probe", "figure"}, nil)
	descLoaded = prometheus.NewDesc("hubmon_speedtest_loaded_latency_seconds",
		"Median round-trip time while the line was downloading / uploading (latency under load).", []string{"site", "probe", "direction"}, nil)
	descAdded = prometheus.NewDesc("hubmon_speedtest_added_latency_seconds",
		"Latency under load minus idle latency, by direction: what a video call feels while the line is busy.", []string{"site", "probe", "direction"}, nil)
	descGrade = prometheus.NewDesc("hubmon_speedtest_bufferbloat_grade",
		"Bufferbloat grade of the most recent test that graded it (A+ < 5 ms added latency, A < 30, B < 60, C < 200, D < 400, F); value always 1.", []string{"site", "probe", "grade"}, nil)
	descSuccess = prometheus.NewDesc("hubmon_speedtest_success",
		"1 if the most recent speed test succeeded, 0 if it failed.", labelsProbe, nil)
	descLastAttempt = prometheus.NewDesc("hubmon_speedtest_last_attempt_timestamp_seconds",
		"When the most recent speed test started (Unix time).", labelsProbe, nil)
	descLastSuccess = prometheus.NewDesc("hubmon_speedtest_last_success_timestamp_seconds",
		"When the most recent successful speed test started (Unix time).", labelsProbe, nil)
	descBytes = prometheus.NewDesc("hubmon_speedtest_data_used_bytes",
		"Data the most recent speed test moved, by direction.", []string{"site", "probe", "direction"}, nil)

	descUp = prometheus.NewDesc("hubmon_agent_up",
		"1 if the agent's MQTT session is up (its last status is online), 0 if offline.", labelsSite, nil)
	descLastSeen = prometheus.NewDesc("hubmon_agent_last_seen_timestamp_seconds",
		"When the collector last received anything from the site (Unix time).", labelsSite, nil)
	descInfo = prometheus.NewDesc("hubmon_agent_info",
		"The agent of each site: identity, version and platform.", []string{"site", "agent_id", "version", "os", "arch"}, nil)
	descBacklog = prometheus.NewDesc("hubmon_agent_outbox_backlog_messages",
		"Measurements waiting in the agent's outbox for the collector's acknowledgement, as last reported.", labelsSite, nil)
	descDropped = prometheus.NewDesc("hubmon_agent_outbox_dropped_messages_total",
		"Measurements the agent discarded because its outbox was full, as last reported.", labelsSite, nil)
	descStart = prometheus.NewDesc("hubmon_agent_start_timestamp_seconds",
		"When the agent process started (Unix time), from its last status.", labelsSite, nil)
	descClock = prometheus.NewDesc("hubmon_agent_clock_synchronized",
		"0 when the agent's last status said its system clock was not synchronised (its measurements' times may be wrong), else 1.", labelsSite, nil)
)

// Describe implements prometheus.Collector.
func (f *Fleet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDownload, descUpload, descLatency, descJitter, descFigureTime, descLoaded, descAdded, descGrade,
		descSuccess, descLastAttempt, descLastSuccess, descBytes, descUp, descLastSeen, descInfo, descBacklog,
		descDropped, descStart, descClock} {
		ch <- d
	}
	for _, d := range lightDescs {
		ch <- d
	}
	for _, d := range totalDescs {
		ch <- d
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Collect implements prometheus.Collector.
func (f *Fleet) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Label values come from validated messages (valid UTF-8, bounded), but a
	// scrape must never panic: a metric that cannot be built is left out.
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string) {
		if m, err := prometheus.NewConstMetric(d, t, v, lv...); err == nil {
			ch <- m
		}
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) { emit(d, prometheus.GaugeValue, v, lv...) }
	for k, s := range f.speeds {
		for _, fig := range []struct {
			name string
			d    *prometheus.Desc
			f    *figure
		}{{"download", descDownload, s.download.bytes()}, {"upload", descUpload, s.upload.bytes()}, {"latency", descLatency, s.latency}, {"jitter", descJitter, s.jitter}} {
			if fig.f != nil {
				gauge(fig.d, fig.f.v, k.site, k.probe)
				gauge(descFigureTime, unix(fig.f.at), k.site, k.probe, fig.name)
			}
		}
		ok := 0.0
		if s.success {
			ok = 1
		}
		gauge(descSuccess, ok, k.site, k.probe)
		gauge(descLastAttempt, unix(s.lastAttempt), k.site, k.probe)
		if !s.lastSuccess.IsZero() {
			gauge(descLastSuccess, unix(s.lastSuccess), k.site, k.probe)
		}
		for _, fig := range []struct {
			d         *prometheus.Desc
			f         *figure
			direction string
		}{{descLoaded, s.loadedDown, "download"}, {descLoaded, s.loadedUp, "upload"}, {descAdded, s.addedDown, "download"}, {descAdded, s.addedUp, "upload"}} {
			if fig.f != nil {
				gauge(fig.d, fig.f.v, k.site, k.probe, fig.direction)
			}
		}
		if s.grade != "" {
			gauge(descGrade, 1, k.site, k.probe, s.grade)
		}
		gauge(descBytes, float64(s.downloadBytes), k.site, k.probe, "download")
		gauge(descBytes, float64(s.uploadBytes), k.site, k.probe, "upload")
	}
	f.collectLight(gauge)
	f.collectTotals(emit)
	for site, a := range f.agents {
		up := 0.0
		if a.State == wire.StateOnline {
			up = 1
		}
		gauge(descUp, up, site)
		gauge(descLastSeen, unix(a.LastSeenAt), site)
		gauge(descInfo, 1, site, a.AgentID, a.AgentVersion, a.OS, a.Arch)
		gauge(descBacklog, float64(a.OutboxBacklog), site)
		emit(descDropped, prometheus.CounterValue, float64(a.OutboxDroppedTotal), site)
		gauge(descStart, unix(a.SentAt)-a.UptimeSeconds, site)
		synced := 1.0
		if a.ClockUnsynced {
			synced = 0
		}
		gauge(descClock, synced, site)
	}
}
