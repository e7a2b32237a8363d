package sites

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
)

const twoSites = `sites:
  - id: leeds-1
    name: Leeds One
    hub_type: library
    council: Leeds City Council
    ons_code: E08000035
    postcode: ls1 3ab
    latitude: 53.8
    longitude: -1.55
    public_seats: 12
    contract_download_mbps: 80
    contract_upload_mbps: 20
    access: fttc
    provider: BT
    opening_hours:
      monday: ["09:00-17:00"]
      saturday: ["10:00-13:00"]
  - id: bradford-1
    name: Bradford One
    hub_type: care_home
`

func write(tb testing.TB, path, text string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// A Monday in November (GMT) and one in July (BST).
var (
	monNov = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	monJul = time.Date(2026, 7, 6, 0, 0, 0, 0, time.UTC)
)

func TestReloadKeepsTheOldFileOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sites.yml")
	write(t, path, twoSites)
	now := monNov.Add(10 * time.Hour)
	r, err := New(Options{Path: path, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Known("leeds-1") || !r.Known("bradford-1") || r.Known("wakefield-1") || r.AutoRegister() {
		t.Fatal("Known is wrong after the first load")
	}
	write(t, path, twoSites+"  - id: wakefield-1\n    name: Wakefield\n    hub_type: nonsense\n")
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), `sites[2].hub_type: must be one of`) {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if len(r.Sites()) != 2 || !r.Known("leeds-1") || r.Known("wakefield-1") {
		t.Fatalf("a broken file changed the registry: %+v", r.Sites())
	}
	if got := testutil.ToFloat64(collectorOf(r, "hubmon_collector_sites_reload_success")); got != 0 {
		t.Errorf("reload_success = %v after a failed reload", got)
	}
	os.Remove(path)
	if err := r.Reload(); err == nil || len(r.Sites()) != 2 {
		t.Fatalf("a missing file: %v, %d sites", err, len(r.Sites()))
	}
	write(t, path, strings.Replace(twoSites, "bradford-1", "wakefield-1", 1))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Known("bradford-1") || !r.Known("wakefield-1") {
		t.Fatal("a good reload did not replace the sites")
	}
	if got := testutil.ToFloat64(collectorOf(r, "hubmon_collector_sites_reload_success")); got != 1 {
		t.Errorf("reload_success = %v after a good reload", got)
	}
}

func TestNewRefusesABrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sites.yml")
	write(t, path, "sites: [{id: x}]\n")
	if _, err := New(Options{Path: path}); err == nil {
		t.Fatal("New accepted a broken file")
	}
}

func TestKnownWithoutFileOrWithAutoRegister(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Known("anything") || !r.AutoRegister() || len(r.Sites()) != 0 {
		t.Fatal("without a sites file every site must be accepted")
	}
	path := filepath.Join(t.TempDir(), "sites.yml")
	write(t, path, twoSites)
	r, err = New(Options{Path: path, AutoRegister: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Known("wakefield-1") || !r.AutoRegister() {
		t.Fatal("auto_register must accept unknown sites")
	}
	if s := Static(nil, false, nil); s.Known("x") || s.AutoRegister() {
		t.Fatal("an empty static registry without auto-registration accepts sites")
	}
}

func site(tb testing.TB, text string) config.Site {
	tb.Helper()
	list, err := config.ParseSites([]byte(text), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return list[0]
}

func TestOpenAtUsesTheSiteTimezone(t *testing.T) {
	leeds := site(t, twoSites)
	ny := site(t, "sites: [{id: ny, name: NY, hub_type: other, timezone: America/New_York, opening_hours: {monday: ['09:00-17:00']}}]")
	for _, tt := range []struct {
		s    config.Site
		at   time.Time
		want bool
	}{
		{leeds, monNov.Add(9 * time.Hour), true},                                                   // 09:00 GMT
		{leeds, monNov.Add(9*time.Hour - time.Nanosecond), false},                                  // 08:59:59.999
		{leeds, monNov.Add(17 * time.Hour), false},                                                 // closes at 17:00
		{leeds, monJul.Add(8 * time.Hour), true},                                                   // 09:00 BST
		{leeds, monJul.Add(16 * time.Hour), false},                                                 // 17:00 BST
		{leeds, monNov.Add(-24*time.Hour + 11*time.Hour), false},                                   // Sunday
		{leeds, monNov.Add(5*24*time.Hour + 12*time.Hour + 30*time.Minute), true},                  // Saturday 12:30
		{ny, monNov.Add(14 * time.Hour), true},                                                     // 09:00 EST
		{ny, monNov.Add(9 * time.Hour), false},                                                     // 04:00 EST
		{site(t, "sites: [{id: x, name: X, hub_type: other}]"), monNov.Add(10 * time.Hour), false}, // hours not known
	} {
		if got := OpenAt(&tt.s, tt.at); got != tt.want {
			t.Errorf("OpenAt(%s, %s) = %v, want %v", tt.s.ID, tt.at, got, tt.want)
		}
	}
}

func TestOpenIntervals(t *testing.T) {
	s := site(t, `sites: [{id: x, name: X, hub_type: other, opening_hours: {
  saturday: ["22:00-24:00"], sunday: ["00:00-02:00", "09:00-10:00"]}}]`)
	type iv struct{ a, b time.Time }
	collect := func(from, to time.Time) []iv {
		var out []iv
		OpenIntervals(&s, from, to, func(a, b time.Time) { out = append(out, iv{a, b}) })
		return out
	}
	// 2026-10-25 is the Sunday British Summer Time ends: 02:00 BST is 01:00 GMT.
	sat := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC)
	got := collect(sat, sat.Add(48*time.Hour))
	want := []iv{
		{time.Date(2026, 10, 24, 21, 0, 0, 0, time.UTC), time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC)}, // 22-24 BST
		{time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC)},  // 00-02 local: 3 hours
		{time.Date(2026, 10, 25, 9, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 10, 0, 0, 0, time.UTC)},  // GMT now
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].a.Equal(want[i].a) || !got[i].b.Equal(want[i].b) {
			t.Errorf("interval %d = %v-%v, want %v-%v", i, got[i].a, got[i].b, want[i].a, want[i].b)
		}
	}
	// clipped to the range asked for
	got = collect(time.Date(2026, 10, 25, 9, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 9, 45, 0, 0, time.UTC))
	if len(got) != 1 || got[0].b.Sub(got[0].a) != 15*time.Minute {
		t.Errorf("clipped: %v", got)
	}
}

func collectorOf(c prometheus.Collector, name string) prometheus.Collector {
	return &filtered{c, name}
}

type filtered struct {
	c    prometheus.Collector
	name string
}

func (f *filtered) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f *filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}

func TestMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sites.yml")
	write(t, path, twoSites)
	now := monNov.Add(10 * time.Hour)
	r, err := New(Options{Path: path, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP hubmon_site_info A hub of the sites file, with what dashboards show about it as labels (latitude and longitude empty when not known); always 1.
# TYPE hubmon_site_info gauge
hubmon_site_info{access="",council="",hub_type="care_home",latitude="",longitude="",name="Bradford One",ons_code="",postcode="",provider="",site="bradford-1"} 1
hubmon_site_info{access="fttc",council="Leeds City Council",hub_type="library",latitude="53.8",longitude="-1.55",name="Leeds One",ons_code="E08000035",postcode="LS1 3AB",provider="BT",site="leeds-1"} 1
# HELP hubmon_site_location_latitude Latitude of the hub in degrees (WGS 84), from the sites file.
# TYPE hubmon_site_location_latitude gauge
hubmon_site_location_latitude{site="leeds-1"} 53.8
# HELP hubmon_site_location_longitude Longitude of the hub in degrees (WGS 84), from the sites file.
# TYPE hubmon_site_location_longitude gauge
hubmon_site_location_longitude{site="leeds-1"} -1.55
# HELP hubmon_site_contract_download_bytes_per_second Contracted download rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.
# TYPE hubmon_site_contract_download_bytes_per_second gauge
hubmon_site_contract_download_bytes_per_second{site="leeds-1"} 1e+07
# HELP hubmon_site_contract_upload_bytes_per_second Contracted upload rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.
# TYPE hubmon_site_contract_upload_bytes_per_second gauge
hubmon_site_contract_upload_bytes_per_second{site="leeds-1"} 2.5e+06
# HELP hubmon_site_public_seats Public computers or seats with devices at the hub, from the sites file.
# TYPE hubmon_site_public_seats gauge
hubmon_site_public_seats{site="leeds-1"} 12
# HELP hubmon_site_open 1 if the hub is open now by its opening hours (in its time zone), else 0; absent when its opening hours are not known.
# TYPE hubmon_site_open gauge
hubmon_site_open{site="leeds-1"} 1
`
	if got := series(t, r); got != strings.TrimPrefix(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := testutil.ToFloat64(collectorOf(r, "hubmon_collector_sites")); got != 2 {
		t.Errorf("hubmon_collector_sites = %v", got)
	}
	now = monNov.Add(18 * time.Hour)
	if got := series(t, r); !strings.Contains(got, "hubmon_site_open{site=\"leeds-1\"} 0\n") {
		t.Errorf("open at 18:00:\n%s", got)
	}
	promtoolCheck(t, r, series(t, r))
}

// series returns what WriteSeries and WriteOpen write.
func series(tb testing.TB, r *Registry) string {
	tb.Helper()
	var buf bytes.Buffer
	w := exposition.NewWriter(&buf)
	r.WriteSeries(w)
	r.WriteOpen(w)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// promtoolCheck runs the real promtool over the exposition of c and more.
func promtoolCheck(tb testing.TB, c prometheus.Collector, more string) {
	tb.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		tb.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			tb.Fatal(err)
		}
	}
	buf.WriteString(more)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		tb.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
