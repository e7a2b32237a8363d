package metrics

import (
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

// rows are the states of a snapshot, flattened by kind, in site and probe
// order.
type rows struct {
	speeds []speedRow
	lines  []lightRow // line quality
	dns    []lightRow
	http   []lightRow
	wifi   []lightRow
	totals []totalRow
	agents []*siteState
}

type speedRow struct {
	site, probe string
	s           *speedState
}

type lightRow struct {
	site, probe string
	m           *wire.Measurement
}

type totalRow struct {
	site, probe string
	t           *lineTotal
}

func flatten(snap []*siteState) *rows {
	r := &rows{}
	for _, s := range snap {
		if s.agent != nil {
			r.agents = append(r.agents, s)
		}
		for _, p := range s.probes {
			if p.speed != nil {
				r.speeds = append(r.speeds, speedRow{s.id, p.name, p.speed})
			}
			for _, st := range p.streams {
				lr := lightRow{s.id, p.name, st.m}
				switch {
				case st.m.LineQuality != nil:
					r.lines = append(r.lines, lr)
				case st.m.DNS != nil:
					r.dns = append(r.dns, lr)
				case st.m.HTTP != nil:
					r.http = append(r.http, lr)
				case st.m.WiFi != nil:
					r.wifi = append(r.wifi, lr)
				}
			}
			for _, t := range p.totals {
				r.totals = append(r.totals, totalRow{s.id, p.name, t})
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
		fam   *exposition.Family
		get   func(s *speedState) *figure
		scale float64
	}{
		{famDownload, func(s *speedState) *figure { return s.download }, 1.0 / 8},
		{famUpload, func(s *speedState) *figure { return s.upload }, 1.0 / 8},
		{famLatency, func(s *speedState) *figure { return s.latency }, 1},
	} {
		for _, r := range speeds {
			if v := fig.get(r.s); v != nil {
				w.Sample(fig.fam, v.v*fig.scale, r.site, r.probe)
			}
		}
	}
	for _, r := range speeds {
		if r.s.download != nil {
			w.Sample(famFigureTime, unix(r.s.download.at), r.site, r.probe, "download")
		}
		if r.s.upload != nil {
			w.Sample(famFigureTime, unix(r.s.upload.at), r.site, r.probe, "upload")
		}
	}
	for _, r := range speeds {
		w.Sample(famSuccess, b2f(r.s.success), r.site, r.probe)
	}
	for _, r := range speeds {
		if !r.s.lastSuccess.IsZero() {
			w.Sample(famLastSuccess, unix(r.s.lastSuccess), r.site, r.probe)
		}
	}
	for _, dir := range []struct {
		fam        *exposition.Family
		down, up   func(s *speedState) *figure
		downN, upN string
	}{
		{famLoaded, func(s *speedState) *figure { return s.loadedDown }, func(s *speedState) *figure { return s.loadedUp }, "download", "upload"},
		{famAdded, func(s *speedState) *figure { return s.addedDown }, func(s *speedState) *figure { return s.addedUp }, "download", "upload"},
	} {
		for _, r := range speeds {
			if v := dir.down(r.s); v != nil {
				w.Sample(dir.fam, v.v, r.site, r.probe, dir.downN)
			}
			if v := dir.up(r.s); v != nil {
				w.Sample(dir.fam, v.v, r.site, r.probe, dir.upN)
			}
		}
	}
	for _, r := range speeds {
		if r.s.grade != "" {
			w.Sample(famGrade, 1, r.site, r.probe, r.s.grade)
		}
	}
}

func writeLines(w *exposition.Writer, lines []lightRow, totals []totalRow) {
	for _, r := range lines {
		if l := r.m.LineQuality; l.Sent > 0 {
			w.Sample(famLQLoss, float64(l.Sent-l.Received)/float64(l.Sent), r.site, r.probe, l.Method)
		}
	}
	for _, r := range lines {
		l := r.m.LineQuality
		if l.RTTP50Seconds != nil {
			w.Sample(famLQRTT, *l.RTTP50Seconds, r.site, r.probe, l.Method, "p50")
		}
		if l.RTTP95Seconds != nil {
			w.Sample(famLQRTT, *l.RTTP95Seconds, r.site, r.probe, l.Method, "p95")
		}
	}
	for _, r := range lines {
		if l := r.m.LineQuality; l.JitterSeconds != nil {
			w.Sample(famLQJitter, *l.JitterSeconds, r.site, r.probe, l.Method)
		}
	}
	for _, r := range lines {
		l := r.m.LineQuality
		w.Sample(famLQOutage, b2f(l.OutageSince != nil), r.site, r.probe, l.Method)
	}
	for _, r := range totals {
		w.Sample(famLQSentTotal, float64(r.t.sent), r.site, r.probe, r.t.method)
	}
	for _, r := range totals {
		w.Sample(famLQLostTotal, float64(r.t.sent-r.t.received), r.site, r.probe, r.t.method)
	}
	for _, r := range totals {
		for c, cause := range causes {
			w.Sample(famLQOutagesTotal, float64(r.t.outages[c]), r.site, r.probe, r.t.method, cause)
		}
	}
	for _, r := range totals {
		for c, cause := range causes {
			w.Sample(famLQOutageSecondsTotal, r.t.outageSeconds[c], r.site, r.probe, r.t.method, cause)
		}
	}
}

func writeLight(w *exposition.Writer, r *rows) {
	for _, x := range r.dns {
		for _, d := range x.m.DNS.Results {
			w.Sample(famDNSSuccess, b2f(d.Success), x.site, x.probe, d.Resolver, d.Name)
		}
	}
	for _, x := range r.dns {
		for _, d := range x.m.DNS.Results {
			if d.ResolveSeconds != nil {
				w.Sample(famDNSSeconds, *d.ResolveSeconds, x.site, x.probe, d.Resolver, d.Name)
			}
		}
	}
	for _, x := range r.http {
		for _, h := range x.m.HTTP.Results {
			w.Sample(famHTTPSuccess, b2f(h.Success), x.site, x.probe, h.Name)
		}
	}
	for _, x := range r.http {
		for _, h := range x.m.HTTP.Results {
			if h.StatusCode > 0 {
				w.Sample(famHTTPStatus, float64(h.StatusCode), x.site, x.probe, h.Name)
			}
		}
	}
	for _, x := range r.http {
		for _, h := range x.m.HTTP.Results {
			for _, ph := range []struct {
				name string
				v    *float64
			}{{"dns", h.DNSSeconds}, {"connect", h.ConnectSeconds}, {"tls", h.TLSSeconds}, {"first_byte", h.FirstByteSeconds}, {"total", h.TotalSeconds}} {
				if ph.v != nil {
					w.Sample(famHTTPPhase, *ph.v, x.site, x.probe, h.Name, ph.name)
				}
			}
		}
	}
	for _, x := range r.http {
		for _, h := range x.m.HTTP.Results {
			if h.CertNotAfter != nil {
				w.Sample(famHTTPCert, unix(*h.CertNotAfter), x.site, x.probe, h.Name)
			}
		}
	}
	for _, fig := range []struct {
		fam   *exposition.Family
		get   func(w *wire.WiFi) *float64
		scale float64
	}{
		{famWiFiSignal, func(w *wire.WiFi) *float64 { return w.SignalDBM }, 1},
		{famWiFiRate, func(w *wire.WiFi) *float64 { return w.LinkBitsPerSecond }, 1.0 / 8},
		{famWiFiFreq, func(w *wire.WiFi) *float64 { return w.FrequencyMHz }, 1e6},
	} {
		for _, x := range r.wifi {
			if v := fig.get(x.m.WiFi); v != nil {
				w.Sample(fig.fam, *v*fig.scale, x.site, x.probe)
			}
		}
	}
	for _, x := range r.wifi {
		wf := x.m.WiFi
		w.Sample(famWiFiInfo, 1, x.site, x.probe, wf.Interface, wf.SSID, wf.Band)
	}
}

func writeAgents(w *exposition.Writer, agents []*siteState) {
	for _, fig := range []struct {
		fam *exposition.Family
		get func(s *siteState) float64
	}{
		{famUp, func(s *siteState) float64 { return b2f(s.agent.State == wire.StateOnline) }},
		{famLastSeen, func(s *siteState) float64 { return unix(s.agent.LastSeenAt) }},
		{famBacklog, func(s *siteState) float64 { return float64(s.agent.OutboxBacklog) }},
		{famDropped, func(s *siteState) float64 { return float64(s.agent.OutboxDroppedTotal) }},
		{famStart, func(s *siteState) float64 { return unix(s.agent.SentAt) - s.agent.UptimeSeconds }},
		{famBudgetUsed, func(s *siteState) float64 { return float64(s.agent.DataUsedBytes) }},
		{famSkipped, func(s *siteState) float64 { return float64(s.agent.SpeedtestsSkipped) }},
		{famShortened, func(s *siteState) float64 { return float64(s.agent.SpeedtestsShortened) }},
		{famLost, func(s *siteState) float64 { return float64(s.agent.MeasurementsLostTotal) }},
	} {
		for _, s := range agents {
			w.Sample(fig.fam, fig.get(s), s.id)
		}
	}
	for _, s := range agents {
		a := s.agent
		w.Sample(famInfo, 1, s.id, a.AgentID, a.AgentVersion, a.OS, a.Arch)
	}
	for _, s := range agents {
		if s.agent.DataBudgetBytes > 0 {
			w.Sample(famBudget, float64(s.agent.DataBudgetBytes), s.id)
		}
	}
}
