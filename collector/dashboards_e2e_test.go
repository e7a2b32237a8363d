package main_test

// The Grafana dashboards and Prometheus rules in dashboards/, against a real
// stack: the real collector (with a sites file, where it takes one) holding
// three hours of seeded history, the real agent (speed test, line quality,
// DNS, an http and an https essential service), a real Prometheus (Debian's
// package) scraping the collector with deploy/prometheus/prometheus.yml and
// the shipped rules, and every panel's PromQL evaluated through Prometheus's
// HTTP API. A query that errors or returns no data fails the test; so does a
// metric or recording-rule name with no series, or a rule that fails to
// evaluate. Only queries reading metric families still being added to the
// collector (pendingFamilies) are skipped, and only while the collector
// does not expose them; the test logs which.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	dashboardsDir   = "../dashboards"
	rulesFile       = "../dashboards/rules/hubmon.rules.yml"
	rulesTestFile   = "../dashboards/rules/hubmon.rules.test.yml"
	prometheusYML   = "../deploy/prometheus/prometheus.yml"
	grafanaDSYML    = "../deploy/grafana/provisioning/datasources/hubmon.yml"
	grafanaDashYML  = "../deploy/grafana/provisioning/dashboards/hubmon.yml"
	provisionedDSID = "hubmon-prometheus"
)

// pendingFamilies are metric families the dashboards use that the collector
// is gaining (the sites file and gap figures). A panel query reading one is
// skipped only while the collector's /metrics has no such family; once it
// has, the query must return data like any other.
var pendingFamilies = map[string]bool{
	"hubmon_site_info": true, "hubmon_site_location_latitude": true, "hubmon_site_location_longitude": true,
	"hubmon_site_contract_download_bytes_per_second": true, "hubmon_site_contract_upload_bytes_per_second": true,
	"hubmon_site_public_seats": true, "hubmon_site_open": true,
	"hubmon_gap_compliance_ratio": true, "hubmon_gap_speedtests": true,
	"hubmon_gap_download_bytes_per_second": true, "hubmon_gap_upload_bytes_per_second": true,
	"hubmon_gap_availability_ratio": true, "hubmon_gap_outage_seconds": true,
	"hubmon_gap_contract_ratio": true, "hubmon_gap_below_profile": true,
}

// --- promtool ----------------------------------------------------------------

func promtoolRun(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		tb.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDashboardsPromtool checks the rules and runs their unit tests.
// (TestDashboardsPanels checks deploy/prometheus/prometheus.yml, with the
// rules where it loads them.)
func TestDashboardsPromtool(t *testing.T) {
	t.Parallel()
	rules, _ := filepath.Abs(filepath.Dir(rulesFile))
	promtoolRun(t, rules, "check", "rules", filepath.Base(rulesFile))
	out := promtoolRun(t, rules, "test", "rules", filepath.Base(rulesTestFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

// --- dashboards JSON -----------------------------------------------------------

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashTarget struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type dashPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Datasource  *dsRef       `json:"datasource"`
	Targets     []dashTarget `json:"targets"`
	Panels      []dashPanel  `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type dashVar struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Query   json.RawMessage `json:"query"`
	Current struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
	Datasource *dsRef `json:"datasource"`
}

type dashboard struct {
	file          string
	ID            json.RawMessage `json:"id"`
	UID           string          `json:"uid"`
	Title         string          `json:"title"`
	SchemaVersion int             `json:"schemaVersion"`
	Tags          []string        `json:"tags"`
	Inputs        json.RawMessage `json:"__inputs"`
	Panels        []dashPanel     `json:"panels"`
	Templating    struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
}

func loadDashboards(tb testing.TB) []dashboard {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no dashboards in %s (%v)", dashboardsDir, err)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows (collapsed rows hold their panels).
func allPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// value of a variable's current selection (a string or a one-element list).
func (v dashVar) value() string {
	var s string
	if json.Unmarshal(v.Current.Value, &s) == nil {
		return s
	}
	var l []string
	if json.Unmarshal(v.Current.Value, &l) == nil && len(l) > 0 {
		return l[0]
	}
	return ""
}

var (
	varRef     = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	grafanaVar = map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600", "__interval_ms": "60000"}
)

// substitute replaces dashboard variables in expr with the values a panel
// would be rendered with here: the test site, each variable's default, and
// Grafana's built-in intervals. Unknown variables are errors.
func substitute(expr string, vars map[string]string) (string, error) {
	var bad []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sm := varRef.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := grafanaVar[name]; ok {
			return v
		}
		bad = append(bad, m)
		return m
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown variables %v", bad)
	}
	return out, nil
}

var (
	promString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames returns the hubmon metric and recording-rule names in a PromQL
// expression (and "up").
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promBraces.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	seen := map[string]bool{}
	var out []string
	for _, id := range promIdent.FindAllString(e, -1) {
		if (strings.Contains(id, "hubmon") || id == "up") && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// recordingRules maps each recorded name of the shipped rules to the names
// its expressions read.
func recordingRules(tb testing.TB) map[string][]string {
	tb.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	out := map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = append(out[r.Record], metricNames(r.Expr)...)
			}
		}
	}
	return out
}

// families returns the collector metric families a name reads, through
// recording rules; unknown is the names that are neither.
func families(name string, rules map[string][]string, seen map[string]bool) (fams []string) {
	if seen[name] {
		return nil
	}
	seen[name] = true
	if srcs, ok := rules[name]; ok {
		for _, s := range srcs {
			fams = append(fams, families(s, rules, seen)...)
		}
		return fams
	}
	return []string{name}
}

// family strips the suffixes of histogram and summary series.
func family(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, s) {
			return strings.TrimSuffix(name, s)
		}
	}
	return name
}

// panelQuery is one target of one panel, ready to evaluate.
type panelQuery struct {
	where string // dashboard / panel / refId
	expr  string
	names []string // metric and rule names it reads
	fams  []string // collector families behind them
}

func dashboardQueries(tb testing.TB, site string) []panelQuery {
	tb.Helper()
	rules := recordingRules(tb)
	var out []panelQuery
	for _, d := range loadDashboards(tb) {
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			switch {
			case v.Name == "site":
				vars[v.Name] = site
			case v.Type == "datasource":
				vars[v.Name] = provisionedDSID
			default:
				vars[v.Name] = v.value()
			}
		}
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s / %q / %s", d.file, p.Title, tg.RefID)
				expr, err := substitute(tg.Expr, vars)
				if err != nil {
					tb.Errorf("%s: %v", where, err)
					continue
				}
				q := panelQuery{where: where, expr: expr, names: metricNames(expr)}
				seen := map[string]bool{}
				for _, n := range q.names {
					if strings.Contains(n, ":") {
						if _, ok := rules[n]; !ok {
							tb.Errorf("%s: %s is not a recording rule in %s", where, n, rulesFile)
						}
					}
					q.fams = append(q.fams, families(n, rules, seen)...)
				}
				out = append(out, q)
			}
		}
	}
	return out
}

// TestDashboardsJSON checks the dashboards follow Grafana's provisioning
// conventions: a stable uid, the datasource chosen by a "datasource"
// variable whose default is the provisioned datasource, panels that do not
// overlap, speeds in bit/s.
func TestDashboardsJSON(t *testing.T) {
	t.Parallel()
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	decodeYAML(t, grafanaDSYML, &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].UID != provisionedDSID || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("%s: want apiVersion 1 and one prometheus datasource with uid %s: %+v", grafanaDSYML, provisionedDSID, ds)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeYAML(t, grafanaDashYML, &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Errorf("%s: want apiVersion 1 and one file provider with a path: %+v", grafanaDashYML, prov)
	}

	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || len(d.UID) > 40 || uids[d.UID] != "" {
				t.Errorf("uid %q: want a unique uid of at most 40 characters", d.UID)
			}
			uids[d.UID] = d.file
			if d.Title == "" || titles[d.Title] != "" {
				t.Errorf("title %q: want a unique title", d.Title)
			}
			titles[d.Title] = d.file
			if len(d.ID) > 0 && string(d.ID) != "null" {
				t.Errorf("id %s: want null (Grafana assigns it)", d.ID)
			}
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d: want 36 or later (datasource references by uid)", d.SchemaVersion)
			}
			if len(d.Inputs) > 0 {
				t.Errorf("__inputs: provisioning does not fill them; use the datasource variable")
			}
			if !contains(d.Tags, "hubmon") {
				t.Errorf("tags %v: want hubmon (the dashboards link to each other by tag)", d.Tags)
			}
			var dsVar *dashVar
			for i, v := range d.Templating.List {
				if v.Name == "datasource" {
					dsVar = &d.Templating.List[i]
				}
				if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
					t.Errorf("variable %s: datasource %+v, want ${datasource}", v.Name, v.Datasource)
				}
			}
			if dsVar == nil || dsVar.Type != "datasource" || string(dsVar.Query) != `"prometheus"` || dsVar.value() != provisionedDSID {
				t.Errorf("want a variable datasource of type datasource, query prometheus, default %s: %+v", provisionedDSID, dsVar)
			}
			if d.UID == "hubmon-hub" {
				var site *dashVar
				for i, v := range d.Templating.List {
					if v.Name == "site" {
						site = &d.Templating.List[i]
					}
				}
				if site == nil || !strings.Contains(string(site.Query), "label_values(hubmon_agent_info, site)") {
					t.Errorf("want a site variable from label_values(hubmon_agent_info, site): %+v", site)
				}
			}
			ids := map[int]bool{}
			ps := allPanels(d.Panels)
			for i, p := range ps {
				where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("%s: want a unique positive id", where)
				}
				ids[p.ID] = true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
					t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
				}
				for _, o := range ps[:i] {
					h := o.GridPos
					if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
						t.Errorf("%s overlaps panel %d %q", where, o.ID, o.Title)
					}
				}
				if p.Type == "row" {
					continue
				}
				if p.Title == "" {
					t.Errorf("%s: no title", where)
				}
				if p.Datasource == nil || *p.Datasource != (dsRef{"prometheus", "${datasource}"}) {
					t.Errorf("%s: datasource %+v, want prometheus ${datasource}", where, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no queries", where)
				}
				refs := map[string]bool{}
				speed := false
				for _, tg := range p.Targets {
					if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: target %q: want a unique refId and an expression", where, tg.RefID)
					}
					refs[tg.RefID] = true
					if tg.Datasource == nil || *tg.Datasource != (dsRef{"prometheus", "${datasource}"}) {
						t.Errorf("%s/%s: datasource %+v, want prometheus ${datasource}", where, tg.RefID, tg.Datasource)
					}
					// speeds are exported in bytes/s and shown in bit/s
					for _, n := range metricNames(tg.Expr) {
						if strings.HasSuffix(n, "_bytes_per_second") && !strings.Contains(tg.Expr, "8 *") {
							t.Errorf("%s/%s: %s is in bytes/s: multiply by 8 for bit/s", where, tg.RefID, n)
						}
						speed = speed || strings.HasSuffix(n, "bits_per_second") || strings.HasSuffix(n, "_bytes_per_second")
					}
				}
				if speed && p.Type != "table" && p.FieldConfig.Defaults.Unit != "bps" {
					t.Errorf("%s: shows speeds in unit %q, want bps", where, p.FieldConfig.Defaults.Unit)
				}
			}
		})
	}
	for _, uid := range []string{"hubmon-overview", "hubmon-hub", "hubmon-fleet", "hubmon-gaps"} {
		if uids[uid] == "" {
			t.Errorf("no dashboard with uid %s", uid)
		}
	}
	// every variable resolves
	dashboardQueries(t, site)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func decodeYAML(tb testing.TB, path string, v any) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// --- the real stack ----------------------------------------------------------

// startPrometheus runs Debian's prometheus with the shipped prometheus.yml,
// rewritten to scrape target (both jobs) every second and to load the
// shipped rules.
func startPrometheus(tb testing.TB, target string) string {
	tb.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		tb.Fatal("prometheus not found: install Debian's prometheus package (.ci/run does)")
	}
	dir := tb.TempDir()
	rules, _ := filepath.Abs(rulesFile)
	shipped, err := os.ReadFile(prometheusYML)
	if err != nil {
		tb.Fatal(err)
	}
	r := []string{
		`targets: ["127.0.0.1:9470"]`, fmt.Sprintf("targets: [%q]", target),
		"/etc/prometheus/hubmon.rules.yml", rules,
		"scrape_interval: 30s", "scrape_interval: 1s",
		"scrape_interval: 2m", "scrape_interval: 1s", // the gap figures' job
		"evaluation_interval: 30s", "evaluation_interval: 1s",
	}
	text := strings.NewReplacer(r...).Replace(string(shipped))
	for i := 1; i < len(r); i += 2 {
		if !strings.Contains(text, r[i]) {
			tb.Fatalf("deploy/prometheus/prometheus.yml changed: could not set %q", r[i])
		}
	}
	conf := filepath.Join(dir, "prometheus.yml")
	writeFile(tb, conf, text)
	// the shipped file, with the rules where it loads them
	out := promtoolRun(tb, ".", "check", "config", conf)
	if !strings.Contains(out, rules) {
		tb.Fatalf("promtool check config did not check the rules:\n%s", out)
	}
	port := freePort(tb)
	start(tb, "prometheus", nil, bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(tb, "prometheus ready", 30*time.Second, func() bool {
		code, _, err := get(base + "/-/ready")
		return err == nil && code == 200
	})
	return base
}

type promResult struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// promQuery evaluates expr now and returns how many samples have a value
// (not NaN).
func promQuery(base, expr string) (int, error) {
	code, body, err := get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	var r promResult
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("HTTP %d: %v: %s", code, err, tail(string(body), 300))
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	var values []string
	switch r.Data.ResultType {
	case "vector":
		var v []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return 0, err
		}
		for _, s := range v {
			values = append(values, fmt.Sprint(s.Value[1]))
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(r.Data.Result, &s); err != nil {
			return 0, err
		}
		values = append(values, fmt.Sprint(s[1]))
	default:
		return 0, fmt.Errorf("result type %s", r.Data.ResultType)
	}
	n := 0
	for _, v := range values {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
			n++
		}
	}
	return n, nil
}

// rejectOne publishes a malformed measurement as user, which the collector
// must refuse and count (so hubmon_collector_rejected_messages_total exists).
func rejectOne(tb testing.TB, brokerURL, user, password string) {
	tb.Helper()
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(user).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect as %s: %v", user, tok.Error())
	}
	defer c.Disconnect(250)
	tok := c.Publish("hubmon/v1/"+user+"/measurement", 1, false, []byte("not a measurement"))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish as %s: %v", user, tok.Error())
	}
}

// gapsComputed is when the collector last computed its gap figures.
const gapsComputed = "hubmon_collector_gaps_computed_timestamp_seconds"

// testSites is a sites file with the test's hub, open at all hours so that
// every measurement counts as in opening hours.
var testSites = `sites:
  - id: ` + site + `
    name: End-to-end Library
    hub_type: library
    council: Test Council
    ons_code: E08000035
    postcode: "LS1 3AB"
    latitude: 53.8003
    longitude: -1.5491
    timezone: Europe/London
    opening_hours:
      monday: ["00:00-24:00"]
      tuesday: ["00:00-24:00"]
      wednesday: ["00:00-24:00"]
      thursday: ["00:00-24:00"]
      friday: ["00:00-24:00"]
      saturday: ["00:00-24:00"]
      sunday: ["00:00-24:00"]
    public_seats: 4
    contract_download_mbps: 80
    contract_upload_mbps: 20
    access: fttc
    provider: Test Broadband
`

// useSitesFile gives the collector a sites file with the test's hub, and
// recomputes the gap figures every 10 s, when the collector has those
// settings (a collector without them refuses them as unknown fields, and
// then runs without).
func useSitesFile(tb testing.TB, s *system) {
	tb.Helper()
	sites := filepath.Join(s.dir, "sites.yml")
	writeFile(tb, sites, testSites)
	base := readFile(tb, s.collectorConf)
	conf := base + fmt.Sprintf("sites_file: %s\ngaps:\n  interval: 10s\n", sites)
	writeFile(tb, s.collectorConf, conf)
	out, err := exec.Command(s.collectorBin, "run", "-check-config", "-config", s.collectorConf).CombinedOutput()
	switch {
	case err == nil:
		tb.Logf("the collector runs with a sites file")
	case strings.Contains(string(out), "sites_file: unknown field") || strings.Contains(string(out), "gaps: unknown field"):
		tb.Logf("the collector has no sites file or gap settings yet: %s", strings.TrimSpace(string(out)))
		writeFile(tb, s.collectorConf, base)
	default:
		tb.Fatalf("the collector refuses the test's sites file or gap settings: %v\n%s", err, out)
	}
}

// seedHistory publishes, as the test's hub and before its agent starts,
// measurements of the three hours before now: speed tests every half hour
// and line-quality summaries every five minutes. The collector's gap
// figures count only measurements a few minutes old or older, so the test's
// own agent alone would give them nothing to compute. The agent's newer
// measurements replace every latest figure the seeds have, and the seeds
// leave out latency under load, so those panels show the agent's own.
func seedHistory(tb testing.TB, s *system, now time.Time) {
	tb.Helper()
	var ms []wire.Measurement
	add := func(m wire.Measurement) {
		m.Version, m.Site, m.AgentID = wire.Version, site, "e2e-seed-agent"
		m.Seq = int64(len(ms) + 1)
		m.MessageID = fmt.Sprintf("e2e-seed-%04d", m.Seq)
		m.Success = true
		ms = append(ms, m)
	}
	start := now.Add(-3 * time.Hour).UTC().Truncate(time.Minute)
	for i := 0; i < 6; i++ {
		down, up := float64(20+5*i)*1e6, float64(4+i)*1e6
		add(wire.Measurement{Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: start.Add(time.Duration(i) * 30 * time.Minute),
			DurationSeconds: 25, Speedtest: &wire.Speedtest{ServerID: "collector", ServerHost: "127.0.0.1",
				DownloadBitsPerSecond: wire.Float(down), UploadBitsPerSecond: wire.Float(up),
				LatencySeconds: wire.Float(0.02), JitterSeconds: wire.Float(0.003),
				DownloadBytes: int64(down / 8 * 10), UploadBytes: int64(up / 8 * 10)}})
	}
	for t0 := start; t0.Before(now.Add(-10 * time.Minute)); t0 = t0.Add(5 * time.Minute) {
		add(wire.Measurement{Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: t0, DurationSeconds: 300,
			LineQuality: &wire.LineQuality{Method: "udp", Target: "127.0.0.1:9471", IntervalSeconds: 300, Sent: 200, Received: 199,
				RTTMinSeconds: wire.Float(0.012), RTTP50Seconds: wire.Float(0.015), RTTP95Seconds: wire.Float(0.03),
				RTTMaxSeconds: wire.Float(0.05), JitterSeconds: wire.Float(0.002)}})
	}

	opts := mqtt.NewClientOptions().AddBroker(s.brokerURL).SetClientID(site).SetUsername(site).SetPassword(agentPassword).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect as %s: %v", site, tok.Error())
	}
	defer c.Disconnect(250)
	for _, m := range ms {
		b, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		tok := c.Publish(wire.Topic(site, wire.TopicMeasurement), 1, false, b)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			tb.Fatalf("publish %s: %v", m.MessageID, tok.Error())
		}
	}
	// with the embedded broker a PUBACK means stored; check all were
	if n := len(history(tb, s.db)); n != len(ms) {
		tb.Fatalf("history holds %d of the %d seeded measurements", n, len(ms))
	}
}

// TestDashboardsPanels evaluates every panel query of every dashboard
// against a real collector, agent and Prometheus.
func TestDashboardsPanels(t *testing.T) {
	t.Parallel()
	s := newSystem(t, false)

	// an essential service over TLS, so certificates and TLS timings exist;
	// the agent trusts its certificate through SSL_CERT_FILE
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(tlsSrv.Close)
	certFile := filepath.Join(s.dir, "service-ca.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})))

	echoPort := freeTCPUDPPort(t)
	dnsAddr := serveDNS(t)
	writeFile(t, s.collectorConf, readFile(t, s.collectorConf)+fmt.Sprintf("echo_server:\n  enabled: true\n  listen: \"127.0.0.1:%d\"\n", echoPort))
	agentConf := strings.Replace(readFile(t, s.agentConf), "\nprobes:\n", "\ndata_budget:\n  monthly: 50GB\nprobes:\n", 1)
	if !strings.Contains(agentConf, "data_budget:") {
		t.Fatal("could not add a data budget to the agent's configuration")
	}
	writeFile(t, s.agentConf, agentConf+fmt.Sprintf(`  - name: line
    kind: linequality
    interval: 10s
    linequality:
      udp_target: 127.0.0.1:%d
      send_interval: 200ms
      timeout: 500ms
      gateway_check: false # never dial the machine's real router from a test
  - name: dns
    kind: dns
    interval: 1m
    first_run: 0s
    splay: 0s
    dns:
      names: [www.hub.test]
      resolvers: ["%s"]
  - name: services
    kind: http
    interval: 1m
    first_run: 0s
    splay: 0s
    http:
      services:
        - name: collector
          url: http://127.0.0.1:%d/-/healthy
        - name: secure
          url: %s/
`, echoPort, dnsAddr, s.httpPort, tlsSrv.URL))
	const rogue, roguePassword = "e2e-rogue", "rogue-secret-e2e"
	addUser(t, s.collectorBin, filepath.Join(s.dir, "passwd"), rogue, roguePassword)
	useSitesFile(t, s)

	s.startCollector()
	seedHistory(t, s, time.Now())
	seeded := time.Now()
	s.agent = start(t, "agent", []string{"HUBMON_MQTT_PASSWORD=" + agentPassword, "SSL_CERT_FILE=" + certFile},
		s.agentBin, "run", "-config", s.agentConf)
	rejectOne(t, s.brokerURL, rogue, roguePassword)
	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", s.httpPort))

	// Wait until the collector exposes every family the panels read, pending
	// ones aside (each probe's first result); what it exposes then decides
	// which panels wait for pending families.
	all := dashboardQueries(t, site)
	if t.Failed() {
		return
	}
	need := map[string]bool{}
	for _, q := range all {
		for _, f := range q.fams {
			if f != "up" && !pendingFamilies[f] {
				need[family(f)] = true
			}
		}
	}
	// Where the collector computes gap figures, wait for a computation that
	// saw the seeded history: one that began well after it was stored.
	var exposed map[string]bool
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mfs := scrapeAll(t, s.metricsURL(""))
		exposed = map[string]bool{}
		for name := range mfs {
			exposed[name] = true
		}
		ready := true
		for f := range need {
			ready = ready && exposed[f]
		}
		if _, ok := mfs[gapsComputed]; ok {
			at, _ := sample(mfs, gapsComputed, nil)
			ready = ready && at >= float64(seeded.Add(2*time.Second).UnixNano())/1e9
		}
		if ready || time.Now().After(deadline) {
			break
		}
	}

	var (
		queries []panelQuery
		skipped []string
	)
	for _, q := range all {
		var missing, pending []string
		for _, f := range q.fams {
			switch {
			case f == "up" || exposed[family(f)]:
			case pendingFamilies[f]:
				pending = append(pending, f)
			default:
				missing = append(missing, f)
			}
		}
		switch {
		case len(missing) > 0:
			t.Errorf("%s reads %v, which the collector does not expose (within a minute of starting):\n%s", q.where, missing, q.expr)
		case len(pending) > 0:
			skipped = append(skipped, fmt.Sprintf("%s (%s)", q.where, strings.Join(pending, ", ")))
		default:
			queries = append(queries, q)
		}
	}
	if t.Failed() {
		return
	}

	// Poll until every query returns data and every name it reads exists, or
	// the deadline: a speed test, two line-quality summaries and a few rule
	// evaluations take about half a minute.
	failures := map[string]string{}
	deadline := time.Now().Add(90 * time.Second)
	for {
		failures = map[string]string{}
		names := map[string]bool{}
		for _, q := range queries {
			n, err := promQuery(prom, q.expr)
			switch {
			case err != nil:
				failures[q.where] = fmt.Sprintf("query error: %v\n    %s", err, q.expr)
			case n == 0:
				failures[q.where] = "no data:\n    " + q.expr
			}
			for _, name := range q.names {
				names[name] = true
			}
		}
		for name := range names {
			if n, err := promQuery(prom, fmt.Sprintf(`count({__name__=%q})`, name)); err != nil || n == 0 {
				failures["name "+name] = fmt.Sprintf("no series named %s in Prometheus (%v)", name, err)
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	keys := make([]string, 0, len(failures))
	for k := range failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Errorf("%s: %s", k, failures[k])
	}
	if len(failures) > 0 {
		for _, path := range []string{"/metrics", "/metrics/gaps"} {
			_, body := scrape(t, s.metricsURL(path))
			t.Logf("collector %s:\n%s", path, grep(body, "hubmon_"))
		}
	}

	// every rule evaluates without error against the real series
	waitFor(t, "every rule evaluated", 30*time.Second, func() bool {
		code, body, err := get(prom + "/api/v1/rules")
		if err != nil || code != 200 {
			return false
		}
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &r) != nil || len(r.Data.Groups) == 0 {
			return false
		}
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				switch rule.Health {
				case "ok":
				case "err":
					t.Fatalf("rule %s in group %s fails: %s", rule.Name, g.Name, rule.LastError)
				default:
					return false
				}
			}
		}
		return true
	})

	// a family skipped as not exposed must not turn up now: its panels
	// would have gone untested
	mfs := scrapeAll(t, s.metricsURL(""))
	for f := range pendingFamilies {
		if mfs[f] != nil && !exposed[f] {
			t.Errorf("%s appeared on the collector only after the panels reading it were skipped: wait for it", f)
		}
	}
	if !t.Failed() {
		t.Logf("%d panel queries returned data", len(queries))
	}
	if len(skipped) > 0 {
		t.Logf("%d panel queries skipped: the collector does not expose these families yet:\n  %s",
			len(skipped), strings.Join(skipped, "\n  "))
	}
}
