package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Number is a decimal number as written in a file, like "10" or "1.5"; ""
// when the file leaves it out. (The decoder shared with the agent has no
// floating-point fields; Validate checks that a Number parses.)
type Number string

// Value returns the number, and false when it is unset or not a finite
// number (Validate refuses the latter).
func (n Number) Value() (float64, bool) {
	if n == "" {
		return 0, false
	}
	v, err := parseNumber(string(n))
	return v, err == nil
}

// Or returns the number, or def when it is unset.
func (n Number) Or(def float64) float64 {
	if v, ok := n.Value(); ok {
		return v
	}
	return def
}

func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("number too large")
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, errors.New("want a number, like 10 or 1.5")
	}
	return v, nil
}

// decimal checks that n, if set, is a number from lo to hi, and reports
// whether it is set and valid.
func (c *checker) decimal(field string, n Number, lo, hi float64) bool {
	if n == "" {
		return false
	}
	v, err := parseNumber(string(n))
	switch {
	case err != nil:
		c.add(field, string(n), "%v", err)
	case v < lo:
		c.add(field, verbatim(n), "must be at least %g", lo)
	case v > hi:
		c.add(field, verbatim(n), "must be at most %g", hi)
	default:
		return true
	}
	return false
}

// Thresholds are the profiles a site's speed tests are judged against (see
// package gaps), with the defaults of docs REFERENCE.md.
type Thresholds struct {
	// BelowRatio: a site is "below" a profile over a period when the share
	// of its speed tests (during opening hours) that met the profile is
	// less than this (hubmon_gap_below_profile, the report's below_*
	// columns). Default 0.9; 0 to 1.
	BelowRatio Number `yaml:"below_ratio"`
	// Profiles are the thresholds, in the order the report lists them. A
	// list in the file replaces the whole default list: uso (download 10
	// and upload 1 Mbit/s), superfast (download 30), video_call (download
	// and upload 1.5, idle round trip 150 ms, added latency under load 60
	// ms, loss 1 %, jitter 30 ms), per_seat (download 2.5 Mbit/s per public
	// seat). At most 16, with distinct names.
	Profiles []Profile `yaml:"profiles"`
}

// Profile is a named threshold a speed test meets when every criterion it
// sets holds. Criteria left out do not apply; at least one must be set.
// A criterion on a figure the test did not measure (latency under load
// from an older agent, loss without a line-quality summary at the time) is
// not applied to that test; a missing upload figure fails upload criteria.
type Profile struct {
	// Name is the profile's label value: lower-case letters, digits and
	// '_', starting with a letter, at most 32. Required.
	Name string `yaml:"name"`
	// DownloadMbps is the least download rate, in Mbit/s. 0 to 100000.
	DownloadMbps Number `yaml:"download_mbps"`
	// UploadMbps is the least upload rate, in Mbit/s. 0 to 100000.
	UploadMbps Number `yaml:"upload_mbps"`
	// DownloadMbpsPerSeat is the least download rate per public seat of
	// the site (sites file public_seats), in Mbit/s: the profile does not
	// apply to a site whose public_seats is not known or 0. 0 to 10000.
	DownloadMbpsPerSeat Number `yaml:"download_mbps_per_seat"`
	// UploadMbpsPerSeat is the same for upload. 0 to 10000.
	UploadMbpsPerSeat Number `yaml:"upload_mbps_per_seat"`
	// MaxIdleRTTMs is the most idle round-trip time (the speed test's
	// latency), in milliseconds. 0 to 10000.
	MaxIdleRTTMs Number `yaml:"max_idle_rtt_ms"`
	// MaxAddedLatencyMs is the most latency added under load (the larger
	// of the test's added latency under download and under upload), in
	// milliseconds. 0 to 10000.
	MaxAddedLatencyMs Number `yaml:"max_added_latency_ms"`
	// MaxLossPercent is the most packet loss of the line-quality summary
	// covering the test's start (the best stream when several), in percent.
	// 0 to 100.
	MaxLossPercent Number `yaml:"max_loss_percent"`
	// MaxJitterMs is the most jitter of that summary, in milliseconds. 0 to
	// 10000.
	MaxJitterMs Number `yaml:"max_jitter_ms"`
}

// Rule is a Profile with its numbers parsed, in the units of the history
// (bits per second, seconds, ratios). A zero criterion is not applied.
type Rule struct {
	Name                       string
	MinDownloadBitsPerSecond   float64
	MinUploadBitsPerSecond     float64
	MinDownloadBitsPerSeat     float64
	MinUploadBitsPerSeat       float64
	MaxIdleRTTSeconds          float64
	MaxAddedLatencySeconds     float64
	MaxLossRatio               float64
	MaxJitterSeconds           float64
	HasMaxIdleRTT, HasMaxAdded bool
	HasMaxLoss, HasMaxJitter   bool
}

// PerSeat reports whether the rule depends on the site's public seats.
func (r *Rule) PerSeat() bool { return r.MinDownloadBitsPerSeat > 0 || r.MinUploadBitsPerSeat > 0 }

// Rules returns the profiles parsed, in order.
func (t *Thresholds) Rules() []Rule {
	out := make([]Rule, 0, len(t.Profiles))
	for _, p := range t.Profiles {
		r := Rule{Name: p.Name,
			MinDownloadBitsPerSecond: p.DownloadMbps.Or(0) * 1e6,
			MinUploadBitsPerSecond:   p.UploadMbps.Or(0) * 1e6,
			MinDownloadBitsPerSeat:   p.DownloadMbpsPerSeat.Or(0) * 1e6,
			MinUploadBitsPerSeat:     p.UploadMbpsPerSeat.Or(0) * 1e6,
		}
		r.MaxIdleRTTSeconds, r.HasMaxIdleRTT = scaled(p.MaxIdleRTTMs, 1e-3)
		r.MaxAddedLatencySeconds, r.HasMaxAdded = scaled(p.MaxAddedLatencyMs, 1e-3)
		r.MaxLossRatio, r.HasMaxLoss = scaled(p.MaxLossPercent, 1e-2)
		r.MaxJitterSeconds, r.HasMaxJitter = scaled(p.MaxJitterMs, 1e-3)
		out = append(out, r)
	}
	return out
}

func scaled(n Number, f float64) (float64, bool) {
	v, ok := n.Value()
	return v * f, ok
}

// BelowRatioValue returns below_ratio.
func (t *Thresholds) BelowRatioValue() float64 { return t.BelowRatio.Or(0.9) }

// DefaultProfiles are the threshold profiles of REFERENCE.md: the USO
// (Universal Service Order 2018), Ofcom's superfast, video-call ready (NHS
// Near Me and Microsoft Teams guidance, bufferbloat grade B) and Ofcom's
// 2.5 Mbit/s per concurrent user.
func DefaultProfiles() []Profile {
	return []Profile{
		{Name: "uso", DownloadMbps: "10", UploadMbps: "1"},
		{Name: "superfast", DownloadMbps: "30"},
		{Name: "video_call", DownloadMbps: "1.5", UploadMbps: "1.5", MaxIdleRTTMs: "150", MaxAddedLatencyMs: "60",
			MaxLossPercent: "1", MaxJitterMs: "30"},
		{Name: "per_seat", DownloadMbpsPerSeat: "2.5"},
	}
}

// MaxProfiles bounds the threshold profiles (each multiplies the gap
// series of every site).
const MaxProfiles = 16

var profileNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

func (t *Thresholds) check(k *checker) {
	k.decimal("thresholds.below_ratio", t.BelowRatio, 0, 1)
	if len(t.Profiles) == 0 {
		k.addNoValue("thresholds.profiles", "at least one profile is required (leave the key out for the defaults)")
	}
	if len(t.Profiles) > MaxProfiles {
		k.add("thresholds.profiles", len(t.Profiles), "at most %d profiles", MaxProfiles)
	}
	seen := map[string]int{}
	for i, p := range t.Profiles {
		path := fmt.Sprintf("thresholds.profiles[%d]", i)
		switch {
		case p.Name == "":
			k.addNoValue(path+".name", "required")
		case !profileNameRE.MatchString(p.Name):
			k.add(path+".name", p.Name, "must be lower-case letters, digits and '_', starting with a letter, at most 32")
		default:
			if j, ok := seen[p.Name]; ok {
				k.add(path+".name", p.Name, "already the name of profiles[%d]", j)
			} else {
				seen[p.Name] = i
			}
		}
		set := false
		for _, c := range []struct {
			name   string
			n      Number
			lo, hi float64
		}{
			{"download_mbps", p.DownloadMbps, 0, 100000}, {"upload_mbps", p.UploadMbps, 0, 100000},
			{"download_mbps_per_seat", p.DownloadMbpsPerSeat, 0, 10000}, {"upload_mbps_per_seat", p.UploadMbpsPerSeat, 0, 10000},
			{"max_idle_rtt_ms", p.MaxIdleRTTMs, 0, 10000}, {"max_added_latency_ms", p.MaxAddedLatencyMs, 0, 10000},
			{"max_loss_percent", p.MaxLossPercent, 0, 100}, {"max_jitter_ms", p.MaxJitterMs, 0, 10000},
		} {
			set = k.decimal(path+"."+c.name, c.n, c.lo, c.hi) || set || c.n != ""
		}
		if !set {
			k.addNoValue(path, "sets no criterion: give at least one of download_mbps, upload_mbps, download_mbps_per_seat, upload_mbps_per_seat, max_idle_rtt_ms, max_added_latency_ms, max_loss_percent, max_jitter_ms")
		}
	}
}

// Gaps configures the computation of the gap figures (package gaps).
type Gaps struct {
	// Interval is how often the figures are recomputed from the history
	// (new rows only: the cost does not grow with the history). Default
	// 5m; 10s to 1h.
	Interval time.Duration `yaml:"interval"`
	// Presence is how long one successful measurement of any kind other
	// than line quality shows a site online, for the time no line-quality
	// summary covers (agents without a line-quality probe). Default 15m;
	// 1m to 6h.
	Presence time.Duration `yaml:"presence"`
}

func (g *Gaps) check(k *checker) {
	k.duration("gaps.interval", g.Interval, 10*time.Second, time.Hour)
	k.duration("gaps.presence", g.Presence, time.Minute, 6*time.Hour)
}
