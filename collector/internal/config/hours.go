package config

// Opening hours, written as in the agent's config (agent/internal/config,
// which the collector cannot import): per weekday, "HH:MM-HH:MM" ranges.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpeningHours are a hub's opening hours as written in the sites file, in
// the site's time zone: per weekday, a list of "HH:MM-HH:MM" ranges
// ("09:00-12:30", "13:30-17:00"), each ending after it starts ("24:00" is
// the end of the day), not overlapping. A day not listed, or with an empty
// list, is closed.
type OpeningHours struct {
	Monday    []string `yaml:"monday"`
	Tuesday   []string `yaml:"tuesday"`
	Wednesday []string `yaml:"wednesday"`
	Thursday  []string `yaml:"thursday"`
	Friday    []string `yaml:"friday"`
	Saturday  []string `yaml:"saturday"`
	Sunday    []string `yaml:"sunday"`
}

// TimeRange is a part of a day in wall-clock time: From and To are the times
// since midnight, From < To <= 24h.
type TimeRange struct {
	From, To time.Duration
}

// Week holds the opening hours of each weekday (indexed by time.Weekday),
// sorted, not overlapping.
type Week [7][]TimeRange

// Open reports whether wall-clock time of day tod on weekday d is within
// the opening hours.
func (w *Week) Open(d time.Weekday, tod time.Duration) bool {
	for _, r := range w[d] {
		if tod >= r.From && tod < r.To {
			return true
		}
	}
	return false
}

// Empty reports whether no day has opening hours.
func (w *Week) Empty() bool {
	for _, d := range w {
		if len(d) > 0 {
			return false
		}
	}
	return true
}

var weekdays = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

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

// check checks the opening hours at path and returns the valid ranges.
func (o *OpeningHours) check(k *checker, path string) Week {
	var w Week
	open := false
	for _, d := range weekdays {
		list, name := o.day(d)
		open = open || len(list) > 0
		type item struct {
			i int
			r TimeRange
		}
		var valid []item
		for i, s := range list {
			r, err := parseTimeRange(s)
			if err != nil {
				k.add(fmt.Sprintf("%s.%s[%d]", path, name, i), s, "%v", err)
				continue
			}
			valid = append(valid, item{i, r})
		}
		slices.SortStableFunc(valid, func(a, b item) int { return cmp.Or(cmp.Compare(a.r.From, b.r.From), cmp.Compare(a.r.To, b.r.To)) })
		var last item // the range seen so far that ends last
		for j, it := range valid {
			if j > 0 && it.r.From < last.r.To {
				first, second := min(last.i, it.i), max(last.i, it.i)
				k.add(fmt.Sprintf("%s.%s[%d]", path, name, second), list[second], "overlaps %s[%d], %q", name, first, list[first])
				continue
			}
			w[d] = append(w[d], it.r)
			if j == 0 || it.r.To > last.r.To {
				last = it
			}
		}
	}
	if !open {
		k.addNoValue(path, "no day has opening hours: list some, or leave opening_hours out if they are not known")
	}
	return w
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

// zones are time zones loaded once each: a *time.Location holds its zone's
// whole table (about 4.5 kB for Europe/London), and 20,000 hubs share a
// handful of zones.
type zones map[string]*time.Location

func (z zones) load(name string) (*time.Location, error) {
	if loc, ok := z[name]; ok {
		return loc, nil
	}
	loc, err := loadLocation(name)
	if err == nil {
		z[name] = loc
	}
	return loc, err
}

// loadLocation loads an IANA time zone; "" and "Local" are refused (the
// collector's system zone is not a hub's).
func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("not an IANA zone name")
	}
	return time.LoadLocation(name)
}
