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

	"github.com/hubmon/hubmon/collector/internal/config"
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
	slowDown, slowUp := 6.5e6, 0.7e6
	summaries := []metrics.SiteSummary{
		{Site: "leeds-library", StatusKnown: true, Online: true, LastSeen: at, AgentVersion: "1.0",
			Speed: &metrics.SpeedSummary{Probe: "local", At: at, Success: true, Download: &dl, Upload: &ul, Latency: &lat}},
		{Site: "bradford-care-home", StatusKnown: true, Online: false, LastSeen: at.Add(-time.Hour)},
		{Site: "pop-up", StatusKnown: true, Online: true, LastSeen: at,
			Speed: &metrics.SpeedSummary{Probe: "local", At: at, Success: true, Download: &slowDown, Upload: &slowUp}},
		{Site: "otley", Speed: &metrics.SpeedSummary{Probe: "local", At: at, Success: false, Download: &slowDown}},
	}
	file := []config.Site{
		{ID: "leeds-library", Name: "Leeds Central Library", HubType: "library", Council: "Leeds City Council",
			ContractDownloadMbps: 80, ContractUploadMbps: 20, Access: "fttp", Provider: "Openreach <&>"},
		{ID: "bradford-care-home", Name: "Bradford <Care> Home", HubType: "care_home"},
		{ID: "otley", Name: "Otley Community Centre", HubType: "community_centre"},
		{ID: "wakefield", Name: "Wakefield Library", HubType: "library", Council: "Wakefield Council"},
	}
	uso := config.Rule{Name: "uso", MinDownloadBitsPerSecond: 10e6, MinUploadBitsPerSecond: 1e6}
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Ready:     func(context.Context) error { return nil },
		Sites:     func() []metrics.SiteSummary { return summaries },
		SitesFile: func() []config.Site { return file }, USO: &uso})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tt := range []struct {
		path   string
		code   int
		has    []string
		hasNot []string
	}{
		{"/hubs", 200, []string{
			// by name; the file's names, escaped; hubs not in it by id
			`<a href="hub/bradford-care-home">Bradford &lt;Care&gt; Home</a><br><span class="meta">Care home</span>`,
			`<a href="hub/leeds-library">Leeds Central Library</a><br><span class="meta">Library · Leeds City Council</span>`,
			`<span class="badge ok">Reporting</span><br><span class="meta">seen 12:03, Thu 26 Nov</span>`,
			`<span class="badge bad">Not reporting</span>`, `<span class="badge none">No status yet</span>`,
			`<a href="hub/wakefield">Wakefield Library</a>`, `<span class="badge none">Never reported</span>`,
			`<a href="hub/pop-up">pop-up</a><br><span class="meta">not in the sites file</span>`,
			`<span class="badge ok">Meets USO</span>`, `<span class="badge warn">Below USO</span>`, `<span class="badge bad">Failed</span>`,
			`<td><span class="nowrap">34.2 down</span> / <span class="nowrap">8.1 up</span> Mbit/s<br><span class="badge ok">Meets USO</span><br><span class="meta">12:03, Thu 26 Nov</span></td>`,
			`<span class="nowrap">6.5 down</span> / <span class="nowrap">0.7 up</span> Mbit/s<br><span class="badge warn">Below USO</span>`,
			`<td><span class="badge none">Never reported</span></td>
<td>none yet</td>`, `<td><span class="badge none">No status yet</span></td>
<td><span class="badge bad">Failed</span><br><span class="meta">12:03, Thu 26 Nov</span></td>`,
			`<p>5 hubs:</p>
<ul class="counts"><li>2 <span class="badge ok">Reporting</span></li><li>1 <span class="badge bad">Not reporting</span></li><li>1 <span class="badge none">No status yet</span></li><li>1 <span class="badge none">Never reported</span></li><li>1 <span class="badge warn">Below USO</span> at the last speed test</li></ul>`,
			"10&nbsp;Mbit/s down and 1 up", `<th scope="col">Hub</th>`, `<caption id="hubs-caption">`, `<html lang="en">`,
		}, []string{"<script"}},
		// what hub staff read on a phone (UK time: 12:03 UTC is 12:03 GMT in November)
		{"/hub/leeds-library", 200, []string{"<title>Leeds Central Library – hubmon</title>", "<h1>Leeds Central Library</h1>",
			`<span class="badge ok">Reporting</span> Last heard from at 12:03, Thu 26 Nov.`,
			"Last speed test 12:03, Thu 26 Nov: 34.2 down / 8.1 up Mbit/s, 12 ms.",
			`<span class="badge ok">Meets USO</span> It meets the Universal Service Obligation's decent broadband: 10&nbsp;Mbit/s down and 1 up.`,
			"Line: full fibre (FTTP), Openreach &lt;&amp;&gt;, contract 80\u00a0Mbit/s down, 20 up.",
			`<p class="meta">Library · Leeds City Council · hub id <span class="nowrap">leeds-library</span></p>`, "Box software 1.0.", `<a href="../hubs">`}, nil},
		{"/hub/bradford-care-home", 200, []string{`<span class="badge bad">Not reporting</span>`, "network cable", "No speed test yet"}, []string{"USO"}},
		{"/hub/pop-up", 200, []string{"<h1>pop-up</h1>", `<span class="badge warn">Below USO</span> It is below`}, nil},
		{"/hub/otley", 200, []string{`<span class="badge none">No status yet</span>`, "it failed (download 6.5 Mbit/s). The box will try again."}, []string{"USO"}},
		{"/hub/wakefield", 200, []string{`<span class="badge none">Never reported</span>`, "has not heard from this hub's box yet"}, []string{"speed test"}},
		{"/hub/nowhere", 404, []string{`hub "nowhere" is not in the sites file and has not reported`}, nil},
		{"/hub/Bad%20Id", 400, []string{"not a valid hub id"}, nil},
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
		for _, not := range tt.hasNot {
			if strings.Contains(string(b), not) {
				t.Errorf("GET %s has %q:\n%s", tt.path, not, b)
			}
		}
	}
}

// Without a sites file, hubs show by id and nothing says they are not in
// it; without a USO profile, no verdict.
func TestStatusPagesWithoutSitesFile(t *testing.T) {
	at := time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC)
	dl := 5e6
	h := Handler(Options{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) error { return nil }, Report: http.NotFoundHandler(),
		Sites: func() []metrics.SiteSummary {
			return []metrics.SiteSummary{{Site: "hub-a", StatusKnown: true, Online: true, LastSeen: at,
				Speed: &metrics.SpeedSummary{At: at, Success: true, Download: &dl}}}
		}})
	for path, want := range map[string][]string{
		"/hubs":      {`<a href="hub/hub-a">hub-a</a></th>`, "seen 10:30, Wed 1 Jul", `<a href="report.html">Gap report</a>`},
		"/hub/hub-a": {"<h1>hub-a</h1>", "5.0 down / – up Mbit/s", `<a href="../report.html">Gap report</a>`, `<a href="../">Collector</a>`},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body := rec.Body.String()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q:\n%s", path, w, body)
			}
		}
		for _, not := range []string{"USO", "sites file"} {
			if strings.Contains(body, not) {
				t.Errorf("GET %s says %q:\n%s", path, not, body)
			}
		}
	}
}
