package gaps

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/hubmon/hubmon/collector/internal/exposition"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestReportGolden(t *testing.T) {
	e := loadFixture(t, true)
	rep := e.Report(now, 7*24*time.Hour)
	for _, format := range Formats {
		var buf bytes.Buffer
		if err := rep.Write(&buf, format); err != nil {
			t.Fatal(err)
		}
		golden(t, "report-7d."+format, buf.Bytes())
	}
	if err := rep.Write(io.Discard, "xml"); err == nil {
		t.Error("an unknown format was written")
	}
}

// TestReportCSVIsSpreadsheetSafe: a provider written as a formula comes out
// as text.
func TestReportCSVIsSpreadsheetSafe(t *testing.T) {
	e := loadFixture(t, false)
	var buf bytes.Buffer
	if err := e.Report(now, 7*24*time.Hour).WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q would run as a formula", cell)
			}
		}
	}
	if recs[1][0] != "leeds-1" || recs[1][6] != `'=HYPERLINK("http://x")` {
		t.Errorf("row %q", recs[1])
	}
	if got := spreadsheetSafe("-1.5"); got != "'-1.5" {
		t.Errorf("spreadsheetSafe(-1.5) = %q", got)
	}
}

func TestHandler(t *testing.T) {
	e := loadFixture(t, false)
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, tt := range []struct {
		path string
		code int
		has  string
	}{
		{"/report.csv", 200, "leeds-1,Leeds One"},
		{"/report.json", 200, `"id": "ny-1"`},
		{"/report.html", 200, "<caption id=\"report-caption\">3 hubs</caption>"},
		{"/report.csv?since=7d", 200, "leeds-1,Leeds One"},
		{"/report.json?since=36h", 200, `"hubs"`},
		{"/report.csv?since=abc", 400, `since: want a duration like 30d, 7d or 12h (got "abc")`},
		{"/report.csv?since=-1d", 400, `since: want a duration like 30d, 7d or 12h (got "-1d")`},
		{"/report.csv?since=10m", 400, `since: must be at least 1h (got "10m")`},
		{"/report.json?since=90d", 400, `since: at most 30d over HTTP (got "90d")`},
		{"/report.json?since=7d&since=30d", 400, "since: give it once"},
		{"/report.json?sinse=7d", 400, `unknown query parameter "sinse"`},
		{"/report.xml", 404, ""},
	} {
		code, body, _ := get(tt.path)
		if code != tt.code || !strings.Contains(body, tt.has) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, code, body, tt.code, tt.has)
		}
	}
	// a week is a different report from a month
	_, week, _ := get("/report.csv?since=7d")
	_, month, h := get("/report.csv")
	if week == month {
		t.Error("since=7d gave the 30-day report")
	}
	if ct := h.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	// before the history is loaded: 503
	fresh := newEngine(t, newHistory(t).st, nil, false, now)
	rec := httptest.NewRecorder()
	fresh.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/report.csv", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("not loaded: %d %v", rec.Code, rec.Header())
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "7d": 168 * time.Hour, "12h": 12 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseSince(in); err != nil || got != want {
			t.Errorf("ParseSince(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "1.5d", "abc", "0d", "30m", "-7d", "1e9d"} {
		if _, err := ParseSince(bad); err == nil {
			t.Errorf("ParseSince(%q) succeeded", bad)
		}
	}
}

// gapText returns what the gap endpoint serves (uncompressed), and with
// timings the engine's own figures (from its registry) too.
func gapText(tb testing.TB, e *Engine, timings bool) []byte {
	tb.Helper()
	rec := httptest.NewRecorder()
	e.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/gaps", nil))
	if rec.Code != 200 {
		tb.Fatalf("gap endpoint: %d", rec.Code)
	}
	text := rec.Body.Bytes()
	if !timings {
		return text
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	buf := bytes.NewBuffer(text)
	enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestMetricsGolden compares the whole exposition of the fixture with a
// golden file and runs promtool over it.
func TestMetricsGolden(t *testing.T) {
	e := loadFixture(t, false)
	text := gapText(t, e, false)
	golden(t, "metrics.prom", text)
	for _, want := range []string{
		`hubmon_gap_compliance_ratio{period="7d",profile="uso",site="leeds-1",window="opening_hours"} 0.5`,
		`hubmon_gap_speedtests{period="7d",site="leeds-1",window="business_peak"} 2`,
		`hubmon_gap_download_bytes_per_second{period="7d",site="leeds-1",statistic="median",window="opening_hours"} 2e+06`,
		`hubmon_gap_upload_bytes_per_second{period="7d",site="leeds-1",statistic="p10",window="opening_hours"} 100000`,
		`hubmon_gap_availability_ratio{period="7d",site="leeds-1"} 0.69375`,
		`hubmon_gap_outage_seconds{period="7d",site="leeds-1"} 5400`,
		`hubmon_gap_contract_ratio{direction="download",period="7d",site="leeds-1"} 0.8`,
		`hubmon_gap_below_profile{period="7d",profile="uso",site="leeds-1"} 1`,
		`hubmon_gap_availability_ratio{period="7d",site="quiet-1"} 0`,
		`hubmon_gap_speedtests{period="30d",site="quiet-1",window="opening_hours"} 0`,
	} {
		if !bytes.Contains(text, []byte(want+"\n")) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, absent := range []string{
		`hubmon_gap_compliance_ratio{period="7d",profile="per_seat",site="ny-1"`, // seats not known
		`hubmon_gap_outage_seconds{period="7d",site="ny-1"}`,                     // no line quality
		`hubmon_gap_compliance_ratio{period="7d",profile="uso",site="quiet-1"`,   // no tests
		`hubmon_gap_below_profile{period="7d",profile="uso",site="quiet-1"}`,
		`site="stray-1"`, // not in the sites file
	} {
		if bytes.Contains(text, []byte(absent)) {
			t.Errorf("exposition has %s", absent)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(gapText(t, e, true))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestGapEndpoint: Extra's series come first, before the history is
// loaded (alone) and at each refresh (with the gap figures); the endpoint
// serves gzip as kept and plain text alike.
func TestGapEndpoint(t *testing.T) {
	h := fixture(t)
	e := newEngine(t, h.st, mustSites(t, sitesYAML), false, now)
	fam := exposition.NewFamily("hubmon_test_extra", "Extra.", exposition.Gauge, "site")
	e.opts.Extra = func(w *exposition.Writer) { w.Sample(fam, 1, "leeds-1") }
	e.opts.Interval = time.Hour
	if body := gapText(t, e, false); len(body) != 0 {
		t.Fatalf("before Run: %q", body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.publishExtra() // what Run does first
	if got, want := string(gapText(t, e, false)), "# HELP hubmon_test_extra Extra.\n# TYPE hubmon_test_extra gauge\nhubmon_test_extra{site=\"leeds-1\"} 1\n"; got != want {
		t.Fatalf("before the history is loaded:\n%s", got)
	}
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.published.Load().computed.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("no figures published")
		}
		time.Sleep(5 * time.Millisecond)
	}
	text := gapText(t, e, false)
	if !bytes.HasPrefix(text, []byte("# HELP hubmon_test_extra")) || !bytes.Contains(text, []byte(`hubmon_gap_below_profile{period="7d",profile="uso",site="leeds-1"} 1`)) {
		t.Errorf("after a refresh:\n%s", text)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics/gaps", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	e.MetricsHandler().ServeHTTP(rec, req)
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, text) || rec.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip: %v, %d bytes, %v", err, len(unzipped), rec.Header())
	}
	cancel()
	<-done
}
