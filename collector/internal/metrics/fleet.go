// Package metrics exposes what the collector knows to Prometheus.
//
// Fleet holds the latest figures of every site in memory and writes them at
// scrape time (WriteSeries), so a series exists only while there is
// something true to say: a failed test never shows as a zero speed, and every
// value comes with the time it was measured so dashboards show its age
// instead of a frozen gauge that looks live. At fleet scale (20,000 sites,
// over a million series) the series are written straight to the text format
// (package exposition) rather than through a prometheus.Registry, from a
// snapshot: a scrape never blocks ingest, and ingest never waits for a slow
// scraper. Health holds the collector's own counters, registered on a
// registry the caller owns; nothing here touches prometheus.DefaultRegisterer.
package metrics

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// MaxProbesPerSite bounds the probes one site's metrics may hold: an agent
// publishing under ever new probe names cannot grow the collector's memory
// or /metrics. The least recently measured probe gives way.
const MaxProbesPerSite = 64

// Fleet is the latest state of every site. It is safe for concurrent use.
//
// The state of a site is copied on write: a *siteState, and everything it
// points to, never changes once stored, so a scrape reads a snapshot of
// pointers without holding the lock. It keeps only what the series need,
// in compact records with their label values escaped once (a site's id is
// in each of its 64 series).
type Fleet struct {
	mu     sync.Mutex
	list   []*siteState   // every site; by id when sorted
	index  map[string]int // site id -> position in list
	sorted bool
	names  labeler
}

// maxInterned bounds the label values a labeler keeps.
const maxInterned = 4096

// labeler interns the label values a fleet repeats (probe names, services,
// resolvers, methods, versions): made once and shared, a value takes one
// pointer per site, not a string and its Label, and a scrape reads it from
// a handful of places. Beyond maxInterned distinct values (a fleet has a
// few dozen), a value is made anew each time. Safe for concurrent use.
type labeler struct {
	mu sync.Mutex
	m  map[string]*interned
}

// interned is a label value: the string, and its Label. Read-only.
type interned struct {
	s string
	l exposition.Label
}

// intern returns s as the labeler keeps it (a string decoded from a
// message is its own allocation: keeping the labeler's instead takes no
// memory per site); false if s is not valid UTF-8.
func (l *labeler) intern(s string) (*interned, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if in, ok := l.m[s]; ok {
		return in, true
	}
	lb, ok := exposition.NewLabel(s)
	if !ok {
		return nil, false
	}
	in := &interned{s, lb}
	if len(l.m) < maxInterned {
		if l.m == nil {
			l.m = map[string]*interned{}
		}
		l.m[s] = in
	}
	return in, true
}

// interns is intern of each of ss; false if one is not valid UTF-8.
func (l *labeler) interns(ss ...string) ([]*interned, bool) {
	out := make([]*interned, len(ss))
	for i, s := range ss {
		var ok bool
		if out[i], ok = l.intern(s); !ok {
			return nil, false
		}
	}
	return out, true
}

// siteState is what the fleet knows of one site. Read-only once stored.
type siteState struct {
	id     string
	label  exposition.Label
	agent  *agentState  // the latest status; nil until one arrives
	probes []probeState // by name
}

// agentState is what the series and the status pages need of a site's
// latest status (store.Agent). Read-only once stored.
type agentState struct {
	lastSeen          int64   // Unix ns
	start             float64 // when the agent started (Unix time)
	counts            [agentCounts]int64
	budget            int64
	online            bool
	unsynced          bool             // the clock
	id                exposition.Label // agent_id: one a site, not interned
	version, os, arch *interned
}

// The counts of agentState.counts, as a status has them.
const (
	countBacklog = iota
	countDropped
	countDataUsed
	countSkipped
	countShortened
	countLost
	agentCounts
)

// probeState is the latest state of one probe of a site. Read-only once
// stored.
type probeState struct {
	name    *interned
	lastRun int64       // the most recent run of any kind, Unix ns (the cap drops the least recent)
	speed   *speedState // speed tests; nil for other kinds
	// the most recent result of each light stream (line quality by method;
	// DNS, HTTP and Wi-Fi have one, variant ""), whole: a DNS name or
	// service removed from the agent's config disappears, and one probe's
	// series are bounded by the schema's limit on results per message
	streams []stream
	totals  []lineTotal // line quality, by method
}

// stream is the latest result of a light probe. Its figures are behind one
// interface value: a field for each kind (two of them slices) made every
// stream 88 bytes; it is 40.
type stream struct {
	variant *interned // line quality's method; nil for the other kinds
	at      int64     // Unix ns
	fig     any       // *lineFig or *wifiFig; or the first of n *dnsFig or *httpFig
	n       int
}

// line returns the stream's line-quality figures, or nil.
func (s *stream) line() *lineFig { l, _ := s.fig.(*lineFig); return l }

// wifi returns the stream's Wi-Fi figures, or nil.
func (s *stream) wifi() *wifiFig { w, _ := s.fig.(*wifiFig); return w }

// dns returns the stream's DNS results, or none.
func (s *stream) dns() []dnsFig {
	if d, ok := s.fig.(*dnsFig); ok && d != nil {
		return unsafe.Slice(d, s.n)
	}
	return nil
}

// http returns the stream's HTTP results, or none.
func (s *stream) http() []httpFig {
	if h, ok := s.fig.(*httpFig); ok && h != nil {
		return unsafe.Slice(h, s.n)
	}
	return nil
}

// variantName is the stream's variant: "" but for line quality.
func (s *stream) variantName() string {
	if s.variant == nil {
		return ""
	}
	return s.variant.s
}

// results returns a stream of the results rs (DNS or HTTP): fig points to
// the first of them, n counts them.
func results[T dnsFig | httpFig](at int64, rs []T) stream {
	st := stream{at: at, fig: (*T)(nil), n: len(rs)}
	if len(rs) > 0 {
		st.fig = &rs[0]
	}
	return st
}

// The figures of the light kinds; NaN where not measured.
type (
	lineFig struct { // its method is its stream's variant
		sent, received   int64
		p50, p95, jitter float64
		outage           bool
	}
	dnsFig struct {
		resolver, name *interned
		success        bool
		seconds        float64
	}
	httpFig struct {
		name    *interned
		status  int32
		success bool
		phases  [len(httpPhases)]float64
		cert    float64 // expiry, Unix time
	}
	wifiFig struct {
		iface, ssid, band   *interned
		signal, rate, hertz float64
	}
)

// httpPhases are the phases of an HTTP check, in the order httpFig has them.
var httpPhases = [...]string{"dns", "connect", "tls", "first_byte", "total"}

// figure is a value and when it was measured (Unix ns); at is 0 for none
// (the schema's times are after 2020), which keeps it 16 bytes, not 24.
type figure struct {
	v  float64
	at int64
}

// ok reports whether f holds a value.
func (f figure) ok() bool { return f.at != 0 }

// speedState is the latest state of a speed-test probe; its times are Unix
// ns (a time.Time is three times the size), 0 for none.
type speedState struct {
	lastAttempt int64
	lastSuccess int64
	success     bool
	download    figure
	upload      figure
	latency     figure
	loadedDown  figure
	loadedUp    figure
	addedDown   figure
	addedUp     figure
	grade       *interned
	gradeAt     int64
	graded      bool
}

// NewFleet returns an empty Fleet.
func NewFleet() *Fleet {
	return &Fleet{index: map[string]int{}, sorted: true}
}

// update replaces the state of site id with fn's changes to a copy of it.
// fn must copy, not change, anything the copy shares with the old state
// (siteState.probe does that for a probe). Called with f.mu held.
func (f *Fleet) update(id string, fn func(s *siteState)) {
	if i, ok := f.index[id]; ok {
		s := *f.list[i]
		fn(&s)
		f.list[i] = &s
		return
	}
	label, ok := exposition.NewLabel(id)
	if !ok {
		return // not valid UTF-8 (the schema's site ids are ASCII)
	}
	s := siteState{id: id, label: label}
	fn(&s)
	f.index[id] = len(f.list)
	f.list = append(f.list, &s)
	f.sorted = false
}

// probe puts a copy of the named probe's state (a new one if there is
// none) in a copy of s.probes and returns it, and whether it was known; nil
// if the name is not valid UTF-8 (the schema's names are ASCII).
//
// The pointer is into s.probes: valid until s.probes changes (enforceCap).
func (s *siteState) probe(name string, names *labeler) (*probeState, bool) {
	i, known := slices.BinarySearchFunc(s.probes, name, func(p probeState, name string) int { return strings.Compare(p.name.s, name) })
	var p probeState
	if known {
		p = s.probes[i]
	} else {
		in, ok := names.intern(name)
		if !ok {
			return nil, false
		}
		p = probeState{name: in}
	}
	// a copy of exactly the size it needs: a site's probes are copied each
	// time it reports, and room to spare was kept by every site for ever
	n := len(s.probes)
	if !known {
		n++
	}
	probes := make([]probeState, n)
	copy(probes, s.probes[:i])
	probes[i] = p
	if known {
		copy(probes[i+1:], s.probes[i+1:])
	} else {
		copy(probes[i+1:], s.probes[i:])
	}
	s.probes = probes
	return &s.probes[i], known
}

// enforceCap drops the least recently measured probes beyond
// MaxProbesPerSite. s.probes must be s's own copy.
func (s *siteState) enforceCap() {
	for len(s.probes) > MaxProbesPerSite {
		oldest := 0
		for i, p := range s.probes {
			if p.lastRun < s.probes[oldest].lastRun {
				oldest = i
			}
		}
		s.probes = slices.Delete(s.probes, oldest, oldest+1)
	}
}

func pick(cur figure, v *float64, at int64) figure {
	if v == nil || at == 0 || (cur.ok() && cur.at > at) {
		return cur
	}
	return figure{*v, at}
}

// Observe records a stored measurement. Each figure keeps the value of the
// most recent test that measured it; older measurements arriving late (an
// outbox draining after an outage) never replace newer ones. The fleet
// keeps what it needs of m, never m.
func (f *Fleet) Observe(m *wire.Measurement) {
	var st stream
	if m.Kind != wire.KindSpeedtest {
		var ok bool
		if st, ok = newStream(m, &f.names); !ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(m.Site, func(s *siteState) {
		p, known := s.probe(m.Probe, &f.names)
		if p == nil {
			return
		}
		if at := m.MeasuredAt.UnixNano(); at > p.lastRun {
			p.lastRun = at
		}
		if m.Kind == wire.KindSpeedtest {
			if m.Speedtest != nil {
				p.speed = observeSpeed(p.speed, m, &f.names)
			}
		} else {
			i, found := slices.BinarySearchFunc(p.streams, st.variantName(), func(s stream, v string) int { return strings.Compare(s.variantName(), v) })
			switch {
			case !found:
				p.streams = slices.Insert(slices.Clone(p.streams), i, st)
			case st.at >= p.streams[i].at:
				p.streams = slices.Clone(p.streams)
				p.streams[i] = st
			}
		}
		if !known {
			s.enforceCap()
		}
	})
}

// nan returns *v, or NaN for nil.
func nan(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// newStream returns what the series need of a light measurement; false if
// it has nothing to show. A result with a label value that is not valid
// UTF-8 is left out (the schema's are valid).
func newStream(m *wire.Measurement, names *labeler) (stream, bool) {
	at := m.MeasuredAt.UnixNano()
	switch {
	case m.LineQuality != nil:
		l := m.LineQuality
		method, ok := names.intern(l.Method)
		if !ok {
			return stream{}, false
		}
		return stream{variant: method, at: at, fig: &lineFig{sent: l.Sent, received: l.Received, p50: nan(l.RTTP50Seconds), p95: nan(l.RTTP95Seconds),
			jitter: nan(l.JitterSeconds), outage: l.OutageSince != nil}}, true
	case m.DNS != nil:
		rs := make([]dnsFig, 0, len(m.DNS.Results))
		for _, r := range m.DNS.Results {
			if ls, ok := names.interns(r.Resolver, r.Name); ok {
				rs = append(rs, dnsFig{resolver: ls[0], name: ls[1], success: r.Success, seconds: nan(r.ResolveSeconds)})
			}
		}
		return results(at, rs), true
	case m.HTTP != nil:
		rs := make([]httpFig, 0, len(m.HTTP.Results))
		for _, r := range m.HTTP.Results {
			name, ok := names.intern(r.Name)
			if !ok {
				continue
			}
			h := httpFig{name: name, success: r.Success, status: int32(r.StatusCode), cert: math.NaN(),
				phases: [...]float64{nan(r.DNSSeconds), nan(r.ConnectSeconds), nan(r.TLSSeconds), nan(r.FirstByteSeconds), nan(r.TotalSeconds)}}
			if r.CertNotAfter != nil {
				h.cert = unix(*r.CertNotAfter)
			}
			rs = append(rs, h)
		}
		return results(at, rs), true
	case m.WiFi != nil:
		w := m.WiFi
		ls, ok := names.interns(w.Interface, w.SSID, w.Band)
		if !ok {
			return stream{}, false
		}
		return stream{at: at, fig: &wifiFig{iface: ls[0], ssid: ls[1], band: ls[2], signal: nan(w.SignalDBM), rate: nan(w.LinkBitsPerSecond) / 8,
			hertz: nan(w.FrequencyMHz) * 1e6}}, true
	}
	return stream{}, false
}

// observeSpeed returns a copy of cur (nil for none) with the speed test m.
func observeSpeed(cur *speedState, m *wire.Measurement, names *labeler) *speedState {
	s := &speedState{}
	if cur != nil {
		*s = *cur
	}
	at := m.MeasuredAt.UnixNano()
	if at >= s.lastAttempt {
		s.lastAttempt, s.success = at, m.Success
	}
	if m.Success && at > s.lastSuccess {
		s.lastSuccess = at
	}
	st := m.Speedtest
	s.download = pick(s.download, st.DownloadBitsPerSecond, at)
	s.upload = pick(s.upload, st.UploadBitsPerSecond, at)
	s.latency = pick(s.latency, st.LatencySeconds, at)
	s.loadedDown = pick(s.loadedDown, st.LatencyUnderDownloadSeconds, at)
	s.loadedUp = pick(s.loadedUp, st.LatencyUnderUploadSeconds, at)
	s.addedDown = pick(s.addedDown, st.AddedLatencyUnderDownloadSeconds, at)
	s.addedUp = pick(s.addedUp, st.AddedLatencyUnderUploadSeconds, at)
	if st.BufferbloatGrade != "" && (!s.graded || at >= s.gradeAt) {
		if g, ok := names.intern(st.BufferbloatGrade); ok {
			s.grade, s.gradeAt, s.graded = g, at, true
		}
	}
	return s
}

// ObserveAgent records the stored state of a site's agent.
func (f *Fleet) ObserveAgent(a store.Agent) {
	id, ok := exposition.NewLabel(a.AgentID) // one per site: not interned
	ls, ok2 := f.names.interns(a.AgentVersion, a.OS, a.Arch)
	if !ok || !ok2 {
		return
	}
	as := &agentState{lastSeen: a.LastSeenAt.UnixNano(), start: unix(a.SentAt) - a.UptimeSeconds,
		counts: [agentCounts]int64{countBacklog: a.OutboxBacklog, countDropped: a.OutboxDroppedTotal, countDataUsed: a.DataUsedBytes,
			countSkipped: a.SpeedtestsSkipped, countShortened: a.SpeedtestsShortened, countLost: a.MeasurementsLostTotal},
		budget: a.DataBudgetBytes, online: a.State == wire.StateOnline, unsynced: a.ClockUnsynced,
		id: id, version: ls[0], os: ls[1], arch: ls[2]}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(a.Site, func(s *siteState) { s.agent = as })
}

// Seen records that a site sent something at t.
func (f *Fleet) Seen(site string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.index[site]
	if !ok || f.list[i].agent == nil || t.UnixNano() <= f.list[i].agent.lastSeen {
		return
	}
	f.update(site, func(s *siteState) {
		a := *s.agent
		a.lastSeen = t.UnixNano()
		s.agent = &a
	})
}

// snapshot returns the state of every site, by id. The states are
// read-only; the slice is the caller's.
func (f *Fleet) snapshot() []*siteState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sorted {
		slices.SortFunc(f.list, func(a, b *siteState) int { return strings.Compare(a.id, b.id) })
		for i, s := range f.list {
			f.index[s.id] = i
		}
		f.sorted = true
	}
	return slices.Clone(f.list)
}
