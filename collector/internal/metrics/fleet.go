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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
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
// pointers without holding the lock.
type Fleet struct {
	mu     sync.Mutex
	list   []*siteState   // every site; by id when sorted
	index  map[string]int // site id -> position in list
	sorted bool
}

// siteState is what the fleet knows of one site. Read-only once stored.
type siteState struct {
	id     string
	agent  *store.Agent  // the latest status; nil until one arrives
	probes []*probeState // by name
}

// probeState is the latest state of one probe of a site. Read-only once
// stored.
type probeState struct {
	name    string
	lastRun time.Time   // the most recent run of any kind (the cap drops the least recent)
	speed   *speedState // speed tests; nil for other kinds
	// the most recent measurement of each light stream (line quality by
	// method; DNS, HTTP and Wi-Fi have one, variant ""), exported whole: a
	// DNS name or service removed from the agent's config disappears, and
	// one probe's series are bounded by the schema's limit on results per
	// message
	streams []stream
	totals  []*lineTotal // line quality, by method
}

type stream struct {
	variant string
	m       *wire.Measurement
}

// figure is a value and when it was measured.
type figure struct {
	v  float64
	at time.Time
}

type speedState struct {
	lastAttempt time.Time
	lastSuccess time.Time
	success     bool
	download    *figure
	upload      *figure
	latency     *figure
	loadedDown  *figure
	loadedUp    *figure
	addedDown   *figure
	addedUp     *figure
	grade       string
	gradeAt     time.Time
}

// NewFleet returns an empty Fleet.
func NewFleet() *Fleet {
	return &Fleet{index: map[string]int{}, sorted: true}
}

// update replaces the state of site id with fn's changes to a copy of it.
// fn must copy, not change, anything the copy shares with the old state
// (site.probe does that for a probe). Called with f.mu held.
func (f *Fleet) update(id string, fn func(s *siteState)) {
	i, ok := f.index[id]
	s := siteState{id: id}
	if ok {
		s = *f.list[i]
	}
	fn(&s)
	if ok {
		f.list[i] = &s
		return
	}
	f.index[id] = len(f.list)
	f.list = append(f.list, &s)
	f.sorted = false
}

// probe puts a copy of the named probe's state (a new one if there is
// none) in a copy of s.probes and returns it, and whether it was known.
func (s *siteState) probe(name string) (*probeState, bool) {
	i, known := slices.BinarySearchFunc(s.probes, name, func(p *probeState, name string) int { return strings.Compare(p.name, name) })
	probes := make([]*probeState, len(s.probes), len(s.probes)+1)
	copy(probes, s.probes)
	p := &probeState{name: name}
	if known {
		c := *probes[i]
		p = &c
		probes[i] = p
	} else {
		probes = slices.Insert(probes, i, p)
	}
	s.probes = probes
	return p, known
}

// enforceCap drops the least recently measured probes beyond
// MaxProbesPerSite. s.probes must be s's own copy.
func (s *siteState) enforceCap() {
	for len(s.probes) > MaxProbesPerSite {
		oldest := 0
		for i, p := range s.probes {
			if p.lastRun.Before(s.probes[oldest].lastRun) {
				oldest = i
			}
		}
		s.probes = slices.Delete(s.probes, oldest, oldest+1)
	}
}

func pick(cur *figure, v *float64, at time.Time) *figure {
	if v == nil || (cur != nil && cur.at.After(at)) {
		return cur
	}
	return &figure{*v, at}
}

// Observe records a stored measurement. Each figure keeps the value of the
// most recent test that measured it; older measurements arriving late (an
// outbox draining after an outage) never replace newer ones. The fleet keeps
// a copy of *m (not m, which may be an element of a large slice: a start-up
// reads the last 50 rows of every probe) and what it points to, which
// neither the caller nor the fleet may change.
func (f *Fleet) Observe(m *wire.Measurement) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(m.Site, func(s *siteState) {
		p, known := s.probe(m.Probe)
		if m.MeasuredAt.After(p.lastRun) {
			p.lastRun = m.MeasuredAt
		}
		if m.Kind == wire.KindSpeedtest {
			if m.Speedtest != nil {
				p.speed = observeSpeed(p.speed, m)
			}
		} else {
			variant := ""
			if m.LineQuality != nil {
				variant = m.LineQuality.Method
			}
			i, found := slices.BinarySearchFunc(p.streams, variant, func(s stream, v string) int { return strings.Compare(s.variant, v) })
			switch {
			case !found:
				c := *m
				p.streams = slices.Insert(slices.Clone(p.streams), i, stream{variant, &c})
			case !m.MeasuredAt.Before(p.streams[i].m.MeasuredAt):
				c := *m
				p.streams = slices.Clone(p.streams)
				p.streams[i].m = &c
			}
		}
		if !known {
			s.enforceCap()
		}
	})
}

// observeSpeed returns a copy of cur (nil for none) with the speed test m.
func observeSpeed(cur *speedState, m *wire.Measurement) *speedState {
	s := &speedState{}
	if cur != nil {
		*s = *cur
	}
	at := m.MeasuredAt
	if !at.Before(s.lastAttempt) {
		s.lastAttempt, s.success = at, m.Success
	}
	if m.Success && at.After(s.lastSuccess) {
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
	if st.BufferbloatGrade != "" && !at.Before(s.gradeAt) {
		s.grade, s.gradeAt = st.BufferbloatGrade, at
	}
	return s
}

// ObserveAgent records the stored state of a site's agent.
func (f *Fleet) ObserveAgent(a store.Agent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(a.Site, func(s *siteState) { s.agent = &a })
}

// Seen records that a site sent something at t.
func (f *Fleet) Seen(site string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.index[site]
	if !ok || f.list[i].agent == nil || !t.After(f.list[i].agent.LastSeenAt) {
		return
	}
	f.update(site, func(s *siteState) {
		a := *s.agent
		a.LastSeenAt = t
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
