package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpeningHours are a hub's opening hours, in the site's time zone: per
// weekday, a list of "HH:MM-HH:MM" ranges ("09:00-12:30", "13:30-17:00"), each
// ending after it starts ("24:00" is the end of the day), not overlapping. A
// day not listed, or with an empty list, is closed.
type OpeningHours struct {
	Monday    []string `yaml:"monday"`
	Tuesday   []string `yaml:"tuesday"`
	Wednesday []string `yaml:"wednesday"`
	Thursday  []string `yaml:"thursday"`
	Friday    []string `yaml:"friday"`
	Saturday  []string `yaml:"saturday"`
	Sunday    []string `yaml:"sunday"`
}

// day returns the ranges of weekday d as written, and the day's field name.
func (o *OpeningHours) day(d time.Weekday) ([]string, string) {
	switch d {
	case time.Monday:
		return o.Monday, "monday"
	case time.Tuesday:
		return o.Tuesday, "tuesday"
	case time.Wednesday:
		return o.Wednesday, "wednesday"
	case time.Thursday:
		return o.Thursday, "thursday"
	case time.Friday:
		return o.Friday, "friday"
	case time.Saturday:
		return o.Saturday, "saturday"
	default:
		return o.Sunday, "sunday"
	}
}

// TimeRange is a part of a day in wall-clock time: From and To are the times
// since midnight, From < To <= 24h.
type TimeRange struct {
	From, To time.Duration
}

// Ranges returns the opening hours of weekday d, in order. Ranges that are
// not valid are left out (Load refuses them).
func (o *OpeningHours) Ranges(d time.Weekday) []TimeRange {
	if o == nil {
		return nil
	}
	list, _ := o.day(d)
	var out []TimeRange
	for _, s := range list {
		if r, err := parseTimeRange(s); err == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareTimeRanges)
	return out
}

// compareTimeRanges orders ranges by their start, then their end. It
// compares rather than subtracts: a difference of Durations does not fit the
// 32-bit int of armhf.
func compareTimeRanges(a, b TimeRange) int {
	return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
}

// The schedule windows a speedtest probe can name.
const (
	// WindowOpeningHours is the site's OpeningHours.
	WindowOpeningHours = "opening_hours"
	// WindowBusinessPeak is 12:00-14:00 every day (Ofcom's business peak).
	WindowBusinessPeak = "business_peak"
	// WindowConsumerPeak is 20:00-22:00 every day (Ofcom's consumer peak).
	WindowConsumerPeak = "consumer_peak"
	// WindowAlways is the whole day, every day.
	WindowAlways = "always"
)

var windowNames = []string{WindowOpeningHours, WindowBusinessPeak, WindowConsumerPeak, WindowAlways}

// Schedule runs a heavy probe tests_per_day times a day at random times
// inside the union of its windows (see package schedule).
type Schedule struct {
	// TestsPerDay is how many tests to run on a day that has a window.
	// Default 4; 1 to 48.
	TestsPerDay int `yaml:"tests_per_day"`
	// Windows are the parts of the day to test in: opening_hours (needs
	// the config's opening_hours), business_peak (12:00-14:00),
	// consumer_peak (20:00-22:00), always (the whole day). At least one.
	// Default [opening_hours] when the config has opening_hours.
	Windows []string `yaml:"windows"`
}

const defaultTestsPerDay = 4

func (s *Schedule) applyDefaults() { *s = Schedule{TestsPerDay: defaultTestsPerDay} }

// WindowRanges returns, for weekday d, the ranges of the named windows, in
// order, overlapping where the windows do (the scheduler takes their union).
// Unknown names are left out (Load refuses them).
func (c *Config) WindowRanges(names []string, d time.Weekday) []TimeRange {
	var out []TimeRange
	for _, n := range names {
		switch n {
		case WindowOpeningHours:
			out = append(out, c.OpeningHours.Ranges(d)...)
		case WindowBusinessPeak:
			out = append(out, TimeRange{12 * time.Hour, 14 * time.Hour})
		case WindowConsumerPeak:
			out = append(out, TimeRange{20 * time.Hour, 22 * time.Hour})
		case WindowAlways:
			out = append(out, TimeRange{0, 24 * time.Hour})
		}
	}
	slices.SortFunc(out, compareTimeRanges)
	return out
}

// DataBudget bounds the data that speed tests use per calendar month in the
// site's time zone.
type DataBudget struct {
	// Monthly is the month's budget: a number and a unit, B, kB (or KB),
	// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024),
	// like "20GB"; at most 1000TB. Default 0: no budget. Light probes are
	// not counted.
	Monthly string `yaml:"monthly"`
}

// Bytes returns the monthly budget in bytes; 0 for none (or one that is not
// valid: Load refuses it).
func (b DataBudget) Bytes() int64 {
	n, err := parseSize(b.Monthly)
	if err != nil {
		return 0
	}
	return n
}

// maxBudget is the largest monthly budget, 1000 TB.
const maxBudget = 1e15

var sizeUnits = map[string]float64{
	"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

var errSizeUnit = errors.New(`not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`)

// parseSize parses a size such as "20GB", "1.5 TB" or "500MiB" into bytes
// (rounded down). "" and "0" are 0.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.' || r == '_') })
	if i < 0 {
		return 0, errors.New(`not a size: it needs a unit, like "20GB" or "500MB"`)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	v, err := strconv.ParseFloat(strings.ReplaceAll(num, "_", ""), 64)
	mult, ok := sizeUnits[unit]
	if err != nil || !ok || num == "" {
		return 0, errSizeUnit
	}
	b := math.Floor(v * mult)
	if b > maxBudget {
		return 0, fmt.Errorf("must be at most 1000TB")
	}
	return int64(b), nil
}

// loadLocation loads an IANA time zone; "" and "Local" are refused (the
// agent's system zone is not configuration).
func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("not an IANA zone name")
	}
	return time.LoadLocation(name)
}

// parseTimeRange parses "HH:MM-HH:MM" (hours may have one digit; spaces
// around the '-' are allowed). The end may be 24:00.
func parseTimeRange(s string) (TimeRange, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return TimeRange{}, errRangeSyntax
	}
	f, okF := parseClock(strings.TrimSpace(from))
	t, okT := parseClock(strings.TrimSpace(to))
	switch {
	case !okF || !okT || f == 24*time.Hour:
		return TimeRange{}, errRangeSyntax
	case t <= f:
		return TimeRange{}, errRangeOrder
	}
	return TimeRange{f, t}, nil
}

var (
	errRangeSyntax = errors.New(`not a time range: write "HH:MM-HH:MM", like "09:00-17:00"`)
	errRangeOrder  = errors.New("must end after it starts; a range past midnight is two: one ending at 24:00, one starting at 00:00 the next day")
)

// parseClock parses "HH:MM" (or "H:MM"), 00:00 to 24:00.
func parseClock(s string) (time.Duration, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return 0, false
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, true
}

// checkSite checks the time zone, the opening hours and the data budget.
func (c *Config) checkSite(k *checker) {
	if c.Timezone == "" {
		k.addNoValue("timezone", `required: an IANA zone name, like "Europe/London"`)
	} else if _, err := loadLocation(c.Timezone); err != nil {
		k.add("timezone", c.Timezone, `unknown time zone: use an IANA zone name, like "Europe/London"`)
	}
	if o := c.OpeningHours; o != nil {
		open := false
		for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
			list, name := o.day(d)
			open = open || len(list) > 0
			var valid []item
			for i, s := range list {
				field := fmt.Sprintf("opening_hours.%s[%d]", name, i)
				r, err := parseTimeRange(s)
				if err != nil {
					k.add(field, s, "%v", err)
					continue
				}
				valid = append(valid, item{i, r})
			}
			slices.SortStableFunc(valid, func(a, b item) int { return cmp.Compare(a.r.From, b.r.From) })
			for j := 1; j < len(valid); j++ {
				// prev: the range seen so far that ends last
				if b := valid[j]; b.r.From < prev(valid[:j]).r.To {
					a := prev(valid[:j])
					first, second := min(a.i, b.i), max(a.i, b.i)
					k.add(fmt.Sprintf("opening_hours.%s[%d]", name, second), list[second], "overlaps %s[%d], %q", name, first, list[first])
				}
			}
		}
		if !open {
			k.addNoValue("opening_hours", "no day has opening hours: list some, or leave opening_hours out if they are not known")
		}
	}
	if _, err := parseSize(c.DataBudget.Monthly); err != nil {
		k.add("data_budget.monthly", c.DataBudget.Monthly, "%v", err)
	}
}

// item is an opening-hours range and its index in its day's list.
type item struct {
	i int
	r TimeRange
}

// prev returns the item of items that ends last (the first of those).
func prev(items []item) item {
	last := items[0]
	for _, it := range items[1:] {
		if it.r.To > last.r.To {
			last = it
		}
	}
	return last
}

// check checks a probe's schedule; path is the probe's.
func (s *Schedule) check(k *checker, path string, c *Config) {
	k.number(path+".schedule.tests_per_day", int64(s.TestsPerDay), 1, 48)
	if len(s.Windows) == 0 {
		k.addNoValue(path+".schedule.windows", "at least one window is required: %s", strings.Join(windowNames, ", "))
	}
	seen := make(map[string]int)
	for i, w := range s.Windows {
		field := fmt.Sprintf("%s.schedule.windows[%d]", path, i)
		switch {
		case !slices.Contains(windowNames, w):
			k.add(field, w, "unknown window; known windows: %s", strings.Join(windowNames, ", "))
			continue
		case w == WindowOpeningHours && c.OpeningHours == nil:
			k.add(field, w, "needs opening_hours (at the top of the file), which are not set")
		}
		if j, ok := seen[w]; ok {
			k.add(field, w, "already listed as windows[%d]", j)
		} else {
			seen[w] = i
		}
	}
}
