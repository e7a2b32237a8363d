package metrics

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/store"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func speed(at time.Time, ok bool, dl, ul *float64) *wire.Measurement {
	m := &wire.Measurement{Site: "leeds-1", Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: at, Success: ok,
		Speedtest: &wire.Speedtest{DownloadBitsPerSecond: dl, UploadBitsPerSecond: ul, LatencySeconds: wire.Float(0.02), DownloadBytes: 5, UploadBytes: 7}}
	if !ok {
		m.Error = "upload: N/A"
	}
	return m
}

func TestFleetNeverExportsFailureAsZero(t *testing.T) {
	f := NewFleet()
	f.Observe(speed(t0, true, wire.Float(3e7), wire.Float(8e6)))
	f.Observe(speed(t0.Add(time.Hour), false, wire.Float(2e7), nil))             // upload failed
	f.Observe(speed(t0.Add(-time.Hour), true, wire.Float(1e6), wire.Float(1e6))) // late, older
	want := `
# HELP hubmon_speedtest_download_bytes_per_second Download rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).
# TYPE hubmon_speedtest_download_bytes_per_second gauge
hubmon_speedtest_download_bytes_per_second{probe="local",site="leeds-1"} 2.5e+06
# HELP hubmon_speedtest_upload_bytes_per_second Upload rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).
# TYPE hubmon_speedtest_upload_bytes_per_second gauge
hubmon_speedtest_upload_bytes_per_second{probe="local",site="leeds-1"} 1e+06
# HELP hubmon_speedtest_success 1 if the most recent speed test succeeded, 0 if it failed.
# TYPE hubmon_speedtest_success gauge
hubmon_speedtest_success{probe="local",site="leeds-1"} 0
# HELP hubmon_speedtest_last_success_timestamp_seconds When the most recent successful speed test started (Unix time).
# TYPE hubmon_speedtest_last_success_timestamp_seconds gauge
hubmon_speedtest_last_success_timestamp_seconds{probe="local",site="leeds-1"} 1.7956944e+09
`
	compareSeries(t, f, want, "hubmon_speedtest_download_bytes_per_second", "hubmon_speedtest_upload_bytes_per_second",
		"hubmon_speedtest_success", "hubmon_speedtest_last_success_timestamp_seconds")
}

// TestPromtoolCheckMetrics runs the real promtool over a full exposition.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	reg := prometheus.NewPedanticRegistry()
	f := NewFleet()
	f.Observe(speed(t0, true, wire.Float(3e7), wire.Float(8e6)))
	for _, name := range []string{"linequality", "dns", "http", "wifi"} {
		b, err := os.ReadFile("../../../agent/wire/testdata/measurement-v1-" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var m wire.Measurement
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		f.Observe(&m)
		f.Count(&m)
	}
	f.ObserveAgent(store.Agent{Status: wire.Status{Site: "leeds-1", AgentID: "AGENT0001", State: "online", AgentVersion: "0.1.0", OS: "linux", Arch: "arm64", SentAt: t0, UptimeSeconds: 60, DataBudgetBytes: 1 << 30}, LastSeenAt: t0})
	h := NewHealth(reg)
	h.Rejected.WithLabelValues("future").Inc()
	RegisterBuildInfo(reg, "0.1.0", "abc")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	buf.Write(series(t, f))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	text := buf.String()
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`hubmon_linequality_loss_ratio{method="udp",probe="line",site="leeds-central-library"} 0.08333333333333333`,
		`hubmon_linequality_outage_seconds_total{cause="wan",method="udp",probe="line",site="leeds-central-library"} 14.5`,
		`hubmon_dns_success{name="www.nhs.uk",probe="dns",resolver="192.0.2.53:53",site="leeds-central-library"} 0`,
		`hubmon_http_phase_seconds{phase="tls",probe="services",service="gov-uk",site="leeds-central-library"} 0.041`,
		`hubmon_wifi_frequency_hertz{probe="wifi",site="leeds-central-library"} 5.18e+09`,
		`hubmon_agent_data_budget_bytes{site="leeds-1"} 1.073741824e+09`,
		`hubmon_linequality_probes_sent_total{method="udp",probe="line",site="leeds-central-library"} 36`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

func lq(at time.Time, sent, recv int64, outages ...float64) *wire.Measurement {
	m := &wire.Measurement{Site: "leeds-1", Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: at, Success: true,
		LineQuality: &wire.LineQuality{Method: "udp", Target: "x:1", IntervalSeconds: 60, Sent: sent, Received: recv}}
	for _, d := range outages {
		m.LineQuality.Outages = append(m.LineQuality.Outages, wire.Outage{Start: at, End: at.Add(time.Duration(d * float64(time.Second))), DurationSeconds: d, Cause: wire.CauseWAN, LostProbes: 3})
	}
	return m
}

// TestLineTotalsSurviveABurst: an outbox draining after a WAN outage
// delivers several summaries between two scrapes; the counters keep them.
func TestLineTotalsSurviveABurst(t *testing.T) {
	f := NewFleet()
	f.SetLineTotal(store.LineTotal{Site: "leeds-1", Probe: "line", Method: "udp", Sent: 1000, Received: 990,
		Outages: map[string]int64{"wan": 1}, OutageSeconds: map[string]float64{"wan": 30}})
	for _, m := range []*wire.Measurement{lq(t0, 40, 40), lq(t0.Add(time.Minute), 40, 0), lq(t0.Add(2*time.Minute), 40, 10, 100), lq(t0.Add(3*time.Minute), 40, 40)} {
		f.Observe(m)
		f.Count(m)
	}
	want := `
# HELP hubmon_linequality_outage_seconds_total Time disconnected, by cause, over the whole history (counted when each disconnection ends).
# TYPE hubmon_linequality_outage_seconds_total counter
hubmon_linequality_outage_seconds_total{cause="lan",method="udp",probe="line",site="leeds-1"} 0
hubmon_linequality_outage_seconds_total{cause="unknown",method="udp",probe="line",site="leeds-1"} 0
hubmon_linequality_outage_seconds_total{cause="wan",method="udp",probe="line",site="leeds-1"} 130
# HELP hubmon_linequality_probes_lost_total Line-quality probes lost, over the whole history.
# TYPE hubmon_linequality_probes_lost_total counter
hubmon_linequality_probes_lost_total{method="udp",probe="line",site="leeds-1"} 80
`
	compareSeries(t, f, want, "hubmon_linequality_outage_seconds_total", "hubmon_linequality_probes_lost_total")
}

func TestProbesPerSiteBounded(t *testing.T) {
	f := NewFleet()
	for i := range 1000 {
		m := lq(t0.Add(time.Duration(i)*time.Second), 40, 40)
		m.Probe = "p" + strconv.Itoa(i)
		f.Observe(m)
	}
	snap := f.snapshot()
	probes := snap[0].probes
	newest := slices.ContainsFunc(probes, func(p probeState) bool { return p.name.s == "p999" })
	if len(snap) != 1 || len(probes) != MaxProbesPerSite || !newest {
		t.Fatalf("%d probes kept (newest kept: %v), want %d", len(probes), newest, MaxProbesPerSite)
	}
	if slices.ContainsFunc(probes, func(p probeState) bool { return p.name.s == "p0" }) {
		t.Fatal("the oldest probe was kept")
	}
}

// series writes f's series to the text format, and checks that they
// parse.
func series(tb testing.TB, f *Fleet) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := exposition.NewWriter(&buf)
	f.WriteSeries(w)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes())); err != nil {
		tb.Fatalf("the series do not parse: %v\n%s", err, buf.Bytes())
	}
	return buf.Bytes()
}

// compareSeries compares the families names of f's series with want (text
// format), whatever the order of their samples.
func compareSeries(tb testing.TB, f *Fleet, want string, names ...string) {
	tb.Helper()
	got := map[string][]string{}
	for _, line := range strings.Split(string(series(tb, f)), "\n") {
		got[familyOf(line)] = append(got[familyOf(line)], line)
	}
	exp := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		exp[familyOf(line)] = append(exp[familyOf(line)], line)
	}
	for _, name := range names {
		g, w := got[name], exp[name]
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			tb.Errorf("%s:\ngot\n%s\nwant\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
}

// familyOf returns the family a line of the text format belongs to.
func familyOf(line string) string {
	if rest, ok := strings.CutPrefix(line, "# "); ok {
		_, rest, _ = strings.Cut(rest, " ")
		name, _, _ := strings.Cut(rest, " ")
		return name
	}
	name, _, _ := strings.Cut(line, "{")
	name, _, _ = strings.Cut(name, " ")
	return name
}

// TestScrapeDuringIngest: a scrape reads a snapshot while measurements
// keep arriving (run with -race).
func TestScrapeDuringIngest(t *testing.T) {
	f := NewFleet()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			at := t0.Add(time.Duration(i) * time.Second)
			m := lq(at, 40, 39, 1)
			m.Site = "site-" + strconv.Itoa(i%50)
			f.Observe(m)
			f.Count(m)
			s := speed(at, i%3 != 0, wire.Float(float64(i)*1e6), nil)
			s.Site = m.Site
			f.Observe(s)
			f.ObserveAgent(store.Agent{Status: wire.Status{Site: m.Site, AgentID: "AGENT0001", State: "online"}, LastSeenAt: at})
			f.Seen(m.Site, at.Add(time.Second))
		}
	}()
	for {
		select {
		case <-done:
			series(t, f)
			if n := len(f.Sites()); n != 50 {
				t.Fatalf("%d sites, want 50", n)
			}
			return
		default:
			series(t, f)
			f.Sites()
		}
	}
}
