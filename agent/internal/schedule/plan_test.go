package schedule

import (
	"math"
	"slices"
	"testing"
	"time"
)

func london(tb testing.TB) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// weekdays returns a week with spans on Monday to Saturday, closed on Sunday.
func weekdays(spans ...Span) Week {
	var w Week
	for d := time.Monday; d <= time.Saturday; d++ {
		w[d] = spans
	}
	return w
}

func everyDay(spans ...Span) Week {
	var w Week
	for d := range w {
		w[d] = spans
	}
	return w
}

func hm(h, m int) time.Duration { return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute }

// TestPlanSlots checks a year of plans: one run in each of the equal slots
// of the open time, inside the windows only, none on closed days.
func TestPlanSlots(t *testing.T) {
	loc := london(t)
	for _, tt := range []struct {
		name  string
		plan  Plan
		slots func(day time.Time) [][2]time.Time // the slots of an open day, in wall clock
	}{
		{
			name: "opening hours Mon-Sat 09:00-17:00, 4 a day",
			plan: Plan{TestsPerDay: 4, Week: weekdays(Span{hm(9, 0), hm(17, 0)})},
			slots: func(day time.Time) [][2]time.Time {
				var s [][2]time.Time
				for i := range 4 {
					s = append(s, [2]time.Time{day.Add(hm(9+2*i, 0)), day.Add(hm(11+2*i, 0))})
				}
				return s
			},
		},
		{
			// 09:00-10:00 and 20:00-22:00: 3 hours, 3 slots of an hour; the
			// overlapping and touching spans merge
			name: "windows apart, overlapping spans",
			plan: Plan{TestsPerDay: 3, Week: weekdays(Span{hm(20, 0), hm(21, 0)}, Span{hm(9, 0), hm(9, 30)}, Span{hm(9, 15), hm(10, 0)}, Span{hm(21, 0), hm(22, 0)})},
			slots: func(day time.Time) [][2]time.Time {
				return [][2]time.Time{
					{day.Add(hm(9, 0)), day.Add(hm(10, 0))},
					{day.Add(hm(20, 0)), day.Add(hm(21, 0))},
					{day.Add(hm(21, 0)), day.Add(hm(22, 0))},
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for day := time.Date(2026, 1, 1, 0, 0, 0, 0, loc); day.Year() == 2026; day = day.AddDate(0, 0, 1) {
				y, m, d := day.Date()
				runs := dayPlan(&tt.plan, loc, 42, y, m, d)
				if day.Weekday() == time.Sunday {
					if len(runs) != 0 {
						t.Fatalf("%s (closed): %v", day.Format(time.DateOnly), runs)
					}
					continue
				}
				slots := tt.slots(day)
				if len(runs) != len(slots) {
					t.Fatalf("%s: %d runs, want %d", day.Format(time.DateOnly), len(runs), len(slots))
				}
				for i, r := range runs {
					// wall-clock slots: this plan has no window across a DST change
					if r.Before(slots[i][0]) || !r.Before(slots[i][1]) {
						t.Fatalf("%s: run %d at %s, outside its slot %s-%s", day.Format(time.DateOnly), i,
							r.In(loc).Format(time.TimeOnly), slots[i][0].Format(time.TimeOnly), slots[i][1].Format(time.TimeOnly))
					}
				}
			}
		})
	}
}

// TestPlanDST checks days of 23 and 25 hours: the slots share the real open
// time, whatever the wall clock says.
func TestPlanDST(t *testing.T) {
	loc := london(t)
	for _, tt := range []struct {
		name     string
		week     Week
		day      time.Time
		from, to time.Time // the open time, real
	}{
		{"spring forward, always", everyDay(Span{0, 24 * time.Hour}), time.Date(2026, 3, 29, 0, 0, 0, 0, loc),
			time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 23, 0, 0, 0, time.UTC)},
		{"fall back, always", everyDay(Span{0, 24 * time.Hour}), time.Date(2026, 10, 25, 0, 0, 0, 0, loc),
			time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)},
		// 01:00-02:00 GMT does not exist: 00:30 GMT to 03:00 BST is 1h30m
		{"spring forward, a window over the gap", everyDay(Span{hm(0, 30), hm(3, 0)}), time.Date(2026, 3, 29, 0, 0, 0, 0, loc),
			time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC)},
		// 01:00-02:00 happens twice: 00:30 BST to 03:00 GMT is 3h30m
		{"fall back, a window over the repeat", everyDay(Span{hm(0, 30), hm(3, 0)}), time.Date(2026, 10, 25, 0, 0, 0, 0, loc),
			time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			y, m, d := tt.day.Date()
			total := tt.to.Sub(tt.from)
			for seed := range uint64(200) {
				runs := dayPlan(&Plan{TestsPerDay: 4, Week: tt.week}, loc, seed, y, m, d)
				if len(runs) != 4 {
					t.Fatalf("%d runs", len(runs))
				}
				for i, r := range runs {
					lo, hi := tt.from.Add(time.Duration(i)*total/4), tt.from.Add(time.Duration(i+1)*total/4)
					if r.Before(lo) || !r.Before(hi) {
						t.Fatalf("seed %d: run %d at %s, outside its slot %s-%s", seed, i, r.UTC(), lo.UTC(), hi.UTC())
					}
				}
			}
		})
	}
}

// TestPlanSeeds: agents (seeds) and jobs test at different times; one
// agent finds the same plan after a restart.
func TestPlanSeeds(t *testing.T) {
	loc := london(t)
	plan := &Plan{TestsPerDay: 4, Week: weekdays(Span{hm(9, 0), hm(17, 0)})}
	a := newPlanner(plan, loc, 1, "internet")
	again := newPlanner(plan, loc, 1, "internet")
	b := newPlanner(plan, loc, 2, "internet")
	other := newPlanner(plan, loc, 1, "collector")
	same, sameJob, n := 0, 0, 0
	for d := 1; d <= 30; d++ {
		ra, rb, ro := a.day(2026, 6, d), b.day(2026, 6, d), other.day(2026, 6, d)
		if !slices.Equal(ra, again.day(2026, 6, d)) {
			t.Fatalf("2026-06-%02d: the same agent planned differently after a restart", d)
		}
		for i := range ra {
			n++
			if ra[i].Equal(rb[i]) {
				same++
			}
			if ra[i].Equal(ro[i]) {
				sameJob++
			}
		}
	}
	if n == 0 || same > 0 || sameJob > 0 {
		t.Fatalf("of %d runs, %d at the same time on two agents, %d for two jobs of one agent", n, same, sameJob)
	}
	// spread: the runs of many agents cover their slot, not one moment
	var mins []int
	for seed := range uint64(100) {
		r := dayPlan(plan, loc, seed, 2026, 6, 1)[0].In(loc)
		mins = append(mins, r.Hour()*60+r.Minute())
	}
	if lo, hi := slices.Min(mins), slices.Max(mins); hi-lo < 90 {
		t.Fatalf("100 agents' first runs span only %d minutes of the 120-minute slot", hi-lo)
	}
}

func TestPlannerNextAndCount(t *testing.T) {
	loc := london(t)
	p := newPlanner(&Plan{TestsPerDay: 2, Week: weekdays(Span{hm(9, 0), hm(17, 0)})}, loc, 7, "internet")
	// Saturday 2026-10-31 after its runs: next is Monday 2 November
	sat := p.day(2026, 10, 31)
	got := p.next(sat[1])
	if want := p.day(2026, 11, 2)[0]; !got.Equal(want) {
		t.Fatalf("next after Saturday's last run = %s, want Monday's first %s", got.In(loc), want.In(loc))
	}
	if got := p.next(sat[0].Add(-time.Nanosecond)); !got.Equal(sat[0]) {
		t.Fatalf("next just before a run = %s, want it", got)
	}
	// October 2026: 27 days open (4 Sundays), 2 runs each
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, loc), time.Date(2026, 11, 1, 0, 0, 0, 0, loc)
	if n := p.count(from, to); n != 54 {
		t.Fatalf("count(October) = %d, want 54", n)
	}
	if n := p.count(sat[1], to); n != 1 {
		t.Fatalf("count from the month's last run = %d, want 1", n)
	}
	// a week with no span: no next run
	if got := newPlanner(&Plan{TestsPerDay: 2}, loc, 7, "x").next(from); !got.IsZero() {
		t.Fatalf("next with no windows = %s", got)
	}
}

// TestUnionOrder: spans hours apart are ordered and merged correctly. A
// comparator written as int(a.From - b.From) wraps where int is 32 bits
// (armhf): hours apart are more than 2^31 nanoseconds.
func TestUnionOrder(t *testing.T) {
	for _, tt := range []struct{ a, b time.Duration }{
		{hm(9, 0), hm(13, 0)}, {0, 24 * time.Hour}, {0, 1<<31 + 1}, {0, 1 << 32},
		{math.MinInt64, math.MaxInt64}, // wraps even in 64 bits
	} {
		if got := compareSpans(Span{From: tt.a}, Span{From: tt.b}); got >= 0 {
			t.Errorf("compareSpans(from %d, from %d) = %d, want < 0", tt.a, tt.b, got)
		}
		if got := compareSpans(Span{From: tt.b}, Span{From: tt.a}); got <= 0 {
			t.Errorf("compareSpans(from %d, from %d) = %d, want > 0", tt.b, tt.a, got)
		}
	}
	got := union([]Span{{hm(13, 0), hm(17, 0)}, {hm(20, 0), hm(22, 0)}, {hm(9, 0), hm(12, 0)}, {hm(16, 0), hm(18, 0)}, {0, hm(1, 0)}})
	want := []Span{{0, hm(1, 0)}, {hm(9, 0), hm(12, 0)}, {hm(13, 0), hm(18, 0)}, {hm(20, 0), hm(22, 0)}}
	if !slices.Equal(got, want) {
		t.Fatalf("union = %v, want %v", got, want)
	}
}
