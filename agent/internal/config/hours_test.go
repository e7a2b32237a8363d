package config

import (
	"cmp"
	"math"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"20GB", 20e9, ""},
		{"20 GB", 20e9, ""},
		{"1.5TB", 1.5e12, ""},
		{"100kB", 100e3, ""},
		{"100KB", 100e3, ""},
		{"500MB", 500e6, ""},
		{"512B", 512, ""},
		{"1KiB", 1024, ""},
		{"500MiB", 500 << 20, ""},
		{"2GiB", 2 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"1_000GB", 1e12, ""},
		{"1000TB", 1e15, ""},
		{"1001TB", 0, "must be at most 1000TB"},
		{"20", 0, `not a size: it needs a unit, like "20GB" or "500MB"`},
		{"20gb", 0, `not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`},
		{"20Gb", 0, `not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`},
		{"-1GB", 0, `not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`},
		{"GB", 0, `not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`},
		{"1.2.3GB", 0, `not a size: write a number and a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), like "20GB"`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if got != tt.want || msg != tt.err {
				t.Errorf("parseSize(%q) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.err)
			}
		})
	}
}

func TestParseTimeRange(t *testing.T) {
	h := time.Hour
	for _, tt := range []struct {
		in   string
		want TimeRange
		ok   bool
	}{
		{"09:00-17:00", TimeRange{9 * h, 17 * h}, true},
		{"9:00-17:30", TimeRange{9 * h, 17*h + 30*time.Minute}, true},
		{"08:00 - 10:00", TimeRange{8 * h, 10 * h}, true},
		{"00:00-24:00", TimeRange{0, 24 * h}, true},
		{"17:00-09:00", TimeRange{}, false},
		{"09:00-09:00", TimeRange{}, false},
		{"24:00-24:00", TimeRange{}, false},
		{"09:00-24:01", TimeRange{}, false},
		{"09:60-10:00", TimeRange{}, false},
		{"0900-1000", TimeRange{}, false},
		{"09:00", TimeRange{}, false},
		{"9am-5pm", TimeRange{}, false},
		{"-1:00-10:00", TimeRange{}, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeRange(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseTimeRange(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

// TestCompareTimeRanges: ranges are ordered by their start whatever the
// distance between them. A comparator written as int(a.From - b.From) wraps
// where int is 32 bits (armhf): hours apart are more than 2^31 nanoseconds.
func TestCompareTimeRanges(t *testing.T) {
	h := time.Hour
	for _, tt := range []struct {
		a, b time.Duration
		want int
	}{
		{9 * h, 13 * h, -1},
		{13 * h, 9 * h, 1},
		{0, 24 * h, -1},
		{24 * h, 0, 1},
		{12 * h, 12 * h, 0},
		{0, 1<<31 + 1, -1},                 // wraps to a negative int32 difference
		{0, 1 << 32, -1},                   // wraps to 0
		{math.MinInt64, math.MaxInt64, -1}, // wraps even in 64 bits
		{math.MaxInt64, math.MinInt64, 1},
	} {
		if got := compareTimeRanges(TimeRange{From: tt.a}, TimeRange{From: tt.b}); cmp.Compare(got, 0) != tt.want {
			t.Errorf("compareTimeRanges(from %d, from %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestOpeningHoursOrder: a day of two ranges hours apart is valid and kept
// in order, wherever the agent runs.
func TestOpeningHoursOrder(t *testing.T) {
	c := validConfig(t)
	c.OpeningHours = &OpeningHours{Monday: []string{"13:00-17:00", "09:00-12:00"}, Tuesday: []string{"00:00-01:00", "20:00-24:00", "09:00-12:00"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	h := time.Hour
	diff(t, c.OpeningHours.Ranges(time.Monday), []TimeRange{{9 * h, 12 * h}, {13 * h, 17 * h}})
	diff(t, c.WindowRanges([]string{WindowConsumerPeak, WindowOpeningHours}, time.Tuesday),
		[]TimeRange{{0, h}, {9 * h, 12 * h}, {20 * h, 22 * h}, {20 * h, 24 * h}})
}
