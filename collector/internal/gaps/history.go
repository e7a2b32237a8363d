package gaps

import (
	"math"
	"slices"
	"sort"
	"strings"
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
	at int64 // measured_at, Unix nanoseconds
	// rates in bits per second, times in seconds
	down, up, rtt, added float64
	// loss (a ratio) and jitter of the line-quality summary covering the
	// start of the test: the best stream when several do
	loss, jitter float64
}

// record is a speed test as the history keeps it: 32 bytes, not the 64 of
// a test with float64 figures and its row id, for a month of tests of
// 20,000 sites (2.4 million) is most of the collector's memory. The figures
// are float32: a rate in bits per second keeps 24 significant bits (7
// decimal digits, far finer than a speed test measures or the report
// shows), and meets compares them with the limits at that precision, so
// that a figure equal to a limit still meets it. The time stays exact: it
// decides the window and the period a test falls in, and the summary that
// covers it. There is no row id: the Engine adds each row once (see
// Engine.added).
type record struct {
	at                                 int64
	down, up, rtt, added, loss, jitter float32
}

// test returns r with float64 figures, for meets.
func (r *record) test() test {
	return test{at: r.at, down: float64(r.down), up: float64(r.up), rtt: float64(r.rtt), added: float64(r.added),
		loss: float64(r.loss), jitter: float64(r.jitter)}
}

func isNaN32(v float32) bool { return v != v }

// stream is the history of one line-quality stream (a probe and a method)
// of a site.
type stream struct {
	key     string // probe "/" method
	covered spans  // the times its summaries cover
	dead    spans  // summaries in which every idle probe was lost
	outage  spans  // disconnections it reported, ended or going on
}

// siteHistory is what the figures of one site are computed from: its
// speed tests and the times its line was up or down, for the retention.
type siteHistory struct {
	tests []record // by time, then as added
	// streams: one or two a site, found by a linear search (a map of one
	// entry takes 200 bytes more)
	streams []stream
	// presence: successful measurements other than line quality, but for
	// the times a stream covers, which compute takes out of it anyway (a
	// stream's covered times only grow, and are pruned with these). With
	// line quality, a month of speed tests and DNS probes adds nothing.
	presence spans
}

func newSiteHistory() *siteHistory {
	return &siteHistory{}
}

// addTest adds a speed test and reports whether it counts (it measured a
// download rate). The caller adds each row once (see record).
func (h *siteHistory) addTest(p *store.Point) bool {
	if math.IsNaN(p.DownloadBitsPerSecond) {
		return false
	}
	at := p.MeasuredAt.UnixNano()
	i := sort.Search(len(h.tests), func(i int) bool { return h.tests[i].at > at })
	added := math.NaN()
	for _, v := range []float64{p.AddedLatencyDownloadSeconds, p.AddedLatencyUploadSeconds} {
		if !math.IsNaN(v) && (math.IsNaN(added) || v > added) {
			added = v
		}
	}
	nan := float32(math.NaN())
	r := record{at: at, down: float32(p.DownloadBitsPerSecond), up: float32(p.UploadBitsPerSecond),
		rtt: float32(p.LatencySeconds), added: float32(added), loss: nan, jitter: nan}
	h.tests = insertGrow(h.tests, i, r)
	return true
}

// insertGrow inserts v at s[i], growing s by an eighth when it is full, not
// by the half to double of append: a site's tests grow by four a day and
// are trimmed as much, so the slack would stay.
func insertGrow[S ~[]E, E any](s S, i int, v E) S {
	if len(s) == cap(s) {
		s = append(make(S, 0, len(s)+len(s)/8+4), s...)
	}
	return slices.Insert(s, i, v)
}

// stream returns the stream of probe and method, added if new.
func (h *siteHistory) stream(probe, method string) *stream {
	key := probe + "/" + method // on the stack unless kept
	for i := range h.streams {
		if h.streams[i].key == key {
			return &h.streams[i]
		}
	}
	h.streams = append(h.streams, stream{key: strings.Clone(key)})
	return &h.streams[len(h.streams)-1]
}

// addLine adds a line-quality summary: what it covers, whether the line was
// dead, its outages, and its loss and jitter to the speed tests it covers.
func (h *siteHistory) addLine(p *store.Point) {
	if !p.LineQualityPresent || math.IsNaN(p.IntervalSeconds) || p.IntervalSeconds <= 0 {
		return
	}
	st := h.stream(p.Probe, p.Method)
	a := p.MeasuredAt.UnixNano()
	b := a + int64(p.IntervalSeconds*1e9)
	st.covered.add(a, b, bridge)
	if c, ok := st.covered.find(a); ok {
		h.presence.cut(c.a, c.b) // see siteHistory.presence
	}
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
func (h *siteHistory) attach(a, b int64, loss64, jitter64 float64) {
	loss, jitter := float32(loss64), float32(jitter64)
	i := sort.Search(len(h.tests), func(i int) bool { return h.tests[i].at >= a })
	for ; i < len(h.tests) && h.tests[i].at < b; i++ {
		t := &h.tests[i]
		if isNaN32(t.loss) || loss < t.loss || loss == t.loss && jitter < t.jitter {
			t.loss, t.jitter = loss, jitter
		}
	}
}

// addPresence records a successful measurement (not line quality) at t.
func (h *siteHistory) addPresence(t time.Time, presence time.Duration) {
	a := t.UnixNano()
	b := a + int64(presence)
	rest := spans{{a, b}}
	for i := range h.streams {
		if len(rest) == 0 {
			return
		}
		rest = subtract(rest, h.streams[i].covered.clip(a, b))
	}
	for _, x := range rest {
		h.presence.add(x.a, x.b, 0)
	}
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
	for i := range h.streams {
		st := &h.streams[i]
		st.covered.prune(t)
		st.dead.prune(t)
		st.outage.prune(t)
	}
	h.streams = slices.DeleteFunc(h.streams, func(st stream) bool { return len(st.covered) == 0 && len(st.outage) == 0 })
	h.presence.prune(t)
}

// trim frees the slack that appending and cutting left in h's slices (after
// Load).
func (h *siteHistory) trim() {
	h.tests = trimmed(h.tests)
	h.streams = trimmed(h.streams)
	for i := range h.streams {
		st := &h.streams[i]
		st.covered, st.dead, st.outage = trimmed(st.covered), trimmed(st.dead), trimmed(st.outage)
	}
	h.presence = trimmed(h.presence)
}

// trimmed returns s in an array of its length (slices.Clip keeps the array:
// it only hides the slack).
func trimmed[S ~[]E, E any](s S) S {
	switch {
	case len(s) == 0:
		return nil
	case len(s) == cap(s):
		return s
	}
	return slices.Clone(s)
}
