package gaps

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// bridge joins line-quality summaries that follow one another with a small
// gap (the agent starts the next as the last ends, a few milliseconds
// later), so a day of summaries is one span, not 1440.
const bridge = int64(5 * time.Second)

// test is one speed test with the figures the profiles judge. Figures not
// measured are NaN.
type test struct {
	rowid int64
	at    int64 // measured_at, Unix nanoseconds
	// rates in bits per second, times in seconds
	down, up, rtt, added float64
	// loss (a ratio) and jitter of the line-quality summary covering the
	// start of the test: the best stream when several do
	loss, jitter float64
}

// stream is the history of one line-quality stream (a probe and a method)
// of a site.
type stream struct {
	covered spans // the times its summaries cover
	dead    spans // summaries in which every idle probe was lost
	outage  spans // disconnections it reported, ended or going on
}

// siteHistory is what the figures of one site are computed from: its
// speed tests and the times its line was up or down, for the retention.
type siteHistory struct {
	tests    []test // by time, then as added
	streams  map[string]*stream
	presence spans // successful measurements other than line quality
}

func newSiteHistory() *siteHistory {
	return &siteHistory{streams: map[string]*stream{}}
}

// addTest adds a speed test, once, and reports whether it was new. A test
// already added is found among those of its time: no set of row ids (a map
// of a month's tests took 5 kB a site, more than the tests themselves).
func (h *siteHistory) addTest(p *store.Point) bool {
	if math.IsNaN(p.DownloadBitsPerSecond) {
		return false
	}
	at := p.MeasuredAt.UnixNano()
	i := sort.Search(len(h.tests), func(i int) bool { return h.tests[i].at > at })
	for j := i - 1; j >= 0 && h.tests[j].at == at; j-- {
		if h.tests[j].rowid == p.RowID {
			return false
		}
	}
	added := math.NaN()
	for _, v := range []float64{p.AddedLatencyDownloadSeconds, p.AddedLatencyUploadSeconds} {
		if !math.IsNaN(v) && (math.IsNaN(added) || v > added) {
			added = v
		}
	}
	t := test{rowid: p.RowID, at: at, down: p.DownloadBitsPerSecond, up: p.UploadBitsPerSecond,
		rtt: p.LatencySeconds, added: added, loss: math.NaN(), jitter: math.NaN()}
	h.tests = slices.Insert(h.tests, i, t)
	return true
}

// addLine adds a line-quality summary: what it covers, whether the line was
// dead, its outages, and its loss and jitter to the speed tests it covers.
func (h *siteHistory) addLine(p *store.Point) {
	if !p.LineQualityPresent || math.IsNaN(p.IntervalSeconds) || p.IntervalSeconds <= 0 {
		return
	}
	key := p.Probe + "/" + p.Method
	st := h.streams[key]
	if st == nil {
		st = &stream{}
		h.streams[key] = st
	}
	a := p.MeasuredAt.UnixNano()
	b := a + int64(p.IntervalSeconds*1e9)
	st.covered.add(a, b, bridge)
	if p.Sent > 0 && p.Received == 0 {
		st.dead.add(a, b, 0)
	}
	for _, o := range p.Outages {
		st.outage.add(o.Start.UnixNano(), o.End.UnixNano(), 0)
	}
	if !p.OutageSince.IsZero() {
		st.outage.add(p.OutageSince.UnixNano(), b, 0)
	}
	if p.Sent > 0 {
		h.attach(a, b, float64(p.Sent-p.Received)/float64(p.Sent), p.LineJitterSeconds)
	}
}

// attach gives the tests that started in [a, b) the loss and jitter of a
// summary, unless they have a better one.
func (h *siteHistory) attach(a, b int64, loss, jitter float64) {
	i := sort.Search(len(h.tests), func(i int) bool { return h.tests[i].at >= a })
	for ; i < len(h.tests) && h.tests[i].at < b; i++ {
		t := &h.tests[i]
		if math.IsNaN(t.loss) || loss < t.loss || loss == t.loss && jitter < t.jitter {
			t.loss, t.jitter = loss, jitter
		}
	}
}

// addPresence records a successful measurement (not line quality) at t.
func (h *siteHistory) addPresence(t time.Time, presence time.Duration) {
	a := t.UnixNano()
	h.presence.add(a, a+int64(presence), 0)
}

// add adds any measurement. It reports whether it was a new speed test
// (for the caller to find the line quality at its time, which may have been
// stored before it).
func (h *siteHistory) add(p *store.Point, presence time.Duration) (newTest bool) {
	switch p.Kind {
	case wire.KindLineQuality:
		h.addLine(p)
		return false
	case wire.KindSpeedtest:
		newTest = h.addTest(p)
	}
	if p.Success {
		h.addPresence(p.MeasuredAt, presence)
	}
	return newTest
}

// empty reports whether nothing is known of the site.
func (h *siteHistory) empty() bool {
	return len(h.tests) == 0 && len(h.streams) == 0 && len(h.presence) == 0
}

// prune forgets what is older than t.
func (h *siteHistory) prune(t int64) {
	i := sort.Search(len(h.tests), func(i int) bool { return h.tests[i].at >= t })
	h.tests = slices.Delete(h.tests, 0, i)
	for k, st := range h.streams {
		st.covered.prune(t)
		st.dead.prune(t)
		st.outage.prune(t)
		if len(st.covered) == 0 && len(st.outage) == 0 {
			delete(h.streams, k)
		}
	}
	h.presence.prune(t)
}
