package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/config"
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
	js, err := jobs(cfg, slog.New(slog.NewTextHandler(&logs, nil)), false)
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
	js, err = jobs(cfg, slog.New(slog.DiscardHandler), true)
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
