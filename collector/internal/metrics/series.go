package metrics

import (
	"math"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/exposition"
)

// The per-site families of /metrics: each one read by a dashboard, a
// recording or alerting rule (dashboards/), or the only output of its probe
// (Wi-Fi). Figures nothing reads are not exported: the history keeps every
// measurement whole.
var (
	gauge   = exposition.Gauge
	counter = exposition.Counter

	famDownload = exposition.NewFamily("hubmon_speedtest_download_bytes_per_second",
		"Download rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", gauge, "site", "probe")
	famUpload = exposition.NewFamily("hubmon_speedtest_upload_bytes_per_second",
		"Upload rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", gauge, "site", "probe")
	famLatency = exposition.NewFamily("hubmon_speedtest_latency_seconds",
		"Idle round-trip time to the speed-test server, of the most recent test that measured it.", gauge, "site", "probe")
	famFigureTime = exposition.NewFamily("hubmon_speedtest_figure_timestamp_seconds",
		"When the exported download and upload rates were measured (Unix time).", gauge, "site", "probe", "figure")
	famSuccess = exposition.NewFamily("hubmon_speedtest_success",
		"1 if the most recent speed test succeeded, 0 if it failed.", gauge, "site", "probe")
	famLastSuccess = exposition.NewFamily("hubmon_speedtest_last_success_timestamp_seconds",
		"When the most recent successful speed test started (Unix time).", gauge, "site", "probe")
	famLoaded = exposition.NewFamily("hubmon_speedtest_loaded_latency_seconds",
		"Median round-trip time while the line was downloading / uploading (latency under load).", gauge, "site", "probe", "direction")
	famAdded = exposition.NewFamily("hubmon_speedtest_added_latency_seconds",
		"Latency under load minus idle latency, by direction: what a video call feels while the line is busy.", gauge, "site", "probe", "direction")
	famGrade = exposition.NewFamily("hubmon_speedtest_bufferbloat_grade",
		"Bufferbloat grade of the most recent test that graded it (A+ < 5 ms added latency, A < 30, B < 60, C < 200, D < 400, F); value always 1.", gauge, "site", "probe", "grade")

	// line quality: the most recent summary (one per interval, about a
	// minute), by method (udp to the echo responder, icmp)
	famLQLoss = exposition.NewFamily("hubmon_linequality_loss_ratio",
		"Share of probes lost in the most recent line-quality interval (0-1).", gauge, "site", "probe", "method")
	famLQRTT = exposition.NewFamily("hubmon_linequality_rtt_seconds",
		"Round-trip time in the most recent line-quality interval, by statistic (p50, p95).", gauge, "site", "probe", "method", "statistic")
	famLQJitter = exposition.NewFamily("hubmon_linequality_jitter_seconds",
		"Mean absolute difference of consecutive RTTs in the most recent line-quality interval.", gauge, "site", "probe", "method")
	famLQOutage = exposition.NewFamily("hubmon_linequality_outage_active",
		"1 while a disconnection is going on (at the end of the most recent interval).", gauge, "site", "probe", "method")
	famLQSentTotal = exposition.NewFamily("hubmon_linequality_probes_sent_total",
		"Line-quality probes sent, over the whole history.", counter, "site", "probe", "method")
	famLQLostTotal = exposition.NewFamily("hubmon_linequality_probes_lost_total",
		"Line-quality probes lost, over the whole history.", counter, "site", "probe", "method")
	famLQOutagesTotal = exposition.NewFamily("hubmon_linequality_outages_total",
		"Disconnections that ended, by cause, over the whole history.", counter, "site", "probe", "method", "cause")
	famLQOutageSecondsTotal = exposition.NewFamily("hubmon_linequality_outage_seconds_total",
		"Time disconnected, by cause, over the whole history (counted when each disconnection ends).", counter, "site", "probe", "method", "cause")

	famDNSSuccess = exposition.NewFamily("hubmon_dns_success",
		"1 if the name resolved in the most recent DNS run.", gauge, "site", "probe", "resolver", "name")
	famDNSSeconds = exposition.NewFamily("hubmon_dns_resolve_seconds",
		"Resolution time in the most recent DNS run.", gauge, "site", "probe", "resolver", "name")

	famHTTPSuccess = exposition.NewFamily("hubmon_http_success",
		"1 if the service answered (2xx or 3xx) in the most recent check.", gauge, "site", "probe", "service")
	famHTTPStatus = exposition.NewFamily("hubmon_http_status_code",
		"HTTP status code of the most recent check.", gauge, "site", "probe", "service")
	famHTTPPhase = exposition.NewFamily("hubmon_http_phase_seconds",
		"Duration of each phase of the most recent check (dns, connect, tls, first_byte, total).", gauge, "site", "probe", "service", "phase")
	famHTTPCert = exposition.NewFamily("hubmon_http_cert_expiry_timestamp_seconds",
		"When the service's TLS certificate expires (Unix time).", gauge, "site", "probe", "service")

	famWiFiSignal = exposition.NewFamily("hubmon_wifi_signal_dbm",
		"Wi-Fi signal strength in dBm.", gauge, "site", "probe")
	famWiFiRate = exposition.NewFamily("hubmon_wifi_link_bytes_per_second",
		"Wi-Fi link (transmit) rate in bytes per second (x8 for bit/s).", gauge, "site", "probe")
	famWiFiFreq = exposition.NewFamily("hubmon_wifi_frequency_hertz",
		"Wi-Fi channel frequency.", gauge, "site", "probe")
	famWiFiInfo = exposition.NewFamily("hubmon_wifi_info",
		"The Wi-Fi network the agent uses.", gauge, "site", "probe", "interface", "ssid", "band")

	famUp = exposition.NewFamily("hubmon_agent_up",
		"1 if the agent's MQTT session is up (its last status is online), 0 if offline.", gauge, "site")
	famLastSeen = exposition.NewFamily("hubmon_agent_last_seen_timestamp_seconds",
		"When the collector last received anything from the site (Unix time).", gauge, "site")
	famInfo = exposition.NewFamily("hubmon_agent_info",
		"The agent of each site: identity, version and platform.", gauge, "site", "agent_id", "version", "os", "arch")
	famBacklog = exposition.NewFamily("hubmon_agent_outbox_backlog_messages",
		"Measurements waiting in the agent's outbox for the collector's acknowledgement, as last reported.", gauge, "site")
	famDropped = exposition.NewFamily("hubmon_agent_outbox_dropped_messages_total",
		"Measurements the agent discarded because its outbox was full, as last reported.", counter, "site")
	famStart = exposition.NewFamily("hubmon_agent_start_timestamp_seconds",
		"When the agent process started (Unix time), from its last status.", gauge, "site")
	famClock = exposition.NewFamily("hubmon_agent_clock_synchronized",
		"0 when the agent's last status said its system clock was not synchronised (its measurements' times may be wrong), else 1.", gauge, "site")
	famBudget = exposition.NewFamily("hubmon_agent_data_budget_bytes",
		"The site's monthly speed-test data budget (absent when none).", gauge, "site")
	famBudgetUsed = exposition.NewFamily("hubmon_agent_data_used_bytes",
		"Data the site's speed tests used this month.", gauge, "site")
	famSkipped = exposition.NewFamily("hubmon_agent_speedtests_skipped",
		"Speed tests skipped this month to stay inside the data budget (or because one was still running).", gauge, "site")
	famShortened = exposition.NewFamily("hubmon_agent_speedtests_shortened",
		"Speed tests shortened this month to stay inside the data budget.", gauge, "site")
	famLost = exposition.NewFamily("hubmon_agent_measurements_lost",
		"Measurements the agent could not write to its outbox since it started.", gauge, "site")
)

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Label values the series use.
var (
	lDownload, lUpload = label("download"), label("upload")
	lDirections        = [2]exposition.Label{lDownload, lUpload}
	lP50, lP95         = label("p50"), label("p95")
	lCauses            = [len(causes)]exposition.Label{label(causes[0]), label(causes[1]), label(causes[2])}
	lPhases            = func() (ls [len(httpPhases)]exposition.Label) {
		for i, p := range httpPhases {
			ls[i] = label(p)
		}
		return ls
	}()
)

func label(s string) exposition.Label {
	l, ok := exposition.NewLabel(s)
	if !ok {
		panic("metrics: invalid label value " + s)
	}
	return l
}

// rows are the states of a snapshot, flattened by kind, in site and probe
// order, with the figures copied in: each family is written in a pass over
// one of them, which reads memory in order (a pass that followed pointers
// to 20,000 sites' records, scattered in the heap, waited on memory for
// each).
type rows struct {
	speeds []speedRow
	lines  []lineRow
	totals []totalRow
	dns    []dnsRow
	http   []httpRow
	wifi   []wifiRow
	agents []agentRow
}

type (
	speedRow struct {
		site, probe               exposition.Label
		down, up, latency         float64 // NaN for none
		downAt, upAt, lastSuccess float64 // Unix time; NaN for none
		loaded, added             [2]float64
		success, graded           bool
		grade                     exposition.Label
	}
	lineRow struct {
		site, probe exposition.Label
		l           lineFig
	}
	totalRow struct {
		site, probe exposition.Label
		t           lineTotal
	}
	dnsRow struct {
		site, probe exposition.Label
		d           dnsFig
	}
	httpRow struct {
		site, probe exposition.Label
		h           httpFig
	}
	wifiRow struct {
		site, probe exposition.Label
		w           *wifiFig
	}
	agentRow struct {
		site   exposition.Label
		v      [len(agentFigures)]float64
		budget int64
		info   [4]exposition.Label
	}
)

// agentFigures are the families of an agent's figures, in the order
// agentRow.v has them.
var agentFigures = [...]struct {
	fam *exposition.Family
	get func(a *agentState) float64
}{
	{famUp, func(a *agentState) float64 { return b2f(a.State == wire.StateOnline) }},
	{famLastSeen, func(a *agentState) float64 { return unix(a.LastSeenAt) }},
	{famBacklog, func(a *agentState) float64 { return float64(a.OutboxBacklog) }},
	{famDropped, func(a *agentState) float64 { return float64(a.OutboxDroppedTotal) }},
	{famStart, func(a *agentState) float64 { return unix(a.SentAt) - a.UptimeSeconds }},
	{famClock, func(a *agentState) float64 { return b2f(!a.ClockUnsynced) }},
	{famBudgetUsed, func(a *agentState) float64 { return float64(a.DataUsedBytes) }},
	{famSkipped, func(a *agentState) float64 { return float64(a.SpeedtestsSkipped) }},
	{famShortened, func(a *agentState) float64 { return float64(a.SpeedtestsShortened) }},
	{famLost, func(a *agentState) float64 { return float64(a.MeasurementsLostTotal) }},
}

// value returns f's value, or NaN for none.
func (f figure) value() float64 {
	if !f.ok {
		return math.NaN()
	}
	return f.v
}

// time returns when f was measured (Unix time), or NaN for none.
func (f figure) time() float64 {
	if !f.ok {
		return math.NaN()
	}
	return unix(f.at)
}

func newSpeedRow(site, probe exposition.Label, s *speedState) speedRow {
	r := speedRow{site: site, probe: probe, down: s.download.value() / 8, up: s.upload.value() / 8, latency: s.latency.value(),
		downAt: s.download.time(), upAt: s.upload.time(), lastSuccess: math.NaN(),
		loaded:  [2]float64{s.loadedDown.value(), s.loadedUp.value()},
		added:   [2]float64{s.addedDown.value(), s.addedUp.value()},
		success: s.success, graded: s.graded, grade: s.grade}
	if !s.lastSuccess.IsZero() {
		r.lastSuccess = unix(s.lastSuccess)
	}
	return r
}

func newAgentRow(site exposition.Label, a *agentState) agentRow {
	r := agentRow{site: site, budget: a.DataBudgetBytes, info: a.info}
	for i, f := range agentFigures {
		r.v[i] = f.get(a)
	}
	return r
}

func flatten(snap []*siteState) *rows {
	r := &rows{speeds: make([]speedRow, 0, len(snap)), lines: make([]lineRow, 0, len(snap)), totals: make([]totalRow, 0, len(snap)),
		dns: make([]dnsRow, 0, 2*len(snap)), http: make([]httpRow, 0, 3*len(snap)), agents: make([]agentRow, 0, len(snap))}
	sites := make([]exposition.Label, len(snap))
	for i, s := range snap {
		sites[i] = s.label
	}
	sites = exposition.Pack(sites)
	for i, s := range snap {
		site := sites[i]
		if s.agent != nil {
			r.agents = append(r.agents, newAgentRow(site, s.agent))
		}
		for _, p := range s.probes {
			if p.speed != nil {
				r.speeds = append(r.speeds, newSpeedRow(site, p.label, p.speed))
			}
			for i := range p.streams {
				st := &p.streams[i]
				switch {
				case st.line != nil:
					r.lines = append(r.lines, lineRow{site, p.label, *st.line})
				case st.wifi != nil:
					r.wifi = append(r.wifi, wifiRow{site, p.label, st.wifi})
				}
				for j := range st.dns {
					r.dns = append(r.dns, dnsRow{site, p.label, st.dns[j]})
				}
				for j := range st.http {
					r.http = append(r.http, httpRow{site, p.label, st.http[j]})
				}
			}
			for _, t := range p.totals {
				r.totals = append(r.totals, totalRow{site, p.label, *t})
			}
		}
	}
	return r
}

// WriteSeries writes the series of every site to w, from a snapshot taken
// when it starts. It may be called concurrently with everything else.
func (f *Fleet) WriteSeries(w *exposition.Writer) {
	r := flatten(f.snapshot())
	writeSpeeds(w, r.speeds)
	writeLines(w, r.lines, r.totals)
	writeLight(w, r)
	writeAgents(w, r.agents)
}

func writeSpeeds(w *exposition.Writer, speeds []speedRow) {
	for _, fig := range []struct {
		fam *exposition.Family
		get func(r *speedRow) float64
	}{
		{famDownload, func(r *speedRow) float64 { return r.down }},
		{famUpload, func(r *speedRow) float64 { return r.up }},
		{famLatency, func(r *speedRow) float64 { return r.latency }},
	} {
		for i := range speeds {
			r := &speeds[i]
			if v := fig.get(r); !math.IsNaN(v) {
				w.SampleLabels(fig.fam, v, r.site, r.probe)
			}
		}
	}
	for i := range speeds {
		r := &speeds[i]
		if !math.IsNaN(r.downAt) {
			w.SampleLabels(famFigureTime, r.downAt, r.site, r.probe, lDownload)
		}
		if !math.IsNaN(r.upAt) {
			w.SampleLabels(famFigureTime, r.upAt, r.site, r.probe, lUpload)
		}
	}
	for i := range speeds {
		r := &speeds[i]
		w.SampleLabels(famSuccess, b2f(r.success), r.site, r.probe)
	}
	for i := range speeds {
		if r := &speeds[i]; !math.IsNaN(r.lastSuccess) {
			w.SampleLabels(famLastSuccess, r.lastSuccess, r.site, r.probe)
		}
	}
	for _, dir := range []struct {
		fam *exposition.Family
		get func(r *speedRow) *[2]float64
	}{
		{famLoaded, func(r *speedRow) *[2]float64 { return &r.loaded }},
		{famAdded, func(r *speedRow) *[2]float64 { return &r.added }},
	} {
		for i := range speeds {
			r := &speeds[i]
			for d, v := range dir.get(r) {
				if !math.IsNaN(v) {
					w.SampleLabels(dir.fam, v, r.site, r.probe, lDirections[d])
				}
			}
		}
	}
	for i := range speeds {
		if r := &speeds[i]; r.graded {
			w.SampleLabels(famGrade, 1, r.site, r.probe, r.grade)
		}
	}
}

func writeLines(w *exposition.Writer, lines []lineRow, totals []totalRow) {
	for i := range lines {
		r := &lines[i]
		if l := r.l; l.sent > 0 {
			w.SampleLabels(famLQLoss, float64(l.sent-l.received)/float64(l.sent), r.site, r.probe, l.method)
		}
	}
	for i := range lines {
		r := &lines[i]
		if !math.IsNaN(r.l.p50) {
			w.SampleLabels(famLQRTT, r.l.p50, r.site, r.probe, r.l.method, lP50)
		}
		if !math.IsNaN(r.l.p95) {
			w.SampleLabels(famLQRTT, r.l.p95, r.site, r.probe, r.l.method, lP95)
		}
	}
	for i := range lines {
		r := &lines[i]
		if !math.IsNaN(r.l.jitter) {
			w.SampleLabels(famLQJitter, r.l.jitter, r.site, r.probe, r.l.method)
		}
	}
	for i := range lines {
		r := &lines[i]
		w.SampleLabels(famLQOutage, b2f(r.l.outage), r.site, r.probe, r.l.method)
	}
	for i := range totals {
		r := &totals[i]
		w.SampleLabels(famLQSentTotal, float64(r.t.sent), r.site, r.probe, r.t.label)
	}
	for i := range totals {
		r := &totals[i]
		w.SampleLabels(famLQLostTotal, float64(r.t.sent-r.t.received), r.site, r.probe, r.t.label)
	}
	for i := range totals {
		r := &totals[i]
		for c := range causes {
			w.SampleLabels(famLQOutagesTotal, float64(r.t.outages[c]), r.site, r.probe, r.t.label, lCauses[c])
		}
	}
	for i := range totals {
		r := &totals[i]
		for c := range causes {
			w.SampleLabels(famLQOutageSecondsTotal, r.t.outageSeconds[c], r.site, r.probe, r.t.label, lCauses[c])
		}
	}
}

func writeLight(w *exposition.Writer, r *rows) {
	for i := range r.dns {
		x := &r.dns[i]
		w.SampleLabels(famDNSSuccess, b2f(x.d.success), x.site, x.probe, x.d.resolver, x.d.name)
	}
	for i := range r.dns {
		x := &r.dns[i]
		if !math.IsNaN(x.d.seconds) {
			w.SampleLabels(famDNSSeconds, x.d.seconds, x.site, x.probe, x.d.resolver, x.d.name)
		}
	}
	for i := range r.http {
		x := &r.http[i]
		w.SampleLabels(famHTTPSuccess, b2f(x.h.success), x.site, x.probe, x.h.name)
	}
	for i := range r.http {
		x := &r.http[i]
		if x.h.status > 0 {
			w.SampleLabels(famHTTPStatus, float64(x.h.status), x.site, x.probe, x.h.name)
		}
	}
	for i := range r.http {
		x := &r.http[i]
		for ph, v := range x.h.phases {
			if !math.IsNaN(v) {
				w.SampleLabels(famHTTPPhase, v, x.site, x.probe, x.h.name, lPhases[ph])
			}
		}
	}
	for i := range r.http {
		x := &r.http[i]
		if !math.IsNaN(x.h.cert) {
			w.SampleLabels(famHTTPCert, x.h.cert, x.site, x.probe, x.h.name)
		}
	}
	for _, fig := range []struct {
		fam *exposition.Family
		get func(w *wifiFig) float64
	}{
		{famWiFiSignal, func(w *wifiFig) float64 { return w.signal }},
		{famWiFiRate, func(w *wifiFig) float64 { return w.rate }},
		{famWiFiFreq, func(w *wifiFig) float64 { return w.hertz }},
	} {
		for i := range r.wifi {
			x := &r.wifi[i]
			if v := fig.get(x.w); !math.IsNaN(v) {
				w.SampleLabels(fig.fam, v, x.site, x.probe)
			}
		}
	}
	for i := range r.wifi {
		x := &r.wifi[i]
		w.SampleLabels(famWiFiInfo, 1, x.site, x.probe, x.w.iface, x.w.ssid, x.w.band)
	}
}

func writeAgents(w *exposition.Writer, agents []agentRow) {
	for f, fig := range agentFigures {
		for i := range agents {
			r := &agents[i]
			w.SampleLabels(fig.fam, r.v[f], r.site)
		}
	}
	for i := range agents {
		r := &agents[i]
		w.SampleLabels(famInfo, 1, r.site, r.info[0], r.info[1], r.info[2], r.info[3])
	}
	for i := range agents {
		if r := &agents[i]; r.budget > 0 {
			w.SampleLabels(famBudget, float64(r.budget), r.site)
		}
	}
}
