package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/internal/schedule"
	"github.com/hubmon/hubmon/agent/wire"
)

const allKinds = `
site: hub-1
data_dir: state
opening_hours: {monday: ["09:00-12:00", "13:00-17:00"], saturday: ["10:00-12:00"]}
broker: {url: "tcp://127.0.0.1:1883", password: pw}
probes:
  - {name: internet, kind: speedtest, schedule: {windows: [opening_hours, consumer_peak]}}
  - {name: collector, kind: speedtest, interval: 1h, speedtest: {server_url: "http://127.0.0.1:8080", duration: 5s}}
  - {name: line, kind: linequality, linequality: {udp_target: "127.0.0.1:9471"}}
  - {name: dns, kind: dns}
  - {name: services, kind: http}
  - {name: wifi, kind: wifi}
  - {name: wlan9, kind: wifi, wifi: {interface: wlan9}}
`

func TestJobs(t *testing.T) {
	cfg, err := config.Parse([]byte(allKinds), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	js, err := jobs(cfg, slog.New(slog.NewTextHandler(&logs, nil)), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]schedule.Job{}
	for _, j := range js {
		byName[j.Name] = j
		if j.Prober == nil && j.NewProber == nil {
			t.Errorf("%s has no prober", j.Name)
		}
	}
	internet := byName["internet"]
	if !internet.Heavy || internet.Plan == nil || internet.Plan.TestsPerDay != 4 || internet.Duration != 10*time.Second || internet.NewProber == nil {
		t.Fatalf("internet: %+v", internet)
	}
	h := time.Hour
	wantMonday := []schedule.Span{{From: 9 * h, To: 12 * h}, {From: 13 * h, To: 17 * h}, {From: 20 * h, To: 22 * h}}
	if got := internet.Plan.Week[time.Monday]; !equalSpans(got, wantMonday) {
		t.Errorf("Monday's windows %v, want %v", got, wantMonday)
	}
	if got := internet.Plan.Week[time.Sunday]; !equalSpans(got, []schedule.Span{{From: 20 * h, To: 22 * h}}) {
		t.Errorf("Sunday's windows %v", got)
	}
	if c := byName["collector"]; !c.Heavy || c.Plan != nil || c.Interval != h || c.Duration != 5*time.Second {
		t.Errorf("collector: %+v", c)
	}
	if l := byName["line"]; l.Heavy || l.Interval != time.Minute || l.Splay != 0 || l.FirstRun != 0 || l.Timeout != 90*time.Second {
		t.Errorf("line: %+v", l)
	}
	for _, name := range []string{"dns", "services", "wlan9"} {
		if j, ok := byName[name]; !ok || j.Heavy || j.Interval < time.Minute {
			t.Errorf("%s: %+v", name, j)
		}
	}
	// a wifi probe naming no interface runs only where there is one
	_, wifi := byName["wifi"]
	if none := len(probe.WirelessInterfaces()) == 0; wifi == none || none != strings.Contains(logs.String(), "no wireless interface") {
		t.Errorf("wifi job %v with interfaces %v; log:\n%s", wifi, probe.WirelessInterfaces(), logs.String())
	}

	// once: a short line-quality summary
	js, err = jobs(cfg, slog.New(slog.DiscardHandler), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		if j.Kind == wire.KindLineQuality && (j.Interval != onceLinePeriod || j.Timeout != onceLinePeriod+22*time.Second) {
			t.Errorf("once line: %+v", j)
		}
	}
}

func equalSpans(a, b []schedule.Span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPrintResults(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	expiry := now.Add(30*24*time.Hour + time.Hour)
	ms := []*wire.Measurement{
		{Probe: "line", Kind: wire.KindLineQuality, Success: true, LineQuality: &wire.LineQuality{
			Method: "udp", Target: "127.0.0.1:9471", Sent: 40, Received: 39,
			RTTP50Seconds: wire.Float(0.0123), RTTP95Seconds: wire.Float(0.0456), JitterSeconds: wire.Float(0.002),
		}},
		{Probe: "dns", Kind: wire.KindDNS, Success: false, Error: "1 of 2 lookups failed", DNS: &wire.DNS{Results: []wire.DNSResult{
			{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: wire.Float(0.0213)},
			{Resolver: "1.1.1.1:53", Name: "www.gov.uk", Error: "timeout"},
		}}},
		{Probe: "services", Kind: wire.KindHTTP, Success: true, HTTP: &wire.HTTP{Results: []wire.HTTPResult{
			{Name: "gov-uk", Success: true, StatusCode: 200, TotalSeconds: wire.Float(0.3456), CertNotAfter: &expiry},
		}}},
		{Probe: "wifi", Kind: wire.KindWiFi, Success: true, WiFi: &wire.WiFi{
			Interface: "wlan0", SSID: "Library", SignalDBM: wire.Float(-61), LinkBitsPerSecond: wire.Float(144.4e6), Band: "5GHz",
		}},
		{Probe: "local", Kind: wire.KindSpeedtest, Success: true, Speedtest: &wire.Speedtest{
			DownloadBitsPerSecond: wire.Float(80e6), UploadBitsPerSecond: wire.Float(20e6), ServerHost: "127.0.0.1:8080",
			DownloadBytes: 100e6, UploadBytes: 25e6,
		}},
	}
	var b bytes.Buffer
	printResults(&b, ms, now)
	out := b.String()
	for _, want := range []string{
		"Speed tests\nPROBE", "DOWN Mbit/s", "80.00", "125.0", "127.0.0.1:8080",
		"Line quality\n", "39", "2.5", "12.30", "45.60", "2.00",
		"DNS\n", "21.30 ms", "error: timeout",
		"Essential services\n", "gov-uk", "200", "345.60", "30 days",
		"Wi-Fi\n", "Library", "-61", "144.40", "5GHz",
		"dns failed: 1 of 2 lookups failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Speed tests") > strings.Index(out, "Line quality") {
		t.Errorf("sections out of order:\n%s", out)
	}
}

// TestJobsICMP: the ICMP stream of a linequality probe is a job, and a
// probe name, of its own; the probe gets the agent's busy flag and its
// gateway check setting.
func TestJobsICMP(t *testing.T) {
	cfg, err := config.Parse([]byte(`
site: hub-1
data_dir: state
broker: {url: "tcp://127.0.0.1:1883", password: pw}
probes:
  - {name: line, kind: linequality, linequality: {udp_target: "127.0.0.1:9471", icmp_target: 127.0.0.1, gateway_check: false}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	js, err := jobs(cfg, slog.New(slog.NewTextHandler(&logs, nil)), false, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range js {
		names = append(names, j.Name)
		if j.Kind != wire.KindLineQuality || j.Prober == nil || j.Interval != time.Minute {
			t.Errorf("job %+v", j)
		}
	}
	// ICMP echo needs net.ipv4.ping_group_range to include the user
	switch strings.Join(names, " ") {
	case "line line-icmp":
	case "line":
		t.Log("ICMP echo is not available here: only the UDP job is checked")
		if !strings.Contains(logs.String(), "UDP only") {
			t.Errorf("no ICMP job, and no line saying why:\n%s", logs.String())
		}
	default:
		t.Fatalf("jobs %v, want line and line-icmp", names)
	}
}

// TestAdmit: a measurement the collector would refuse is not committed, one
// too large to publish has its results' errors shortened, and what is
// admitted, once the outbox has given it its identity, is what the collector
// accepts.
func TestAdmit(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), "hub-1", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	dnsResults := func(n int, name, errText string) *wire.DNS {
		d := &wire.DNS{}
		for i := range n {
			d.Results = append(d.Results, wire.DNSResult{Resolver: fmt.Sprintf("10.0.0.%d:53", i), Name: name, Error: errText})
		}
		return d
	}
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	for _, tt := range []struct {
		name     string
		m        wire.Measurement
		errHas   string // "" to admit it
		errorLen int    // the results' error texts after admit
	}{
		{name: "valid", m: wire.Measurement{Probe: "dns", Kind: wire.KindDNS, MeasuredAt: now, Error: "1 failed", DNS: dnsResults(1, "www.gov.uk", "timeout")},
			errorLen: len("timeout")},
		{name: "a name the collector refuses", m: wire.Measurement{Probe: "dns", Kind: wire.KindDNS, MeasuredAt: now, Error: "1 failed", DNS: dnsResults(1, long+".x", "timeout")},
			errHas: "dns.results[0].name: longer than 253 bytes"},
		{name: "a clock before 2020", m: wire.Measurement{Probe: "dns", Kind: wire.KindDNS, MeasuredAt: time.Unix(0, 0), Error: "x"},
			errHas: "measured_at: before 2020"},
		// 64 results of 253-byte names and 1000-byte errors: 85 kB, then 30 kB
		{name: "too large: errors shortened", m: wire.Measurement{Probe: "dns", Kind: wire.KindDNS, MeasuredAt: now, Error: "64 failed",
			DNS: dnsResults(64, long, strings.Repeat("é", 500))}, errorLen: resultErrorLen},
		{name: "too large even so", m: wire.Measurement{Probe: "web", Kind: wire.KindHTTP, MeasuredAt: now, Error: "64 failed",
			HTTP: &wire.HTTP{Results: slices.Repeat([]wire.HTTPResult{{Name: "x", URL: "https://example.org/" + strings.Repeat("p", 2000), Error: "refused"}}, 64)}},
			errHas: "more than the 65536 a message may hold"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			err := admit(&m, "hub-1", ob.AgentID(), now)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("admit = %v, want an error with %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("admit: %v", err)
			}
			for _, r := range m.DNS.Results {
				if len(r.Error) > tt.errorLen || !utf8.ValidString(r.Error) {
					t.Fatalf("a result's error of %d bytes, want at most %d: %q", len(r.Error), tt.errorLen, r.Error)
				}
			}
			if err := ob.Add(context.Background(), &m); err != nil {
				t.Fatal(err)
			}
			es, err := ob.Pending(context.Background(), m.Seq-1, 1, nil)
			if err != nil || len(es) != 1 {
				t.Fatalf("pending: %v, %v", es, err)
			}
			if _, err := wire.DecodeMeasurement(es[0].Payload, "hub-1", now); err != nil {
				t.Fatalf("the collector refuses the committed measurement (%d bytes): %v", len(es[0].Payload), err)
			}
		})
	}
}

func TestShorten(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a bit too long", 10, "a bit t..."},
		{"ééééé", 8, "éé..."}, // not inside an é
	} {
		if got := shorten(tt.in, tt.n); got != tt.want || len(got) > tt.n {
			t.Errorf("shorten(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// cancelOn is a slog handler that records every message and cancels a
// context when one of them is logged.
type cancelOn struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.cancel()
	}
	return h.Handler.Handle(ctx, r)
}

func (h cancelOn) WithAttrs(as []slog.Attr) slog.Handler {
	return cancelOn{h.Handler.WithAttrs(as), h.msg, h.cancel}
}

// TestAgentCorruptOutbox: an agent whose outbox is corrupt moves it aside,
// starts a new one, and does not restart the month's data budget at 0.
func TestAgentCorruptOutbox(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
site: hub-1
data_dir: `+dir+`
data_budget: {monthly: 20GB}
broker: {url: "tcp://127.0.0.1:1", password: pw}
probes: [{name: dns, kind: dns, interval: 24h, first_run: 1h}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.OutboxPath(), bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(cancelOn{slog.NewTextHandler(&logs, nil), "hubmon-agent started", cancel}) // stop once started
	if err := agent(ctx, cfg, log); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"outbox was corrupt", "month's use restarts from the budget's share of the month gone", "assumed_used_bytes="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
	ob, err := outbox.Open(cfg.OutboxPath(), cfg.Site, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	b, err := schedule.NewBudget(context.Background(), schedule.BudgetConfig{Store: ob, MonthlyBytes: 20e9, Location: cfg.Location()})
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Status(); st.UsedBytes <= 0 || st.UsedBytes > 20e9 {
		t.Fatalf("after recovering the outbox: %+v, want the month's share of 20 GB", st)
	}
	if aside, _ := filepath.Glob(cfg.OutboxPath() + ".corrupt-*"); len(aside) != 1 {
		t.Fatalf("moved aside: %v", aside)
	}
}
