package schedule

import (
	"cmp"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Span is a part of a day in wall-clock time: From and To are the times since
// midnight, 0 <= From < To <= 24h.
type Span struct {
	From, To time.Duration
}

// Week holds the spans of each weekday (indexed by time.Weekday: Sunday is
// 0) in which a planned job may run. They may overlap: their union is used.
type Week [7][]Span

// Plan runs a heavy job TestsPerDay times a day at random times inside the
// day's spans, the way UNICEF Giga schedules school speed tests: the open
// time of the day (the union of its spans, measured in real time, so a
// daylight-saving day is 23 or 25 hours long) is cut into TestsPerDay equal
// slots, and the job runs once at a random instant inside each slot. A day
// with no span has no run.
//
// The instants of a day depend only on the seed, the job's name and the date:
// an agent that restarts finds the same plan (and does not test twice in a
// slot), while agents with different seeds test at different times.
type Plan struct {
	TestsPerDay int
	Week        Week
}

// planner computes a job's planned instants in a location. It is safe for
// concurrent use.
type planner struct {
	plan *Plan
	loc  *time.Location
	seed uint64
	// the last day computed, cached: the scheduler asks for it repeatedly
	mu        sync.Mutex
	cacheDay  int64
	cacheRuns []time.Time
	cacheOK   bool
}

func newPlanner(p *Plan, loc *time.Location, seed uint64, name string) *planner {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &planner{plan: p, loc: loc, seed: seed ^ h.Sum64()}
}

// civilDay numbers the calendar day of y-m-d: days since 1970-01-01.
func civilDay(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// day returns the planned instants of the calendar day y-m-d (in the
// planner's location), in order.
func (p *planner) day(y int, m time.Month, d int) []time.Time {
	n := civilDay(y, m, d)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cacheOK && p.cacheDay == n {
		return p.cacheRuns
	}
	runs := dayPlan(p.plan, p.loc, p.seed, y, m, d)
	p.cacheDay, p.cacheRuns, p.cacheOK = n, runs, true
	return runs
}

// interval is a stretch of real time.
type interval struct{ from, to time.Time }

// dayPlan computes the planned instants of the calendar day y-m-d in loc.
func dayPlan(p *Plan, loc *time.Location, seed uint64, y int, m time.Month, d int) []time.Time {
	if p.TestsPerDay < 1 {
		return nil
	}
	wd := time.Date(y, m, d, 12, 0, 0, 0, loc).Weekday()
	var open []interval
	var total time.Duration
	for _, s := range union(p.Week[wd]) {
		// time.Date resolves wall-clock times in loc, DST included (24:00
		// is the next midnight); a time in a spring-forward gap moves out
		// of it, so clamp to keep the intervals in order.
		from, to := wallClock(y, m, d, s.From, loc), wallClock(y, m, d, s.To, loc)
		if len(open) > 0 && from.Before(open[len(open)-1].to) {
			from = open[len(open)-1].to
		}
		if !to.After(from) {
			continue
		}
		open = append(open, interval{from, to})
		total += to.Sub(from)
	}
	if total <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, uint64(civilDay(y, m, d))))
	n := time.Duration(p.TestsPerDay)
	runs := make([]time.Time, 0, p.TestsPerDay)
	for i := range n {
		// slot i is [i*total/n, (i+1)*total/n) of the open time
		start, end := i*total/n, (i+1)*total/n
		off := start
		if end > start {
			off += time.Duration(rng.Int64N(int64(end - start)))
		}
		runs = append(runs, locate(open, off))
	}
	return runs
}

// wallClock returns the instant of the wall-clock time off after midnight
// of y-m-d in loc.
func wallClock(y int, m time.Month, d int, off time.Duration, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, int(off), loc)
}

// locate returns the instant off into the open time of the intervals.
func locate(open []interval, off time.Duration) time.Time {
	for _, iv := range open {
		l := iv.to.Sub(iv.from)
		if off < l {
			return iv.from.Add(off)
		}
		off -= l
	}
	return open[len(open)-1].to.Add(-1) // not reached: off < total
}

// union returns the union of spans, sorted, merging those that overlap or
// touch, and leaving out empty or invalid ones.
func union(spans []Span) []Span {
	var s []Span
	for _, sp := range spans {
		sp.From, sp.To = max(sp.From, 0), min(sp.To, 24*time.Hour)
		if sp.To > sp.From {
			s = append(s, sp)
		}
	}
	slices.SortFunc(s, compareSpans)
	var out []Span
	for _, sp := range s {
		if len(out) > 0 && sp.From <= out[len(out)-1].To {
			out[len(out)-1].To = max(out[len(out)-1].To, sp.To)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// compareSpans orders spans by their start, then their end. It compares
// rather than subtracts: a difference of Durations does not fit the 32-bit
// int of armhf.
func compareSpans(a, b Span) int {
	return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
}

// next returns the first planned instant after t, looking up to 8 days
// ahead; the zero time if there is none (a week with no span).
func (p *planner) next(t time.Time) time.Time {
	lt := t.In(p.loc)
	y, m, d := lt.Date()
	for i := range 9 {
		for _, r := range p.day(y, m, d+i) { // time.Date normalises d+i
			if r.After(t) {
				return r
			}
		}
	}
	return time.Time{}
}

// count returns the number of planned instants in [from, to).
func (p *planner) count(from, to time.Time) int {
	n := 0
	lt := from.In(p.loc)
	y, m, d := lt.Date()
	for i := 0; ; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, p.loc)
		if !day.Before(to) {
			return n
		}
		dy, dm, dd := day.Date()
		for _, r := range p.day(dy, dm, dd) {
			if !r.Before(from) && r.Before(to) {
				n++
			}
		}
	}
}
