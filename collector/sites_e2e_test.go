package main_test

// The sites file end to end: a site not in it is rejected and counted, a
// broken file sent with SIGHUP keeps the previous one, a good one lets the
// agent's outbox drain into the history, and the gap figures and the report
// (over HTTP and by the report command) show the hub. With the embedded
// broker and with Mosquitto: SIGHUP works in both.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const otherSites = `sites:
  - id: other-hub
    name: Other Hub
    hub_type: library
    council: Leeds City Council
    ons_code: E08000035
`

const withE2EHub = otherSites + `  - id: e2e-hub
    name: End-to-end Hub
    hub_type: community_centre
    council: Leeds City Council
    ons_code: E08000035
    postcode: ls1 3ab
    latitude: 53.8
    longitude: -1.55
    public_seats: 2
    contract_download_mbps: 80
    contract_upload_mbps: 20
    access: fttp
    provider: "@evil"
    opening_hours: {monday: ["00:00-24:00"], tuesday: ["00:00-24:00"], wednesday: ["00:00-24:00"], thursday: ["00:00-24:00"],
      friday: ["00:00-24:00"], saturday: ["00:00-24:00"], sunday: ["00:00-24:00"]}
`

func TestSitesFileEndToEnd(t *testing.T) {
	for _, mq := range []bool{false, true} {
		name := "embedded broker"
		if mq {
			name = "mosquitto"
		}
		t.Run(name, func(t *testing.T) { sitesFileEndToEnd(t, mq) })
	}
}

func sitesFileEndToEnd(t *testing.T, withMosquitto bool) {
	s := newSystem(t, withMosquitto)
	sitesPath := filepath.Join(s.dir, "sites.yml")
	writeFile(t, sitesPath, otherSites)
	conf, err := os.ReadFile(s.collectorConf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.collectorConf, string(conf)+"sites_file: sites.yml\ngaps:\n  interval: 10s\n")
	env := []string{"COLLECTOR_PASSWORD=collector-secret"}

	out, code := runBin(t, env, s.collectorBin, "run", "-config", s.collectorConf, "-check-config")
	if code != 0 || !strings.Contains(out, "sites.yml: sites file is valid (1 sites)") {
		t.Fatalf("-check-config (exit %d):\n%s", code, out)
	}

	s.startCollector()
	s.startAgent()
	base := s.metricsURL("")
	value := func(name string, labels map[string]string) float64 {
		v, _ := sample(scrapeAll(t, base), name, labels)
		return v
	}
	waitFor(t, "the agent's measurement rejected as unknown_site", 60*time.Second, func() bool {
		return value("hubmon_collector_rejected_messages_total", map[string]string{"reason": "unknown_site"}) >= 1 &&
			value("hubmon_collector_messages_total", map[string]string{"kind": "measurement", "result": "rejected"}) >= 1
	})
	if rows := history(t, s.db); len(rows) != 0 {
		t.Fatalf("stored %d rows of a site not in the sites file", len(rows))
	}

	// a broken file: logged, the previous one stays
	writeFile(t, sitesPath, withE2EHub+"  - id: Broken\n")
	s.collector.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload", 10*time.Second, func() bool {
		v, ok := sample(scrapeAll(t, base), "hubmon_collector_sites_reload_success", nil)
		return ok && v == 0
	})
	if !strings.Contains(s.collector.output(), "sites file not reloaded; keeping the previous one") {
		t.Errorf("the failed reload was not logged:\n%s", s.collector.output())
	}
	if _, ok := sample(scrapeAll(t, base), "hubmon_site_info", map[string]string{"site": "e2e-hub"}); ok {
		t.Fatal("a broken sites file was used")
	}

	// the good file: the agent's outbox drains into the history
	writeFile(t, sitesPath, withE2EHub)
	s.collector.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 10*time.Second, func() bool {
		return value("hubmon_collector_sites_reload_success", nil) == 1
	})
	waitFor(t, "the agent's measurements in the history", 60*time.Second, func() bool { return len(history(t, s.db)) > 0 })
	if !s.collector.running() {
		t.Fatal("the collector exited on SIGHUP")
	}
	if got := strings.Contains(s.collector.output(), "password file reloaded"); got == withMosquitto {
		t.Errorf("SIGHUP reloaded the embedded broker's password file: %v, want %v", got, !withMosquitto)
	}

	// the gap figures
	waitFor(t, "the gap figures of e2e-hub", 60*time.Second, func() bool {
		return value("hubmon_gap_speedtests", map[string]string{"site": "e2e-hub", "window": "opening_hours", "period": "7d"}) >= 1
	})
	mfs := scrapeAll(t, base)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"hubmon_site_info", map[string]string{"site": "e2e-hub", "name": "End-to-end Hub", "postcode": "LS1 3AB", "latitude": "53.8", "longitude": "-1.55", "provider": "@evil"}},
		{"hubmon_site_open", map[string]string{"site": "e2e-hub"}},
		{"hubmon_site_contract_download_bytes_per_second", map[string]string{"site": "e2e-hub"}},
		{"hubmon_gap_compliance_ratio", map[string]string{"site": "e2e-hub", "profile": "uso", "window": "all", "period": "30d"}},
		{"hubmon_gap_download_bytes_per_second", map[string]string{"site": "e2e-hub", "statistic": "median", "window": "opening_hours", "period": "7d"}},
		{"hubmon_gap_availability_ratio", map[string]string{"site": "e2e-hub", "period": "7d"}},
		{"hubmon_gap_contract_ratio", map[string]string{"site": "e2e-hub", "direction": "download", "period": "30d"}},
		{"hubmon_gap_below_profile", map[string]string{"site": "e2e-hub", "profile": "uso", "period": "7d"}},
		{"hubmon_site_info", map[string]string{"site": "other-hub"}},
	} {
		if _, ok := sample(mfs, c.name, c.labels); !ok {
			t.Errorf("the collector lacks %s%v", c.name, c.labels)
		}
	}
	if v, _ := sample(mfs, "hubmon_site_open", map[string]string{"site": "e2e-hub"}); v != 1 {
		t.Errorf("hubmon_site_open = %v for a hub open all week", v)
	}
	// the live figures on /metrics, the gap figures and the sites file on
	// /metrics/gaps (scraped less often), hubmon_site_open live
	live, liveBody := scrape(t, base+"/metrics")
	gapFams, gapBody := scrape(t, base+"/metrics/gaps")
	for name := range live {
		if strings.HasPrefix(name, "hubmon_gap_") || (strings.HasPrefix(name, "hubmon_site_") && name != "hubmon_site_open") {
			t.Errorf("%s is on /metrics", name)
		}
	}
	for name := range gapFams {
		if !strings.HasPrefix(name, "hubmon_gap_") && !strings.HasPrefix(name, "hubmon_site_") || name == "hubmon_site_open" {
			t.Errorf("%s is on /metrics/gaps", name)
		}
	}
	promtoolCheck(t, liveBody)
	promtoolCheck(t, gapBody)

	// the report over HTTP
	code, csvBody, err := get(s.metricsURL("/report.csv"))
	if err != nil || code != 200 || !strings.Contains(string(csvBody), "e2e-hub,End-to-end Hub,Leeds City Council,E08000035,community_centre,fttp,'@evil,80,20,opening_hours,") {
		t.Fatalf("GET /report.csv: %d %v\n%s", code, err, csvBody)
	}
	if code, b, _ := get(s.metricsURL("/report.json?since=abc")); code != 400 || !strings.Contains(string(b), `since: want a duration like 30d, 7d or 12h (got "abc")`) {
		t.Errorf("since=abc: %d %s", code, b)
	}

	// the report command, next to the running collector
	out, code = runBin(t, env, s.collectorBin, "report", "-config", s.collectorConf, "-since", "7d", "-format", "json")
	if code != 0 {
		t.Fatalf("report (exit %d):\n%s", code, out)
	}
	var rep struct {
		Hubs []struct {
			ID         string `json:"id"`
			Speedtests int    `json:"speedtests"`
			Window     string `json:"window"`
		} `json:"hubs"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report -format json is not JSON: %v\n%s", err, out)
	}
	if len(rep.Hubs) != 2 || rep.Hubs[0].ID != "e2e-hub" || rep.Hubs[0].Speedtests < 1 || rep.Hubs[0].Window != "opening_hours" || rep.Hubs[1].ID != "other-hub" {
		t.Errorf("report: %+v", rep)
	}
	out, code = runBin(t, env, s.collectorBin, "report", "-config", s.collectorConf, "-since", "soon")
	if code != 2 || !strings.Contains(out, `-since: want a duration like 30d, 7d or 12h (got "soon")`) {
		t.Errorf("report -since soon (exit %d):\n%s", code, out)
	}

	s.collector.stop(15 * time.Second)
}
