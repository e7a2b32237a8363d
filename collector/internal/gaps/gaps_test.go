package gaps

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/store"
)

const sitesYAML = `sites:
  - id: leeds-1
    name: Leeds One
    hub_type: library
    council: Leeds City Council
    ons_code: E08000035
    public_seats: 4
    contract_download_mbps: 20
    contract_upload_mbps: 5
    access: fttc
    provider: '=HYPERLINK("http://x")'
    opening_hours: &weekdays
      monday: ["09:00-17:00"]
      tuesday: ["09:00-17:00"]
      wednesday: ["09:00-17:00"]
      thursday: ["09:00-17:00"]
      friday: ["09:00-17:00"]
  - id: ny-1
    name: New York One
    hub_type: other
    timezone: America/New_York
    opening_hours: {monday: ["09:00-17:00"]}
  - id: quiet-1
    name: Quiet, never reported
    hub_type: care_home
    council: Leeds City Council
    opening_hours: {monday: ["09:00-17:00"]}
`

// The period ends Monday 30 November 2026 00:00 UTC (GMT: local time is
// UTC in Leeds); the 7-day period starts Monday 23 November.
var (
	now = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).Add(Settle)
	mon = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
)

func day(d int, hh, mm int) time.Time {
	return mon.Add(time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}

// fixture writes a history whose figures are worked out by hand in the
// comments.
func fixture(tb testing.TB) *history {
	h := newHistory(tb)
	// leeds-1, open Monday to Friday 09:00-17:00: 40 hours in 7 days.
	// speed tests: Mbit/s down, up; ms idle RTT, added under load
	h.speedtest("leeds-1", day(0, 10, 0), 12, 2, 20, 10)    // 1 open: uso, per_seat; video fails on 2 % loss
	h.speedtest("leeds-1", day(0, 12, 30), 8, 0.5, 20, 10)  // 2 open, business peak: nothing
	h.speedtest("leeds-1", day(1, 15, 0), 35, 5, 200, 0)    // 3 open: uso, superfast, per_seat; video fails on RTT
	h.speedtest("leeds-1", day(2, 9, 30), 20, 0, 20, 0)     // 4 open, upload failed: per_seat only
	h.speedtest("leeds-1", day(5, 13, 0), 50, 10, 20, 10)   // 5 Saturday, business peak: everything
	h.speedtest("leeds-1", day(3, 20, 30), 5, 1, 20, 0)     // 6 consumer peak: nothing
	h.speedtest("leeds-1", day(4, 18, 0), 0, 0, 0, 0)       // 7 failed: not counted
	h.speedtest("leeds-1", day(-20, 10, 0), 100, 20, 20, 0) // 8 Tuesday 3 November: 30 days only

	// line quality, hourly summaries of the udp stream
	h.good("leeds-1", "udp", day(0, 9, 0), day(0, 10, 0))
	h.line("leeds-1", "udp", day(0, 10, 0), time.Hour, 3600, 3528, 3) // 2 % loss, covers test 1
	h.good("leeds-1", "udp", day(0, 11, 0), day(0, 17, 0))            // Monday: 8 h online
	h.good("leeds-1", "udp", day(1, 9, 0), day(1, 10, 0))
	h.line("leeds-1", "udp", day(1, 10, 0), time.Hour, 1800, 1800, 3, // Tuesday: a 30-minute outage
		wire.Outage{Start: day(1, 10, 0), End: day(1, 10, 30), DurationSeconds: 1800, Cause: wire.CauseWAN, LostProbes: 1800})
	h.good("leeds-1", "udp", day(1, 11, 0), day(1, 17, 0)) // Tuesday: 7.5 h online
	h.good("leeds-1", "udp", day(2, 9, 0), day(2, 13, 0))  // Wednesday: 4 h, then no data
	h.dns("leeds-1", day(2, 14, 0), true)                  // ... but the agent was there: 15 min
	h.dns("leeds-1", day(2, 15, 0), false)                 // a failure shows nothing
	since := day(3, 9, 0)                                  // Thursday: down from 09:00, then silent
	h.add(&wire.Measurement{Site: "leeds-1", Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: day(3, 9, 0), Success: true,
		LineQuality: &wire.LineQuality{Method: "udp", Target: "x:1", IntervalSeconds: 3600, Sent: 3600, Received: 0, OutageSince: &since}})
	// ... so 1 h outage, 0 online
	// Friday: the udp stream reports an outage the icmp stream did not see
	h.line("leeds-1", "udp", day(4, 9, 0), time.Hour, 3600, 2400, 3,
		wire.Outage{Start: day(4, 9, 0), End: day(4, 9, 20), DurationSeconds: 1200, Cause: wire.CauseUnknown, LostProbes: 1200})
	h.good("leeds-1", "udp", day(4, 10, 0), day(4, 17, 0))
	h.good("leeds-1", "icmp", day(4, 9, 0), day(4, 17, 0)) // Friday: 8 h online, no outage
	// availability: (8 + 7.5 + 4.25 + 0 + 8) / 40 = 0.69375; outage 30 + 60 min

	// ny-1, open Monday 09:00-17:00 New York time (14:00-22:00 UTC)
	h.speedtest("ny-1", day(0, 15, 0), 40, 10, 20, 10)  // 10:00 EST: open
	h.speedtest("ny-1", day(0, 10, 0), 5, 1, 20, 10)    // 05:00 EST: closed (open in London)
	h.speedtest("ny-1", day(0, 17, 30), 40, 10, 20, 10) // 12:30 EST: open, business peak
	h.dns("ny-1", day(0, 14, 0), true)
	h.dns("ny-1", day(0, 14, 10), true)
	h.dns("ny-1", day(0, 14, 20), true) // with the speed tests: 35 + 15 + 15 min online of 8 h

	// a site that is not in the sites file
	h.speedtest("stray-1", day(0, 15, 0), 40, 10, 20, 10)
	h.flush()
	return h
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 || math.IsNaN(a) && math.IsNaN(b) }

func loadFixture(tb testing.TB, auto bool) *Engine {
	tb.Helper()
	h := fixture(tb)
	e := newEngine(tb, h.st, mustSites(tb, sitesYAML), auto, now)
	if err := e.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := e.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return e
}

func byID(figs []*Figures, id string) *Figures {
	for _, f := range figs {
		if f.Site.ID == id {
			return f
		}
	}
	return nil
}

func TestFigures(t *testing.T) {
	e := loadFixture(t, false)
	to := now
	week := e.Compute(to, 7*24*time.Hour)
	month := e.Compute(to, 30*24*time.Hour)
	if len(week) != 3 || byID(week, "stray-1") != nil {
		t.Fatalf("sites computed: %d (stray-1 must not be: no auto-registration)", len(week))
	}
	leeds := byID(week, "leeds-1")
	nan := math.NaN()
	type stats struct {
		tests                          int
		downMed, downP10, upMed, upP10 float64
		compliance                     [4]float64 // uso, superfast, video_call, per_seat
	}
	check := func(name string, s *Stats, want stats) {
		t.Helper()
		if s == nil {
			t.Fatalf("%s: no stats", name)
		}
		if s.Tests != want.tests || !near(s.DownloadMedian, want.downMed*1e6) || !near(s.DownloadP10, want.downP10*1e6) ||
			!near(s.UploadMedian, want.upMed*1e6) || !near(s.UploadP10, want.upP10*1e6) {
			t.Errorf("%s: tests %d down %v/%v up %v/%v, want %+v", name, s.Tests, s.DownloadMedian, s.DownloadP10, s.UploadMedian, s.UploadP10, want)
		}
		for i, w := range want.compliance {
			got, ok := s.Compliance(i)
			if !ok {
				got = nan
			}
			if !near(got, w) {
				t.Errorf("%s: compliance %s = %v, want %v", name, e.opts.Rules[i].Name, got, w)
			}
		}
	}
	// opening hours: tests 1-4; downs 8 12 20 35: median 16, p10 8+0.3*4;
	// ups 0.5 2 5: median 2, p10 0.5+0.2*1.5
	check("leeds 7d opening", leeds.Windows[OpeningHours], stats{4, 16, 9.2, 2, 0.8, [4]float64{0.5, 0.25, 0, 0.75}})
	check("leeds 7d business", leeds.Windows[BusinessPeak], stats{2, 29, 12.2, 5.25, 1.45, [4]float64{0.5, 0.5, 0.5, 0.5}})
	check("leeds 7d consumer", leeds.Windows[ConsumerPeak], stats{1, 5, 5, 1, 1, [4]float64{0, 0, 0, 0}})
	// all: downs 5 8 12 20 35 50; ups 0.5 1 2 5 10
	check("leeds 7d all", leeds.Windows[AllHours], stats{6, 16, 6.5, 2, 0.7, [4]float64{0.5, 2.0 / 6, 1.0 / 6, 4.0 / 6}})
	if !near(leeds.Availability, 27.75/40) || !near(leeds.OutageSeconds, 5400) || !near(leeds.OpenSeconds, 40*3600) {
		t.Errorf("leeds 7d availability %v outage %v open %v, want %v, 5400, 144000", leeds.Availability, leeds.OutageSeconds, leeds.OpenSeconds, 27.75/40)
	}
	if !near(leeds.ContractDownload, 0.8) || !near(leeds.ContractUpload, 0.4) {
		t.Errorf("leeds contract ratios %v %v, want 0.8 0.4", leeds.ContractDownload, leeds.ContractUpload)
	}
	for i := range 4 {
		if below, ok := leeds.Below(i, 0.9); !ok || !below {
			t.Errorf("leeds below %s = %v %v, want true", e.opts.Rules[i].Name, below, ok)
		}
	}

	leedsMonth := byID(month, "leeds-1")
	// 30 days: test 8 joins (and meets video_call: no line quality then);
	// downs 8 12 20 35 100: median 20, p10 8+0.4*4
	check("leeds 30d opening", leedsMonth.Windows[OpeningHours], stats{5, 20, 9.6, 3.5, 0.95, [4]float64{0.6, 0.4, 0.2, 0.8}})
	// 20 weekdays open: 160 h; online 27.75 h + 15 min after test 8
	if !near(leedsMonth.Availability, 28.0/160) || !near(leedsMonth.OutageSeconds, 5400) {
		t.Errorf("leeds 30d availability %v outage %v", leedsMonth.Availability, leedsMonth.OutageSeconds)
	}

	ny := byID(week, "ny-1")
	check("ny 7d opening", ny.Windows[OpeningHours], stats{2, 40, 40, 10, 10, [4]float64{1, 1, 1, nan}})
	check("ny 7d business", ny.Windows[BusinessPeak], stats{1, 40, 40, 10, 10, [4]float64{1, 1, 1, nan}})
	check("ny 7d all", ny.Windows[AllHours], stats{3, 40, 12, 10, 2.8, [4]float64{2.0 / 3, 2.0 / 3, 2.0 / 3, nan}})
	if !near(ny.Availability, 65.0/480) || !math.IsNaN(ny.OutageSeconds) || !math.IsNaN(ny.ContractDownload) {
		t.Errorf("ny availability %v outage %v contract %v", ny.Availability, ny.OutageSeconds, ny.ContractDownload)
	}

	quiet := byID(week, "quiet-1")
	if quiet.Windows[OpeningHours].Tests != 0 || quiet.Availability != 0 || !math.IsNaN(quiet.OutageSeconds) {
		t.Errorf("quiet: %+v", quiet)
	}
	if _, ok := quiet.Below(0, 0.9); ok {
		t.Error("a site without tests is said to be below a profile")
	}
}

func TestAutoRegisteredSites(t *testing.T) {
	e := loadFixture(t, true)
	week := e.Compute(now, 7*24*time.Hour)
	stray := byID(week, "stray-1")
	if len(week) != 4 || stray == nil {
		t.Fatalf("auto-registered site not computed: %d sites", len(week))
	}
	if stray.Windows[OpeningHours] != nil || stray.Primary != AllHours || stray.Windows[AllHours].Tests != 1 || !math.IsNaN(stray.Availability) {
		t.Errorf("stray-1: %+v", stray)
	}
}

// TestLateLineQuality: a speed test stored before or after the line-quality
// summary of its time gets the summary's loss either way.
func TestLateLineQuality(t *testing.T) {
	list := mustSites(t, "sites: [{id: leeds-1, name: L, hub_type: library}]")
	for _, order := range []string{"test first", "summary first", "same batch"} {
		t.Run(order, func(t *testing.T) {
			h := newHistory(t)
			e := newEngine(t, h.st, list, false, now)
			ctx := context.Background()
			if err := e.Load(ctx); err != nil {
				t.Fatal(err)
			}
			steps := []func(){
				func() { h.speedtest("leeds-1", day(0, 10, 5), 50, 10, 20, 10) },
				func() { h.line("leeds-1", "udp", day(0, 10, 0), time.Hour, 1000, 950, 3) }, // 5 % loss
			}
			if order == "summary first" {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, step := range steps {
				step()
				if order != "same batch" {
					h.flush()
					if err := e.Update(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			h.flush()
			if err := e.Update(ctx); err != nil {
				t.Fatal(err)
			}
			f := e.Compute(now, 7*24*time.Hour)[0]
			s := f.Windows[AllHours]
			if c, _ := s.Compliance(2); s.Tests != 1 || c != 0 {
				t.Fatalf("video_call compliance %v of %d tests: the 5 %% loss was not applied", c, s.Tests)
			}
			if c, _ := s.Compliance(0); c != 1 {
				t.Fatalf("uso compliance %v", c)
			}
		})
	}
}

func TestUpdateIsIncremental(t *testing.T) {
	h := fixture(t)
	e := newEngine(t, h.st, mustSites(t, sitesYAML), false, now)
	ctx := context.Background()
	if err := e.Update(ctx); err == nil {
		t.Fatal("Update before Load succeeded")
	}
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before := e.Compute(now, 7*24*time.Hour)
	// reading the same rows again changes nothing
	e.mu.Lock()
	e.lastRow = 0
	e.mu.Unlock()
	if err := e.Update(ctx); err != nil {
		t.Fatal(err)
	}
	after := e.Compute(now, 7*24*time.Hour)
	for i := range before {
		b, a := byID(before, before[i].Site.ID), byID(after, before[i].Site.ID)
		if b.Windows[AllHours].Tests != a.Windows[AllHours].Tests || !near(b.Availability, a.Availability) || !near(b.OutageSeconds, a.OutageSeconds) {
			t.Errorf("%s changed on reading the rows again: %+v -> %+v", b.Site.ID, b, a)
		}
	}
	// a new test arrives
	h.speedtest("leeds-1", day(6, 10, 0), 100, 100, 10, 10)
	h.flush()
	if err := e.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if n := byID(e.Compute(now, 7*24*time.Hour), "leeds-1").Windows[AllHours].Tests; n != 7 {
		t.Errorf("tests after a new one: %d, want 7", n)
	}
}

func TestQuantiles(t *testing.T) {
	for _, tt := range []struct {
		in          []float64
		median, p10 float64
	}{
		{[]float64{5}, 5, 5},
		{[]float64{2, 1}, 1.5, 1.1},
		{[]float64{10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11}, 6, 2},
		{nil, math.NaN(), math.NaN()},
	} {
		m, p := quantiles(tt.in)
		if !near(m, tt.median) || !near(p, tt.p10) {
			t.Errorf("quantiles(%v) = %v, %v; want %v, %v", tt.in, m, p, tt.median, tt.p10)
		}
	}
}

func TestSpans(t *testing.T) {
	var s spans
	for _, x := range [][2]int64{{10, 20}, {30, 40}, {22, 25}, {0, 5}, {19, 23}, {50, 60}, {61, 70}} {
		s.add(x[0], x[1], 0)
	}
	want := spans{{0, 5}, {10, 25}, {30, 40}, {50, 60}, {61, 70}}
	if len(s) != len(want) {
		t.Fatalf("add: %v, want %v", s, want)
	}
	for i := range want {
		if s[i] != want[i] {
			t.Fatalf("add: %v, want %v", s, want)
		}
	}
	s.add(60, 61, 0)
	if len(s) != 4 || s[3] != (span{50, 70}) {
		t.Fatalf("touching spans not joined: %v", s)
	}
	var b spans
	b.add(0, 10, 0)
	b.add(12, 20, 2)
	if len(b) != 1 || b[0] != (span{0, 20}) {
		t.Fatalf("bridge: %v", b)
	}
	x := spans{{0, 10}, {20, 30}}
	y := spans{{5, 25}}
	if got := union(x, y); len(got) != 1 || got[0] != (span{0, 30}) {
		t.Errorf("union %v", got)
	}
	if got := intersect(x, y); len(got) != 2 || got[0] != (span{5, 10}) || got[1] != (span{20, 25}) {
		t.Errorf("intersect %v", got)
	}
	if got := subtract(x, y); len(got) != 2 || got[0] != (span{0, 5}) || got[1] != (span{25, 30}) {
		t.Errorf("subtract %v", got)
	}
	if got := subtract(spans{{0, 100}}, spans{{10, 20}, {30, 40}, {90, 200}}); len(got) != 3 || got.length() != 70 {
		t.Errorf("subtract many %v", got)
	}
	s.prune(32)
	if s[0] != (span{32, 40}) || len(s) != 2 {
		t.Errorf("prune %v", s)
	}
}

// TestMeets checks each criterion, and that a figure not measured does not
// fail a test, except upload.
func TestMeets(t *testing.T) {
	rules := config.Defaults().Thresholds.Rules()
	video, perSeat := &rules[2], &rules[3]
	nan := math.NaN()
	base := test{down: 10e6, up: 5e6, rtt: 0.02, added: 0.01, loss: 0, jitter: 0.005}
	for _, tt := range []struct {
		name   string
		change func(t *test)
		want   bool
	}{
		{"good", func(*test) {}, true},
		{"rtt at the limit", func(t *test) { t.rtt = 0.15 }, true},
		{"rtt over", func(t *test) { t.rtt = 0.151 }, false},
		{"added over", func(t *test) { t.added = 0.061 }, false},
		{"loss over", func(t *test) { t.loss = 0.011 }, false},
		{"jitter over", func(t *test) { t.jitter = 0.031 }, false},
		{"nothing but rates", func(t *test) { t.rtt, t.added, t.loss, t.jitter = nan, nan, nan, nan }, true},
		{"no upload", func(t *test) { t.up = nan }, false},
		{"slow upload", func(t *test) { t.up = 1.4e6 }, false},
	} {
		x := base
		tt.change(&x)
		if got := meets(video, &x, 0); got != tt.want {
			t.Errorf("video_call %s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if !meets(perSeat, &base, 4) || meets(perSeat, &base, 5) {
		t.Error("per_seat: 10 Mbit/s is enough for 4 seats, not 5")
	}
}

// TestRun: the background loop loads, refreshes on Kick, and serves scrapes
// and reports meanwhile (run with -race).
func TestRun(t *testing.T) {
	h := fixture(t)
	e := newEngine(t, h.st, mustSites(t, sitesYAML), false, now)
	e.opts.Interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.published.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no figures published")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first := e.published.Load()
	h.speedtest("leeds-1", day(6, 11, 0), 90, 90, 10, 10)
	h.flush()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = gapText(t, e, true)
				_ = e.Report(now, 7*24*time.Hour)
			}
		})
	}
	e.Kick()
	for e.published.Load() == first {
		if time.Now().After(deadline) {
			t.Fatal("Kick did not refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	readers.Wait()
	if n := byID(e.Compute(now, 7*24*time.Hour), "leeds-1").Windows[AllHours].Tests; n != 7 {
		t.Errorf("tests after the refresh: %d, want 7", n)
	}
	cancel()
	<-done
}

// TestAutoRegisteredSitesFade: with auto-registration, a site whose last
// measurement is older than the retention is not listed.
func TestAutoRegisteredSitesFade(t *testing.T) {
	h := newHistory(t)
	h.speedtest("old-1", day(-60, 10, 0), 10, 1, 20, 0)
	h.speedtest("new-1", day(0, 10, 0), 10, 1, 20, 0)
	h.flush()
	e := newEngine(t, h.st, nil, true, now)
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	figs := e.Compute(now, 30*24*time.Hour)
	if len(figs) != 1 || figs[0].Site.ID != "new-1" {
		t.Fatalf("sites: %d (%v)", len(figs), figs)
	}
	// and one that falls out of the retention while the engine runs
	e.opts.Now = func() time.Time { return now.Add(40 * 24 * time.Hour) }
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if figs := e.Compute(now.Add(40*24*time.Hour), 30*24*time.Hour); len(figs) != 0 {
		t.Fatalf("a site silent for 40 days is still listed: %v", figs[0].Site.ID)
	}
}

// TestAddTestOnce: a test is added once by its row (the engine skips a row
// read again: there are no row ids in the history to check); two tests of
// the same instant (two probes) are both kept.
func TestAddTestOnce(t *testing.T) {
	h := newHistory(t)
	list := mustSites(t, "sites: [{id: leeds-1, name: L, hub_type: library}]")
	at := day(1, 10, 0)
	h.speedtest("leeds-1", at, 10, 1, 0, 0)
	h.flush()
	e := newEngine(t, h.st, list, false, now)
	ctx := context.Background()
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	h.speedtest("leeds-1", at, 10, 1, 0, 0)
	h.speedtest("leeds-1", at.Add(-time.Hour), 10, 1, 0, 0)
	h.flush()
	for range 2 {
		if err := e.Update(ctx); err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.lastRow = 0 // read every row again
		e.mu.Unlock()
	}
	e.mu.Lock()
	tests := e.sites["leeds-1"].tests
	e.mu.Unlock()
	if len(tests) != 3 || tests[0].at != at.Add(-time.Hour).UnixNano() || tests[1].at != at.UnixNano() || tests[2].at != at.UnixNano() {
		t.Errorf("tests: %+v", tests)
	}
}

// TestRowStoredDuringLoad: a speed test stored while Load runs, after the
// last row it reads up to, is read by Load's query and by the next Update,
// and counted once.
func TestRowStoredDuringLoad(t *testing.T) {
	h := newHistory(t)
	list := mustSites(t, "sites: [{id: leeds-1, name: L, hub_type: library}]")
	h.speedtest("leeds-1", day(0, 10, 0), 50, 10, 20, 10)
	h.flush()
	e := newEngine(t, h.st, list, false, now)
	var once sync.Once
	e.opts.Now = func() time.Time {
		// Load asks the time after the last row id, before reading
		once.Do(func() {
			h.speedtest("leeds-1", day(1, 10, 0), 50, 10, 20, 10)
			h.flush()
		})
		return now
	}
	ctx := context.Background()
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.Compute(now, 7*24*time.Hour)[0].Windows[AllHours].Tests; n != 2 {
		t.Errorf("tests: %d, want 2", n)
	}
}

// TestLimitsAsKept: a figure exactly at a limit meets it once kept as a
// float32 (0.15 s rounds up to 0.150000006 s, 5 % loss to 0.0500000007).
func TestLimitsAsKept(t *testing.T) {
	rules := config.Defaults().Thresholds.Rules()
	video := rules[2]
	video.MaxLossRatio = 0.05
	var h siteHistory
	at := day(1, 10, 0)
	h.addTest(&store.Point{Kind: wire.KindSpeedtest, MeasuredAt: at, DownloadBitsPerSecond: video.MinDownloadBitsPerSecond,
		UploadBitsPerSecond: video.MinUploadBitsPerSecond, LatencySeconds: video.MaxIdleRTTSeconds,
		AddedLatencyDownloadSeconds: video.MaxAddedLatencySeconds, AddedLatencyUploadSeconds: math.NaN()})
	h.attach(at.UnixNano(), at.UnixNano()+1, float64(1)/20, video.MaxJitterSeconds)
	x := h.tests[0].test()
	if !meets(&video, &x, 0) {
		t.Errorf("a test at every limit of %s fails it: %+v", video.Name, x)
	}
}

func TestSpansCut(t *testing.T) {
	for _, tt := range []struct {
		a, b int64
		want spans
	}{
		{0, 5, spans{{10, 20}, {30, 40}}},
		{12, 15, spans{{10, 12}, {15, 20}, {30, 40}}},
		{15, 35, spans{{10, 15}, {35, 40}}},
		{5, 45, nil},
		{20, 30, spans{{10, 20}, {30, 40}}},
		{10, 20, spans{{30, 40}}},
	} {
		s := spans{{10, 20}, {30, 40}}
		s.cut(tt.a, tt.b)
		if len(s) != len(tt.want) || len(s) > 0 && !slices.Equal(s, tt.want) {
			t.Errorf("cut(%d, %d) = %v, want %v", tt.a, tt.b, s, tt.want)
		}
	}
	if got, ok := (spans{{10, 20}}).find(20); ok {
		t.Errorf("find(20) = %v in [10, 20)", got)
	}
}

// TestPresenceUnderLineQuality: presence is kept only where no stream
// covers it, whichever comes first, and the figures are those of the whole.
func TestPresenceUnderLineQuality(t *testing.T) {
	var h siteHistory
	line := func(at time.Time, d time.Duration) {
		h.addLine(&store.Point{Kind: wire.KindLineQuality, Probe: "line", Method: "udp", MeasuredAt: at, IntervalSeconds: d.Seconds(),
			Sent: 100, Received: 100, LineQualityPresent: true})
	}
	h.addPresence(day(0, 9, 50), 15*time.Minute) // [09:50, 10:05): cut to [09:50, 10:00)
	line(day(0, 10, 0), time.Hour)
	h.addPresence(day(0, 10, 30), 15*time.Minute) // covered
	h.addPresence(day(0, 10, 55), 15*time.Minute) // [11:00, 11:10)
	want := spans{{day(0, 9, 50).UnixNano(), day(0, 10, 0).UnixNano()}, {day(0, 11, 0).UnixNano(), day(0, 11, 10).UnixNano()}}
	if !slices.Equal(h.presence, want) {
		t.Errorf("presence %v, want %v", h.presence, want)
	}
}

func TestTrimmed(t *testing.T) {
	s := make([]int, 3, 100)
	if got := trimmed(s); cap(got) != 3 || &got[0] == &s[0] {
		t.Errorf("trimmed: cap %d, same array %v", cap(got), &got[0] == &s[0])
	}
	if got := trimmed(s[:0]); got != nil {
		t.Errorf("trimmed empty: %v (cap %d), want nil", got, cap(got))
	}
}
