package schedule

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// openingHoursJob is a speed test on the default schedule of a hub open
// Monday to Saturday 09:00-17:00: 4 tests a day, 10 s per direction.
func openingHoursJob(name string, l *line) Job {
	return Job{
		Name: name, Kind: wire.KindSpeedtest, Heavy: true, Timeout: time.Hour, Duration: 10 * time.Second,
		NewProber: l.newProber(name),
		Plan:      &Plan{TestsPerDay: 4, Week: weekdays(Span{hm(9, 0), hm(17, 0)})},
	}
}

// TestMonthOnBudget simulates October 2026 (31 days, a DST change on Sunday
// the 25th) of default scheduling, 4 tests a day of 10 s per direction (+2 s
// warm-up) inside 09:00-17:00, on an 80/20 Mbit/s line with a 20 GB budget,
// from an agent's first start (the line's rates not yet known): at a hub
// open Monday to Saturday (27 days, 108 tests of 150 MB: 16.2 GB), and at
// one open every day (124 tests: 18.6 GB, within the budget without the
// estimates' margin, 22.3 GB with it). None is skipped; the every-day hub's
// first test is shortened, 100/20 Mbit/s being assumed until the line has
// been measured.
func TestMonthOnBudget(t *testing.T) {
	loc := london(t)
	for _, tt := range []struct {
		name      string
		week      Week
		days      int
		shortened int64
		maxBytes  int64
	}{
		{"Mon-Sat", weekdays(Span{hm(9, 0), hm(17, 0)}), 27, 0, 16.2e9},
		{"every day", everyDay(Span{hm(9, 0), hm(17, 0)}), 31, 1, 18.6e9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from, until := time.Date(2026, 10, 1, 0, 0, 0, 0, loc), time.Date(2026, 11, 1, 0, 0, 0, 0, loc)
			clock := newFakeClock(from)
			l := &line{downBPS: 80e6, upBPS: 20e6, clock: clock}
			budget := newBudget(t, BudgetConfig{Store: &memStore{}, MonthlyBytes: 20e9, Location: loc, Now: clock.Now})
			job := openingHoursJob("internet", l)
			job.Plan.Week = tt.week
			ms := simulate(t, clock, []Job{job}, Options{Location: loc, Seed: 1, Budget: budget}, until.Add(-time.Nanosecond))

			runs := l.taken()
			st := budget.Status()
			var sum int64
			full := 0
			for _, r := range runs {
				sum += r.bytes
				lt := r.at.In(loc)
				if len(tt.week[lt.Weekday()]) == 0 || lt.Hour() < 9 || lt.Hour() >= 17 {
					t.Errorf("a test at %s, outside the opening hours", lt)
				}
				if r.duration == 10*time.Second {
					full++
				}
			}
			if want := 4 * tt.days; len(runs) != want || len(ms) != want || st.Skipped != 0 {
				t.Fatalf("%d tests run, %d measurements, %d skipped; want %d (%d days × 4), none skipped", len(runs), len(ms), st.Skipped, want, tt.days)
			}
			if st.Month != "2026-10" || st.UsedBytes != sum || sum > tt.maxBytes {
				t.Fatalf("status %+v; the tests moved %d bytes", st, sum)
			}
			if st.Shortened != tt.shortened || full != len(runs)-int(tt.shortened) {
				t.Fatalf("%d shortened, %d full; want %d shortened", st.Shortened, full, tt.shortened)
			}
			t.Logf("October 2026, 80/20 Mbit/s, %s 09:00-17:00, 4 tests a day of 10 s per direction (+2 s warm-up): "+
				"%d tests (%d full, %d shortened, %d skipped), %.3f GB of the 20 GB budget",
				tt.name, len(runs), full, st.Shortened, st.Skipped, float64(st.UsedBytes)/1e9)
		})
	}
}

// TestTightBudget: on a budget the default schedule does not fit, tests are
// shortened so that the budget lasts the month, and skipped only when not
// even a 3 s test fits. The budget is never exceeded.
func TestTightBudget(t *testing.T) {
	loc := london(t)
	for _, tt := range []struct {
		budget               int64
		minShortened         int64
		minSkipped           int64
		maxSkipped           int64
		lastWeekTestsAtLeast int
	}{
		// a 3 s test costs about 56 MB: 108 of them fit in 10 GB
		{budget: 10e9, minShortened: 100, maxSkipped: 0, lastWeekTestsAtLeast: 24},
		// 3 GB: about 53 tests of 3 s, then none
		{budget: 3e9, minShortened: 50, minSkipped: 40, maxSkipped: 60},
	} {
		t.Run(time.Duration(tt.budget).String(), func(t *testing.T) {
			from, until := time.Date(2026, 10, 1, 0, 0, 0, 0, loc), time.Date(2026, 11, 1, 0, 0, 0, 0, loc)
			clock := newFakeClock(from)
			l := &line{downBPS: 80e6, upBPS: 20e6, clock: clock}
			budget := newBudget(t, BudgetConfig{MonthlyBytes: tt.budget, Location: loc, Now: clock.Now})
			seedRates(budget, "internet", Rates{80e6, 20e6}) // known from September
			simulate(t, clock, []Job{openingHoursJob("internet", l)}, Options{Location: loc, Seed: 3, Budget: budget}, until.Add(-time.Nanosecond))
			runs, st := l.taken(), budget.Status()
			lastWeek := 0
			for _, r := range runs {
				if r.duration < MinDuration {
					t.Fatalf("a test of %s", r.duration)
				}
				if r.at.After(time.Date(2026, 10, 25, 0, 0, 0, 0, loc)) {
					lastWeek++
				}
			}
			if st.UsedBytes > tt.budget || int64(len(runs))+st.Skipped != 108 ||
				st.Shortened < tt.minShortened || st.Skipped < tt.minSkipped || st.Skipped > tt.maxSkipped || lastWeek < tt.lastWeekTestsAtLeast {
				t.Fatalf("budget %d: %+v, %d tests run, %d in the last week", tt.budget, st, len(runs), lastWeek)
			}
			t.Logf("budget %.0f GB: %d run (%d shortened), %d skipped, %.2f GB used", float64(tt.budget)/1e9, len(runs), st.Shortened, st.Skipped, float64(st.UsedBytes)/1e9)
		})
	}
}

// TestPlannedNeverOverlap runs two speed tests planned densely into the same
// hour (48 a day each, 75 s slots, 26 s runs): never two at once; a run that
// finds a test still going is skipped and counted, whoever's it is.
func TestPlannedNeverOverlap(t *testing.T) {
	loc := london(t)
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, loc)
	clock := newFakeClock(from)
	l := &line{downBPS: 20e6, upBPS: 5e6, clock: clock}
	plan := &Plan{TestsPerDay: 48, Week: everyDay(Span{hm(12, 0), hm(13, 0)})}
	a, b := openingHoursJob("a", l), openingHoursJob("b", l)
	a.Plan, b.Plan = plan, plan
	budget := newBudget(t, BudgetConfig{Location: loc, Now: clock.Now})
	simulate(t, clock, []Job{a, b}, Options{Location: loc, Seed: 9, Budget: budget}, from.AddDate(0, 0, 3))
	runs, st := l.taken(), budget.Status()
	if l.maxInside.Load() != 1 {
		t.Fatalf("%d speed tests ran at once", l.maxInside.Load())
	}
	if planned := int64(2 * 48 * 3); int64(len(runs))+st.Skipped != planned || st.Skipped == 0 || len(runs) < 50 {
		t.Fatalf("%d run + %d skipped, want %d planned, some skipped", len(runs), st.Skipped, planned)
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].at.Sub(runs[i-1].at) < 2*loaded(10*time.Second)+2*time.Second {
			t.Fatalf("runs at %s and %s overlap", runs[i-1].at, runs[i].at)
		}
	}
}

// TestClockJump: a wall clock stepped forward by days (NTP after a Pi boots
// with yesterday's time) is noticed within minutes; the runs it jumped over
// were never due and are not counted as skipped.
func TestClockJump(t *testing.T) {
	loc := london(t)
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, loc) // a Monday
	clock := newFakeClock(from)
	l := &line{downBPS: 80e6, upBPS: 20e6, clock: clock}
	budget := newBudget(t, BudgetConfig{Location: loc, Now: clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, []Job{openingHoursJob("internet", l)}, Options{Clock: clock, Location: loc, Budget: budget, Sink: func(context.Context, *wire.Measurement) error { return nil }})
	}()
	clock.advance(1, from.Add(20*time.Hour)) // Monday's 4 tests
	clock.jump(48 * time.Hour)               // to Wednesday 20:00
	clock.advance(1, from.AddDate(0, 0, 3).Add(20*time.Hour))
	cancel()
	<-done
	days := map[int]int{}
	for _, r := range l.taken() {
		days[r.at.In(loc).Day()]++
	}
	if days[4] != 4 || days[5] != 0 || days[6] != 0 || days[7] != 4 || budget.Status().Skipped != 0 {
		t.Fatalf("tests per day of May %v, %d skipped; want 4 on Monday and Thursday, none skipped", days, budget.Status().Skipped)
	}
}

// TestClockJumpBack: a wall clock a day ahead (a bad time source) set back
// by NTP. The agent must not wait for the wrong clock's tomorrow: the day it
// is really in gets its tests, at their planned wall times.
func TestClockJumpBack(t *testing.T) {
	loc := london(t)
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, loc) // a Monday
	clock := newFakeClock(from)
	l := &line{downBPS: 80e6, upBPS: 20e6, clock: clock}
	budget := newBudget(t, BudgetConfig{Location: loc, Now: clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, []Job{openingHoursJob("internet", l)}, Options{Clock: clock, Location: loc, Budget: budget, Sink: func(context.Context, *wire.Measurement) error { return nil }})
	}()
	clock.advance(1, from.Add(24*time.Hour+20*time.Hour)) // the wrong clock's Monday and Tuesday: 8 tests
	clock.step(-24 * time.Hour)                           // back to Monday 20:00
	clock.advance(1, from.AddDate(0, 0, 2).Add(20*time.Hour))
	cancel()
	<-done
	days := map[int]int{}
	for _, r := range l.taken() {
		days[r.at.In(loc).Day()]++
	}
	// Tuesday twice: by the wrong clock, then really
	if days[4] != 4 || days[5] != 8 || days[6] != 4 {
		t.Fatalf("tests per day of May %v; want 4 on Monday, 8 on Tuesday (4 by the wrong clock) and 4 on Wednesday", days)
	}
}

// TestLightJobs: a job whose runs last its interval runs back to back
// (line quality); one that fails at once still waits its interval; a heavy
// job on an interval is weighed by the budget too.
func TestLightJobs(t *testing.T) {
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(from)
	var lineStarts, failStarts []time.Time
	lineQuality := Job{Name: "line", Kind: wire.KindLineQuality, Interval: time.Minute, Timeout: time.Hour,
		Prober: proberFunc(func(ctx context.Context) (probe.Result, error) {
			lineStarts = append(lineStarts, clock.Now())
			select {
			case <-clock.After(time.Minute): // one summary
			case <-ctx.Done():
				return probe.Result{}, ctx.Err()
			}
			return probe.Result{Kind: wire.KindLineQuality, LineQuality: &wire.LineQuality{Method: "udp", Target: "127.0.0.1:9471", IntervalSeconds: 60, Sent: 40, Received: 40}}, nil
		})}
	failing := Job{Name: "dns", Kind: wire.KindDNS, Interval: 5 * time.Minute, FirstRun: 10 * time.Second, Timeout: time.Hour,
		Prober: proberFunc(func(ctx context.Context) (probe.Result, error) {
			failStarts = append(failStarts, clock.Now())
			return probe.Result{Kind: wire.KindDNS, DNS: &wire.DNS{Results: []wire.DNSResult{{Resolver: "system", Name: "www.gov.uk", Error: "no route to host"}}}},
				errors.New("no route to host")
		})}
	l := &line{downBPS: 10e6, upBPS: 1e6, clock: clock}
	speed := openingHoursJob("internet", l)
	speed.Plan, speed.Interval, speed.FirstRun = nil, 6*time.Hour, 30*time.Second
	budget := newBudget(t, BudgetConfig{MonthlyBytes: 10e9, Now: clock.Now})
	seedRates(budget, "internet", Rates{10e6, 1e6})
	ms := simulate(t, clock, []Job{lineQuality, failing, speed}, Options{Budget: budget}, from.Add(time.Hour-time.Nanosecond))
	if len(lineStarts) != 60 || len(failStarts) != 12 {
		t.Fatalf("%d line-quality runs, %d dns runs in an hour; want 60 and 12", len(lineStarts), len(failStarts))
	}
	for i, s := range lineStarts {
		if want := from.Add(time.Duration(i) * time.Minute); !s.Equal(want) {
			t.Fatalf("line-quality run %d at %s, want %s", i, s, want)
		}
	}
	for i, s := range failStarts {
		if want := from.Add(10*time.Second + time.Duration(i)*5*time.Minute); !s.Equal(want) {
			t.Fatalf("dns run %d at %s, want %s", i, s, want)
		}
	}
	kinds := map[string]int{}
	for _, m := range ms {
		kinds[m.Kind]++
		if m.Kind == wire.KindLineQuality && (m.LineQuality == nil || m.DurationSeconds != 60) {
			t.Fatalf("line-quality measurement %+v", m)
		}
	}
	// the speed test at 00:00:30: 10/1 Mbit/s, 12 s loaded each way
	if kinds[wire.KindLineQuality] != 59 || kinds[wire.KindDNS] != 12 {
		t.Fatalf("measurements %v; want 59 line-quality summaries (the 60th cut short), 12 dns", kinds)
	}
	if runs := l.taken(); kinds[wire.KindSpeedtest] != 1 || len(runs) != 1 || budget.Status().UsedBytes != runs[0].bytes || runs[0].bytes != 16.5e6 {
		t.Fatalf("speed tests: %v, %+v, status %+v", kinds, runs, budget.Status())
	}
}
