package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/metrics"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hubmon_test_gauge", Help: "test"})
	reg.MustRegister(g)
	var readyErr error
	site := exposition.NewFamily("hubmon_test_site", "test", exposition.Gauge, "site")
	gaps := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hubmon_test_gap 2\n") })
	h := Handler(Options{Gatherer: reg, Series: []func(*exposition.Writer){func(w *exposition.Writer) { w.Sample(site, 1, "leeds-1") }},
		Gaps: gaps, Version: "1.2.3", Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return readyErr }})
	srv := httptest.NewServer(Server("", h, 5*time.Second, 5*time.Second, slog.New(slog.DiscardHandler)).Handler)
	defer srv.Close()

	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		method, path string
		code         int
		has          string
	}{
		{"GET", "/metrics", 200, "hubmon_test_gauge 0"},
		{"GET", "/metrics", 200, "hubmon_test_site{site=\"leeds-1\"} 1"},
		{"GET", "/metrics/gaps", 200, "hubmon_test_gap 2"},
		{"GET", "/", 200, "/metrics/gaps"},
		{"GET", "/-/healthy", 200, "healthy"},
		{"GET", "/-/ready", 200, "ready"},
		{"GET", "/", 200, "Version 1.2.3"},
		{"GET", "/nope", 404, ""},
		{"POST", "/metrics", 405, ""},
	} {
		code, body := get(tt.method, tt.path)
		if code != tt.code || !strings.Contains(body, tt.has) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.has)
		}
	}
	readyErr = errors.New("not connected to the MQTT broker")
	if code, body := get("GET", "/-/ready"); code != 503 || !strings.Contains(body, "not connected to the MQTT broker") {
		t.Errorf("not ready: %d %q", code, body)
	}
}

func TestStatusPages(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 3, 0, 0, time.UTC)
	dl, ul, lat := 34.2e6, 8.1e6, 0.012
	sites := []metrics.SiteSummary{
		{Site: "leeds-library", StatusKnown: true, Online: true, LastSeen: at, AgentVersion: "1.0",
			Speed: &metrics.SpeedSummary{Probe: "local", At: at, Success: true, Download: &dl, Upload: &ul, Latency: &lat}},
		{Site: "bradford-care-home", StatusKnown: true, Online: false, LastSeen: at.Add(-time.Hour)},
	}
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) error { return nil }, Sites: func() []metrics.SiteSummary { return sites }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tt := range []struct {
		path string
		code int
		has  []string
	}{
		{"/hubs", 200, []string{`href="hub/leeds-library"`, "reporting", "offline", "34.2", "8.1"}},
		// what hub staff read on a phone (UK time: 12:03 UTC is 12:03 GMT in November)
		{"/hub/leeds-library", 200, []string{"Reporting.", "Last speed test 12:03, Thu 26 Nov: 34.2 down / 8.1 up Mbit/s, 12 ms."}},
		{"/hub/bradford-care-home", 200, []string{"Not reporting.", "network cable", "No speed test yet"}},
		{"/hub/nowhere", 404, []string{`hub "nowhere" has not reported`}},
		{"/hub/Bad%20Id", 400, []string{"not a valid hub id"}},
	} {
		resp, err := srv.Client().Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s = %d, want %d: %s", tt.path, resp.StatusCode, tt.code, b)
		}
		for _, want := range tt.has {
			if !strings.Contains(string(b), want) {
				t.Errorf("GET %s lacks %q:\n%s", tt.path, want, b)
			}
		}
	}
}
