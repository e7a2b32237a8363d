package schedule

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memStore) State(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], nil
}

func (s *memStore) SetState(ctx context.Context, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	s.m[key] = value
	return nil
}

func newBudget(tb testing.TB, cfg BudgetConfig) *Budget {
	tb.Helper()
	b, err := NewBudget(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var speedJob = Job{Name: "internet", Kind: wire.KindSpeedtest, Heavy: true, Duration: 10 * time.Second}

// speedResult is what a speed test measuring d per direction on a line of
// down/up bits/s reports, warm-up included in the bytes.
func speedResult(down, up float64, d time.Duration) *wire.Measurement {
	secs := loaded(d).Seconds()
	return &wire.Measurement{Kind: wire.KindSpeedtest, Success: true, Speedtest: &wire.Speedtest{
		DownloadBitsPerSecond: wire.Float(down), UploadBitsPerSecond: wire.Float(up), LatencySeconds: wire.Float(0.02),
		DownloadBytes: int64(down / 8 * secs), UploadBytes: int64(up / 8 * secs),
	}}
}

// TestBudgetDecide checks each branch of the decision on an 80/20 line: a
// test costs 100e6/8 = 12.5 MB per second it loads the line, 15 MB with the
// margin, so a full 10 s test (12 s with the warm-up) is estimated at 150 MB
// (180 MB with the margin), a 3 s one (4.5 s) at 56.25 MB (67.5 MB). The
// share is compared with the estimate, the remaining budget with the
// estimate and its margin; the decision's estimate has the margin.
func TestBudgetDecide(t *testing.T) {
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		budget    int64
		used      int64
		runsLeft  int
		unknown   bool // no rates measured yet
		run       bool
		duration  time.Duration
		estimate  int64
		reasonHas string
	}{
		{name: "no budget", budget: 0, used: 1e15, runsLeft: 1000, run: true, duration: 10 * time.Second, estimate: 180e6},
		{name: "share covers a full test", budget: 20e9, runsLeft: 100, run: true, duration: 10 * time.Second, estimate: 180e6},
		{name: "exactly", budget: 18e9, runsLeft: 100, run: true, duration: 10 * time.Second, estimate: 180e6},
		// share 161 MB: a full test's 150 MB fits it; its 180 MB with the
		// margin would not, and must not shorten it
		{name: "share covers a full test without the margin", budget: 20e9, runsLeft: 124, run: true, duration: 10 * time.Second, estimate: 180e6},
		// share 133 MB; 12.5 MB per loaded second: 9 s (11 s loaded) is
		// 137.5 MB, 8 s (10 s loaded) 125 MB
		{name: "shortened to the share", budget: 20e9, runsLeft: 150, run: true, duration: 8 * time.Second, estimate: 150e6,
			reasonHas: "shared by the 150 tests still planned"},
		// the last test of the month: 160 MB left; a full test's 150 MB
		// fits, not its 180 MB with the margin; 8 s is 125 MB, 150 MB with it
		{name: "the margin against what remains", budget: 20e9, used: 20e9 - 160e6, runsLeft: 1, run: true, duration: 8 * time.Second, estimate: 150e6,
			reasonHas: "shared by the 1 tests"},
		{name: "the share is less than 3 s: 3 s while the budget lasts", budget: 20e9, runsLeft: 1000, run: true, duration: 3 * time.Second, estimate: 67.5e6,
			reasonHas: "does not cover the 1000 tests"},
		{name: "not even 3 s left", budget: 20e9, used: 20e9 - 67e6, runsLeft: 3, run: false, reasonHas: "even a 3s test would exceed"},
		{name: "used up", budget: 20e9, used: 20e9 + 1, runsLeft: 3, run: false, reasonHas: "used up"},
		// unknown rates: 100/20 assumed, 180 MB for a full test, 216 MB with
		// the margin
		{name: "first test, rates unknown", budget: 20e9, runsLeft: 100, unknown: true, run: true, duration: 10 * time.Second, estimate: 216e6},
		// share 166.7 MB: 9 s (11 s loaded) is 165 MB
		{name: "first test, rates unknown, shortened", budget: 20e9, runsLeft: 120, unknown: true, run: true, duration: 9 * time.Second, estimate: 198e6,
			reasonHas: "allows 166666666 bytes each"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(t, BudgetConfig{MonthlyBytes: tt.budget, Now: func() time.Time { return at }})
			b.st.Month, b.st.UsedBytes = "2026-10", tt.used
			if !tt.unknown {
				seedRates(b, "internet", Rates{80e6, 20e6})
			}
			d := b.decide(speedJob, at, tt.runsLeft)
			if d.run != tt.run || tt.run && (d.duration != tt.duration || d.estimate != tt.estimate) || !strings.Contains(d.reason, tt.reasonHas) {
				t.Fatalf("decide = %+v; want run %v, %s, estimate %d, reason with %q", d, tt.run, tt.duration, tt.estimate, tt.reasonHas)
			}
			if skipped := b.Status().Skipped; (skipped == 1) == tt.run {
				t.Fatalf("skipped %d (run %v)", skipped, tt.run)
			}
		})
	}
}

// TestBudgetRecord: the month's use grows by the bytes the tests report, a
// shortened test is counted, and rates are kept as the tests cost them.
func TestBudgetRecord(t *testing.T) {
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	b := newBudget(t, BudgetConfig{MonthlyBytes: 20e9, Now: func() time.Time { return at }})
	b.record(speedJob, at, decision{run: true, duration: 10 * time.Second}, speedResult(80e6, 20e6, 10*time.Second))
	b.record(speedJob, at, decision{run: true, duration: 5 * time.Second}, speedResult(80e6, 20e6, 5*time.Second))
	// a failed test: its bytes count, its missing upload keeps the upload rate
	failed := speedResult(60e6, 20e6, 10*time.Second)
	failed.Success, failed.Error, failed.Speedtest.UploadBitsPerSecond, failed.Speedtest.UploadBytes = false, "upload: server gone", nil, 1000
	b.record(speedJob, at, decision{run: true, duration: 10 * time.Second}, failed)
	// a test interrupted by shutdown counts its estimate
	b.record(speedJob, at, decision{run: true, duration: 10 * time.Second, estimate: 7e6}, nil)
	want := BudgetStatus{Month: "2026-10", BudgetBytes: 20e9, UsedBytes: 150e6 + 87.5e6 + 90e6 + 1000 + 7e6, Shortened: 1}
	if got := b.Status(); got != want {
		t.Fatalf("Status = %+v, want %+v", got, want)
	}
	// the highest of the last 3: 80, 80, 60 down; 20, 20 up
	if got := b.Rates("internet"); got != (Rates{80e6, 20e6}) {
		t.Fatalf("rates %+v", got)
	}
	// bytes above the measured rate (a test that moves more than it counts)
	// raise the cost rate
	heavy := speedResult(80e6, 20e6, 10*time.Second)
	heavy.Speedtest.DownloadBytes *= 2
	b.record(speedJob, at, decision{run: true, duration: 10 * time.Second}, heavy)
	if got := b.Rates("internet"); got != (Rates{160e6, 20e6}) {
		t.Fatalf("rates %+v", got)
	}
	st := &wire.Status{}
	b.Fill(st)
	if st.BudgetMonth != "2026-10" || st.DataBudgetBytes != 20e9 || st.DataUsedBytes != b.Status().UsedBytes || st.SpeedtestsShortened != 1 {
		t.Fatalf("Fill: %+v", st)
	}
}

// TestBudgetMonthRollover: a new month in the site's time zone starts again
// at zero; a clock that goes back a month does not reset it.
func TestBudgetMonthRollover(t *testing.T) {
	loc := london(t)
	now := time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC) // 00:30 BST on 1 July
	b := newBudget(t, BudgetConfig{MonthlyBytes: 20e9, Location: loc, Now: func() time.Time { return now }})
	june := time.Date(2026, 6, 30, 12, 0, 0, 0, loc)
	b.record(speedJob, june, decision{run: true, duration: 3 * time.Second}, speedResult(80e6, 20e6, 3*time.Second))
	b.skip(speedJob, june, "test")
	if s := b.Status(); s.Month != "2026-07" || s.UsedBytes != 0 || s.Skipped != 0 || s.Shortened != 0 {
		t.Fatalf("July (in London) before any test: %+v", s)
	}
	now = june
	if s := b.Status(); s.Month != "2026-06" || s.UsedBytes != 56250000 || s.Skipped != 1 || s.Shortened != 1 {
		t.Fatalf("June: %+v", s)
	}
	july := time.Date(2026, 7, 1, 9, 0, 0, 0, loc)
	if d := b.decide(speedJob, july, 10); !d.run || d.duration != 10*time.Second {
		t.Fatalf("first July decision: %+v", d)
	}
	b.record(speedJob, july, decision{run: true, duration: 10 * time.Second}, speedResult(80e6, 20e6, 10*time.Second))
	// the clock goes back to June (a Pi at boot, before NTP): July's figures stay
	b.record(speedJob, june, decision{run: true, duration: 10 * time.Second}, speedResult(80e6, 20e6, 10*time.Second))
	now = july
	if s := b.Status(); s.Month != "2026-07" || s.UsedBytes != 300e6 || s.Skipped != 0 {
		t.Fatalf("July: %+v", s)
	}
}

// TestBudgetRestart: the month's figures and the rates survive a restart of
// the agent, in its outbox.
func TestBudgetRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	now := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	cfg := BudgetConfig{MonthlyBytes: 20e9, Now: func() time.Time { return now }}
	open := func() (*outbox.Outbox, *Budget) {
		ob, err := outbox.Open(path, "hub-1", 100)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store = ob
		return ob, newBudget(t, cfg)
	}
	ob, b := open()
	b.record(speedJob, now, decision{run: true, duration: 5 * time.Second}, speedResult(80e6, 20e6, 5*time.Second))
	b.skip(speedJob, now, "test")
	before, rates := b.Status(), b.Rates("internet")
	ob.Close()

	ob, b = open()
	defer ob.Close()
	if got := b.Status(); got != before || got.UsedBytes == 0 {
		t.Fatalf("after a restart: %+v, want %+v", got, before)
	}
	if got := b.Rates("internet"); got != rates || got.DownloadBitsPerSecond != 80e6 {
		t.Fatalf("rates after a restart: %+v, want %+v", got, rates)
	}
	// state that cannot be read starts afresh rather than stopping the agent
	if err := ob.SetState(context.Background(), budgetKey, "{not json"); err != nil {
		t.Fatal(err)
	}
	cfg.Store = ob
	if b := newBudget(t, cfg); b.Status().UsedBytes != 0 {
		t.Fatalf("unreadable state: %+v", b.Status())
	}
}

// seedRates gives job measured rates, as if its tests had measured r.
func seedRates(b *Budget, job string, r Rates) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.History[job] = rateHistory{Download: []float64{r.DownloadBitsPerSecond}, Upload: []float64{r.UploadBitsPerSecond}}
	b.st.Rates[job] = r
}

// TestBudgetNoBytes: a run that reports no bytes (it failed or panicked
// before the probe counted any) is booked at its estimate, prorated by how
// long it ran against one direction's loaded time.
func TestBudgetNoBytes(t *testing.T) {
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	dec := decision{run: true, duration: 10 * time.Second, estimate: 180e6} // 12 s loaded each way
	for _, tt := range []struct {
		name string
		m    *wire.Measurement
		want int64
	}{
		{"interrupted by shutdown", nil, 180e6},
		{"panicked after 3 s", &wire.Measurement{Kind: wire.KindSpeedtest, Error: "probe panicked: boom", DurationSeconds: 3, Speedtest: &wire.Speedtest{}}, 45e6},
		{"server down: failed at once", &wire.Measurement{Kind: wire.KindSpeedtest, Error: "connection refused", DurationSeconds: 0.012, Speedtest: &wire.Speedtest{}}, 180e3},
		{"timed out", &wire.Measurement{Kind: wire.KindSpeedtest, Error: "timed out after 2m0s", DurationSeconds: 120, Speedtest: &wire.Speedtest{}}, 180e6},
		{"succeeded with no bytes counted", &wire.Measurement{Kind: wire.KindSpeedtest, Success: true, DurationSeconds: 26, Speedtest: &wire.Speedtest{}}, 180e6},
		{"failed with bytes counted", &wire.Measurement{Kind: wire.KindSpeedtest, Error: "upload: server gone", DurationSeconds: 20, Speedtest: &wire.Speedtest{DownloadBytes: 5e6}}, 5e6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(t, BudgetConfig{MonthlyBytes: 20e9, Now: func() time.Time { return at }})
			b.record(speedJob, at, dec, tt.m)
			if got := b.Status().UsedBytes; got != tt.want {
				t.Fatalf("booked %d bytes, want %d", got, tt.want)
			}
			if got := b.Rates("internet"); got != (Rates{defaultDownload, defaultUpload}) {
				t.Fatalf("a run without rates changed the rates: %+v", got)
			}
		})
	}
	// through the scheduler: a speed test that panics is booked, not free
	at = time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(at)
	b := newBudget(t, BudgetConfig{MonthlyBytes: 20e9, Now: clock.Now})
	job := speedJob
	job.Timeout, job.Interval = time.Minute, 7*24*time.Hour
	job.NewProber = func(d time.Duration) probe.Prober {
		return proberFunc(func(ctx context.Context) (probe.Result, error) {
			<-clock.After(6 * time.Second) // half a direction's loaded time
			panic("boom")
		})
	}
	ms := simulate(t, clock, []Job{job}, Options{Budget: b}, at.Add(30*time.Minute))
	if len(ms) != 1 || ms[0].Success || b.Status().UsedBytes != 108e6 { // 216 MB (rates unknown) × 6/12
		t.Fatalf("%d measurements; booked %d bytes, want 108000000", len(ms), b.Status().UsedBytes)
	}
}

// TestBudgetRates: an estimate takes, per direction, the highest of the last
// 3 measured rates, so one congested reading does not let the next test
// blow the budget; they survive a restart, and state stored before there was
// a history (one rate per direction) is read as a history of one.
func TestBudgetRates(t *testing.T) {
	at := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	store := &memStore{}
	b := newBudget(t, BudgetConfig{Store: store, MonthlyBytes: 20e9, Now: func() time.Time { return at }})
	run := func(down, up float64) {
		t.Helper()
		b.record(speedJob, at, decision{run: true, duration: 10 * time.Second}, speedResult(down, up, 10*time.Second))
	}
	run(80e6, 20e6)
	run(10e6, 2e6) // congested
	if got := b.Rates("internet"); got != (Rates{80e6, 20e6}) {
		t.Fatalf("after one congested reading: %+v, want 80/20", got)
	}
	run(12e6, 3e6)
	if got := b.Rates("internet"); got != (Rates{80e6, 20e6}) {
		t.Fatalf("after two congested readings: %+v, want 80/20", got)
	}
	run(11e6, 2.5e6) // the 80/20 reading is now 4 tests old
	if got := b.Rates("internet"); got != (Rates{12e6, 3e6}) {
		t.Fatalf("after three congested readings: %+v, want 12/3", got)
	}
	b = newBudget(t, BudgetConfig{Store: store, MonthlyBytes: 20e9, Now: func() time.Time { return at }})
	if got := b.Rates("internet"); got != (Rates{12e6, 3e6}) {
		t.Fatalf("after a restart: %+v, want 12/3", got)
	}
	run(5e6, 1e6)
	run(4e6, 1e6)
	if got := b.Rates("internet"); got != (Rates{11e6, 2.5e6}) {
		t.Fatalf("after a restart and two more readings: %+v, want 11/2.5 (12/3 is 4 tests old)", got)
	}

	// state of an agent from before the history
	old := &memStore{m: map[string]string{budgetKey: `{"month":"2026-10","used_bytes":5,"rates":{"internet":{"download_bits_per_second":70e6,"upload_bits_per_second":15e6}}}`}}
	b = newBudget(t, BudgetConfig{Store: old, MonthlyBytes: 20e9, Now: func() time.Time { return at }})
	if got := b.Rates("internet"); got != (Rates{70e6, 15e6}) {
		t.Fatalf("old state: %+v, want 70/15", got)
	}
	run(10e6, 20e6)
	if got := b.Rates("internet"); got != (Rates{70e6, 20e6}) || b.Status().UsedBytes != 5+45e6 {
		t.Fatalf("old state and a reading: %+v, %+v", got, b.Status())
	}
}

// TestBudgetAssumeOnPace: when the month's figures are lost, the use
// restarts at the budget's share of the month gone, not at 0.
func TestBudgetAssumeOnPace(t *testing.T) {
	loc := london(t)
	at := time.Date(2026, 11, 16, 0, 0, 0, 0, loc) // half of November gone
	b := newBudget(t, BudgetConfig{Store: &memStore{}, MonthlyBytes: 20e9, Location: loc, Now: func() time.Time { return at }})
	if got := b.AssumeOnPace(at); got != 10e9 || b.Status().UsedBytes != 10e9 || b.Status().Month != "2026-11" {
		t.Fatalf("AssumeOnPace = %d, status %+v; want 10 GB", got, b.Status())
	}
	// never lowers the use
	b.record(speedJob, at, decision{run: true, duration: 10 * time.Second}, speedResult(80e6, 20e6, 10*time.Second))
	if got := b.AssumeOnPace(at); got != 10e9+150e6 {
		t.Fatalf("AssumeOnPace after a test = %d", got)
	}
	// no budget: nothing assumed
	b = newBudget(t, BudgetConfig{Location: loc, Now: func() time.Time { return at }})
	if got := b.AssumeOnPace(at); got != 0 {
		t.Fatalf("AssumeOnPace without a budget = %d", got)
	}
}
