package schedule

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/outbox"
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
// test costs 100e6/8 × 1.2 = 15 MB per second it loads the line, so a full
// 10 s test (12 s with the warm-up) is estimated at 180 MB, a 3 s one (4.5 s)
// at 67.5 MB.
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
		// share 133 MB; 15 MB per loaded second: 7 s (9 s loaded) is 135 MB,
		// 6 s (8 s loaded) 120 MB
		{name: "shortened to the share", budget: 20e9, runsLeft: 150, run: true, duration: 6 * time.Second, estimate: 120e6,
			reasonHas: "shared by the 150 tests still planned"},
		{name: "the share is less than 3 s: 3 s while the budget lasts", budget: 20e9, runsLeft: 1000, run: true, duration: 3 * time.Second, estimate: 67.5e6,
			reasonHas: "does not cover the 1000 tests"},
		{name: "not even 3 s left", budget: 20e9, used: 20e9 - 67e6, runsLeft: 3, run: false, reasonHas: "even a 3s test would exceed"},
		{name: "used up", budget: 20e9, used: 20e9 + 1, runsLeft: 3, run: false, reasonHas: "used up"},
		// unknown rates: 100/20 assumed, 216 MB for a full test
		{name: "first test, rates unknown", budget: 20e9, runsLeft: 90, unknown: true, run: true, duration: 10 * time.Second, estimate: 216e6},
		{name: "first test, rates unknown, shortened", budget: 20e9, runsLeft: 100, unknown: true, run: true, duration: 9 * time.Second, estimate: 198e6,
			reasonHas: "allows 200000000 bytes each"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(t, BudgetConfig{MonthlyBytes: tt.budget, Now: func() time.Time { return at }})
			b.st.Month, b.st.UsedBytes = "2026-10", tt.used
			if !tt.unknown {
				b.st.Rates["internet"] = Rates{80e6, 20e6}
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
	if got := b.Rates("internet"); got != (Rates{60e6, 20e6}) {
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
