package gaps

import (
	"math"
	"slices"
	"time"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/sites"
)

// Window is a part of the day a site's speed tests are judged in.
type Window int

// The windows, in the site's time zone.
const (
	// OpeningHours: the site's opening hours (only when they are known).
	OpeningHours Window = iota
	// BusinessPeak: 12:00-14:00 every day (Ofcom's business peak).
	BusinessPeak
	// ConsumerPeak: 20:00-22:00 every day (Ofcom's consumer peak).
	ConsumerPeak
	// AllHours: the whole day.
	AllHours
	numWindows
)

var windowNames = [numWindows]string{"opening_hours", "business_peak", "consumer_peak", "all"}

func (w Window) String() string { return windowNames[w] }

// Stats are the speed tests of one window.
type Stats struct {
	// Tests counts the speed tests that measured a download rate.
	Tests int
	// Rates in bits per second: NaN when no test measured them.
	DownloadMedian, DownloadP10, UploadMedian, UploadP10 float64
	// Met counts, per rule, the tests that met it; Applies is false for a
	// rule that cannot judge the site (per seat, with seats not known).
	Met     []int
	Applies []bool
}

// Compliance returns the share of the tests that met rule i, and false
// when there is none (no tests, or the rule does not apply).
func (s *Stats) Compliance(i int) (float64, bool) {
	if s == nil || s.Tests == 0 || !s.Applies[i] {
		return 0, false
	}
	return float64(s.Met[i]) / float64(s.Tests), true
}

// Figures are one site's gap figures over one period.
type Figures struct {
	Site     config.Site
	From, To time.Time
	// Windows are the speed-test figures per window; OpeningHours is nil
	// when the site's opening hours are not known.
	Windows [numWindows]*Stats
	// Primary is the window the verdicts use: OpeningHours, or AllHours
	// when the opening hours are not known.
	Primary Window
	// OpenSeconds is the time the site was open in the period (but for
	// its last Settle, like Availability and OutageSeconds).
	OpenSeconds float64
	// Availability is the share of OpenSeconds the site was online; NaN
	// when it was never open in the period (or its hours are not known).
	Availability float64
	// OutageSeconds is the time within opening hours the line-quality
	// probes saw the line down (and no stream saw it up); NaN without
	// line-quality data in the period or opening hours.
	OutageSeconds float64
	// ContractDownload and ContractUpload are the Primary window's median
	// rates over the contracted ones; NaN without a contract or tests.
	ContractDownload, ContractUpload float64
}

// Below returns whether the site is below rule i (its Primary compliance
// is less than ratio), and false when that cannot be said.
func (f *Figures) Below(i int, ratio float64) (below, ok bool) {
	c, ok := f.Windows[f.Primary].Compliance(i)
	if !ok {
		return false, false
	}
	return c < ratio, true
}

// compute works out the figures of site over [from, to) from its history
// (nil: none).
func compute(site *config.Site, h *siteHistory, rules []config.Rule, from, to time.Time) *Figures {
	f := &Figures{Site: *site, From: from, To: to, Primary: AllHours,
		Availability: math.NaN(), OutageSeconds: math.NaN(), ContractDownload: math.NaN(), ContractUpload: math.NaN()}
	if h == nil {
		h = newSiteHistory()
	}
	a, b := from.UnixNano(), to.UnixNano()

	// speed tests
	var downs, ups [numWindows][]float64
	for w := range numWindows {
		if w == OpeningHours && !site.HasHours {
			continue
		}
		f.Windows[w] = &Stats{Met: make([]int, len(rules)), Applies: make([]bool, len(rules))}
		for i := range rules {
			f.Windows[w].Applies[i] = !rules[i].PerSeat() || site.PublicSeats > 0
		}
	}
	if site.HasHours {
		f.Primary = OpeningHours
	}
	loc := site.Location
	if loc == nil {
		loc = time.UTC
	}
	lo, _ := slices.BinarySearchFunc(h.tests, a, func(r record, at int64) int { return cmpInt(r.at, at) })
	for k := lo; k < len(h.tests) && h.tests[k].at < b; k++ {
		t := h.tests[k].test()
		lt := time.Unix(0, t.at).In(loc)
		hh, mm, ss := lt.Clock()
		tod := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second + time.Duration(lt.Nanosecond())
		in := [numWindows]bool{
			OpeningHours: site.HasHours && site.Hours.Open(lt.Weekday(), tod),
			BusinessPeak: tod >= 12*time.Hour && tod < 14*time.Hour,
			ConsumerPeak: tod >= 20*time.Hour && tod < 22*time.Hour,
			AllHours:     true,
		}
		for w, ok := range in {
			s := f.Windows[w]
			if !ok || s == nil {
				continue
			}
			s.Tests++
			downs[w] = append(downs[w], t.down)
			if !math.IsNaN(t.up) {
				ups[w] = append(ups[w], t.up)
			}
			for i := range rules {
				if s.Applies[i] && meets(&rules[i], &t, site.PublicSeats) {
					s.Met[i]++
				}
			}
		}
	}
	for w, s := range f.Windows {
		if s == nil {
			continue
		}
		s.DownloadMedian, s.DownloadP10 = quantiles(downs[w])
		s.UploadMedian, s.UploadP10 = quantiles(ups[w])
	}
	if p := f.Windows[f.Primary]; p != nil {
		if site.ContractDownloadMbps > 0 && !math.IsNaN(p.DownloadMedian) {
			f.ContractDownload = p.DownloadMedian / (site.ContractDownloadMbps * 1e6)
		}
		if site.ContractUploadMbps > 0 && !math.IsNaN(p.UploadMedian) {
			f.ContractUpload = p.UploadMedian / (site.ContractUploadMbps * 1e6)
		}
	}

	// availability and outages, within opening hours, but for the last
	// minutes (their line-quality data may still be on its way)
	var open spans
	sites.OpenIntervals(site, from, to.Add(-Settle), func(x, y time.Time) { open.add(x.UnixNano(), y.UnixNano(), 0) })
	f.OpenSeconds = float64(open.length()) / 1e9
	if len(open) == 0 {
		return f
	}
	var covered, lineUp, down spans
	for i := range h.streams {
		st := &h.streams[i]
		c := st.covered.clip(a, b)
		covered = union(covered, c)
		lineUp = union(lineUp, subtract(subtract(c, st.dead), st.outage))
		down = union(down, st.outage.clip(a, b))
	}
	online := union(lineUp, subtract(h.presence.clip(a, b), covered))
	f.Availability = float64(intersect(online, open).length()) / float64(open.length())
	if len(covered) > 0 || len(down) > 0 {
		f.OutageSeconds = float64(intersect(subtract(down, lineUp), open).length()) / 1e9
	}
	return f
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// meets reports whether test t meets rule r at a site with seats public
// seats. A criterion on a figure the test lacks is not applied, except
// upload: no upload figure fails an upload criterion. Figures and limits
// are compared as float32, the precision the history keeps (see record):
// a figure read as exactly a limit (a loss of 0.05 against 5%) meets it,
// and one at most half a float32 step over a limit (6 parts in 100
// million) does too.
func meets(r *config.Rule, t *test, seats int) bool {
	minDown := max(r.MinDownloadBitsPerSecond, r.MinDownloadBitsPerSeat*float64(max(seats, 0)))
	minUp := max(r.MinUploadBitsPerSecond, r.MinUploadBitsPerSeat*float64(max(seats, 0)))
	if minDown > 0 && !(float32(t.down) >= float32(minDown)) {
		return false
	}
	if minUp > 0 && !(float32(t.up) >= float32(minUp)) { // NaN fails
		return false
	}
	for _, c := range []struct {
		has      bool
		v, limit float64
	}{
		{r.HasMaxIdleRTT, t.rtt, r.MaxIdleRTTSeconds},
		{r.HasMaxAdded, t.added, r.MaxAddedLatencySeconds},
		{r.HasMaxLoss, t.loss, r.MaxLossRatio},
		{r.HasMaxJitter, t.jitter, r.MaxJitterSeconds},
	} {
		if c.has && !math.IsNaN(c.v) && float32(c.v) > float32(c.limit) {
			return false
		}
	}
	return true
}

// quantiles returns the median and the 10th percentile of v (which it
// sorts), by linear interpolation between order statistics (R's type 7,
// NumPy's default); NaN for none.
func quantiles(v []float64) (median, p10 float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(v)
	return quantile(v, 0.5), quantile(v, 0.1)
}

func quantile(sorted []float64, q float64) float64 {
	h := float64(len(sorted)-1) * q
	i := int(math.Floor(h))
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-float64(i))*(sorted[i+1]-sorted[i])
}
