package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descProbeSuccess = prometheus.NewDesc("hubmon_probe_success",
		"1 if the most recent run of the probe succeeded, 0 if it failed.", []string{"site", "probe", "kind"}, nil)
	descProbeLastRun = prometheus.NewDesc("hubmon_probe_last_run_timestamp_seconds",
		"When the most recent run of the probe started (Unix time).", []string{"site", "probe", "kind"}, nil)

	// line quality: the most recent summary (one per interval, about a
	// minute), by method (udp to the echo responder, icmp)
	labelsLQ   = []string{"site", "probe", "method"}
	descLQSent = prometheus.NewDesc("hubmon_linequality_sent_probes",
		"Probes sent in the most recent line-quality interval.", labelsLQ, nil)
	descLQLoss = prometheus.NewDesc("hubmon_linequality_loss_ratio",
		"Share of probes lost in the most recent line-quality interval (0-1).", labelsLQ, nil)
	descLQRTT = prometheus.NewDesc("hubmon_linequality_rtt_seconds",
		"Round-trip time in the most recent line-quality interval, by statistic (min, p50, p95, max).", []string{"site", "probe", "method", "statistic"}, nil)
	descLQJitter = prometheus.NewDesc("hubmon_linequality_jitter_seconds",
		"Mean absolute difference of consecutive RTTs in the most recent line-quality interval.", labelsLQ, nil)
	descLQInterval = prometheus.NewDesc("hubmon_linequality_interval_seconds",
		"Length of the most recent line-quality interval.", labelsLQ, nil)
	descLQOutage = prometheus.NewDesc("hubmon_linequality_outage_active",
		"1 while a disconnection is going on (at the end of the most recent interval).", labelsLQ, nil)
	descLQOutageSince = prometheus.NewDesc("hubmon_linequality_outage_start_timestamp_seconds",
		"When the disconnection going on began (Unix time); absent when none.", labelsLQ, nil)
	descLQLastOutage = prometheus.NewDesc("hubmon_linequality_last_outage_duration_seconds",
		"Duration of the last disconnection that ended in the most recent interval, by cause (wan: the router answered; lan: it did not).", []string{"site", "probe", "method", "cause"}, nil)

	// DNS
	descDNSSuccess = prometheus.NewDesc("hubmon_dns_success",
		"1 if the name resolved in the most recent DNS run.", []string{"site", "probe", "resolver", "name"}, nil)
	descDNSSeconds = prometheus.NewDesc("hubmon_dns_resolve_seconds",
		"Resolution time in the most recent DNS run.", []string{"site", "probe", "resolver", "name"}, nil)

	// essential services
	descHTTPSuccess = prometheus.NewDesc("hubmon_http_success",
		"1 if the service answered (2xx or 3xx) in the most recent check.", []string{"site", "probe", "service"}, nil)
	descHTTPStatus = prometheus.NewDesc("hubmon_http_status_code",
		"HTTP status code of the most recent check.", []string{"site", "probe", "service"}, nil)
	descHTTPPhase = prometheus.NewDesc("hubmon_http_phase_seconds",
		"Duration of each phase of the most recent check (dns, connect, tls, first_byte, total).", []string{"site", "probe", "service", "phase"}, nil)
	descHTTPCert = prometheus.NewDesc("hubmon_http_cert_expiry_timestamp_seconds",
		"When the service's TLS certificate expires (Unix time).", []string{"site", "probe", "service"}, nil)

	// Wi-Fi
	descWiFiSignal = prometheus.NewDesc("hubmon_wifi_signal_dbm",
		"Wi-Fi signal strength in dBm.", labelsProbe, nil)
	descWiFiRate = prometheus.NewDesc("hubmon_wifi_link_bytes_per_second",
		"Wi-Fi link (transmit) rate in bytes per second (x8 for bit/s).", labelsProbe, nil)
	descWiFiFreq = prometheus.NewDesc("hubmon_wifi_frequency_hertz",
		"Wi-Fi channel frequency.", labelsProbe, nil)
	descWiFiInfo = prometheus.NewDesc("hubmon_wifi_info",
		"The Wi-Fi network the agent uses.", []string{"site", "probe", "interface", "ssid", "band"}, nil)

	// data budget (from the agent's status)
	descBudget = prometheus.NewDesc("hubmon_agent_data_budget_bytes",
		"The site's monthly speed-test data budget (absent when none).", labelsSite, nil)
	descBudgetUsed = prometheus.NewDesc("hubmon_agent_data_used_bytes",
		"Data the site's speed tests used this month.", labelsSite, nil)
	descSkipped = prometheus.NewDesc("hubmon_agent_speedtests_skipped",
		"Speed tests skipped this month to stay inside the data budget (or because one was still running).", labelsSite, nil)
	descShortened = prometheus.NewDesc("hubmon_agent_speedtests_shortened",
		"Speed tests shortened this month to stay inside the data budget.", labelsSite, nil)
	descLost = prometheus.NewDesc("hubmon_agent_measurements_lost",
		"Measurements the agent could not write to its outbox since it started.", labelsSite, nil)
)

var lightDescs = []*prometheus.Desc{descProbeSuccess, descProbeLastRun, descLQSent, descLQLoss, descLQRTT, descLQJitter,
	descLQInterval, descLQOutage, descLQOutageSince, descLQLastOutage, descDNSSuccess, descDNSSeconds, descHTTPSuccess,
	descHTTPStatus, descHTTPPhase, descHTTPCert, descWiFiSignal, descWiFiRate, descWiFiFreq, descWiFiInfo, descBudget,
	descBudgetUsed, descSkipped, descShortened, descLost}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectLight emits the generic probe series and the light kinds. Called
// with f.mu held.
func (f *Fleet) collectLight(gauge func(d *prometheus.Desc, v float64, lv ...string)) {
	opt := func(d *prometheus.Desc, v *float64, scale float64, lv ...string) {
		if v != nil {
			gauge(d, *v*scale, lv...)
		}
	}
	for k, r := range f.runs {
		gauge(descProbeSuccess, b2f(r.success), k.site, k.probe, r.kind)
		gauge(descProbeLastRun, unix(r.at), k.site, k.probe, r.kind)
	}
	for k, m := range f.light {
		switch {
		case m.LineQuality != nil:
			l := m.LineQuality
			gauge(descLQSent, float64(l.Sent), k.site, k.probe, l.Method)
			if l.Sent > 0 {
				gauge(descLQLoss, float64(l.Sent-l.Received)/float64(l.Sent), k.site, k.probe, l.Method)
			}
			opt(descLQRTT, l.RTTMinSeconds, 1, k.site, k.probe, l.Method, "min")
			opt(descLQRTT, l.RTTP50Seconds, 1, k.site, k.probe, l.Method, "p50")
			opt(descLQRTT, l.RTTP95Seconds, 1, k.site, k.probe, l.Method, "p95")
			opt(descLQRTT, l.RTTMaxSeconds, 1, k.site, k.probe, l.Method, "max")
			opt(descLQJitter, l.JitterSeconds, 1, k.site, k.probe, l.Method)
			gauge(descLQInterval, l.IntervalSeconds, k.site, k.probe, l.Method)
			gauge(descLQOutage, b2f(l.OutageSince != nil), k.site, k.probe, l.Method)
			if l.OutageSince != nil {
				gauge(descLQOutageSince, unix(*l.OutageSince), k.site, k.probe, l.Method)
			}
			last := map[string]float64{}
			for _, o := range l.Outages {
				last[o.Cause] = o.DurationSeconds
			}
			for cause, d := range last {
				gauge(descLQLastOutage, d, k.site, k.probe, l.Method, cause)
			}
		case m.DNS != nil:
			for _, r := range m.DNS.Results {
				gauge(descDNSSuccess, b2f(r.Success), k.site, k.probe, r.Resolver, r.Name)
				opt(descDNSSeconds, r.ResolveSeconds, 1, k.site, k.probe, r.Resolver, r.Name)
			}
		case m.HTTP != nil:
			for _, r := range m.HTTP.Results {
				gauge(descHTTPSuccess, b2f(r.Success), k.site, k.probe, r.Name)
				if r.StatusCode > 0 {
					gauge(descHTTPStatus, float64(r.StatusCode), k.site, k.probe, r.Name)
				}
				opt(descHTTPPhase, r.DNSSeconds, 1, k.site, k.probe, r.Name, "dns")
				opt(descHTTPPhase, r.ConnectSeconds, 1, k.site, k.probe, r.Name, "connect")
				opt(descHTTPPhase, r.TLSSeconds, 1, k.site, k.probe, r.Name, "tls")
				opt(descHTTPPhase, r.FirstByteSeconds, 1, k.site, k.probe, r.Name, "first_byte")
				opt(descHTTPPhase, r.TotalSeconds, 1, k.site, k.probe, r.Name, "total")
				if r.CertNotAfter != nil {
					gauge(descHTTPCert, unix(*r.CertNotAfter), k.site, k.probe, r.Name)
				}
			}
		case m.WiFi != nil:
			w := m.WiFi
			opt(descWiFiSignal, w.SignalDBM, 1, k.site, k.probe)
			opt(descWiFiRate, w.LinkBitsPerSecond, 1.0/8, k.site, k.probe)
			opt(descWiFiFreq, w.FrequencyMHz, 1e6, k.site, k.probe)
			gauge(descWiFiInfo, 1, k.site, k.probe, w.Interface, w.SSID, w.Band)
		}
	}
	for site, a := range f.agents {
		if a.DataBudgetBytes > 0 {
			gauge(descBudget, float64(a.DataBudgetBytes), site)
		}
		gauge(descBudgetUsed, float64(a.DataUsedBytes), site)
		gauge(descSkipped, float64(a.SpeedtestsSkipped), site)
		gauge(descShortened, float64(a.SpeedtestsShortened), site)
		gauge(descLost, float64(a.MeasurementsLostTotal), site)
	}
}
