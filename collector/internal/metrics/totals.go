package metrics

import (
	"slices"
	"strings"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// causes are the causes of a disconnection, in the order lineTotal counts
// them.
var causes = [...]string{wire.CauseWAN, wire.CauseLAN, wire.CauseUnknown}

// causeIndex returns the index of cause in causes; a cause it does not know
// (the schema allows none) counts as unknown.
func causeIndex(cause string) int {
	switch cause {
	case wire.CauseWAN:
		return 0
	case wire.CauseLAN:
		return 1
	}
	return 2
}

// lineTotal is the running count of one line-quality stream: gauges of the
// latest minute miss what happened while the agent could not publish (its
// outbox drains in a burst after an outage), counters do not. Read-only once
// stored.
type lineTotal struct {
	method         *interned
	sent, received int64
	outages        [len(causes)]int64
	outageSeconds  [len(causes)]float64
}

// total puts a copy of the stream's totals (new ones if there are none) in
// a copy of p.totals and returns it; nil if method is not valid UTF-8 (the
// schema's methods are ASCII).
//
// The pointer is into p.totals: valid until p.totals changes.
func (p *probeState) total(method string, names *labeler) *lineTotal {
	i, found := slices.BinarySearchFunc(p.totals, method, func(t lineTotal, m string) int { return strings.Compare(t.method.s, m) })
	totals := make([]lineTotal, len(p.totals), len(p.totals)+1)
	copy(totals, p.totals)
	if !found {
		in, ok := names.intern(method)
		if !ok {
			return nil
		}
		totals = slices.Insert(totals, i, lineTotal{method: in})
	}
	p.totals = totals
	return &p.totals[i]
}

// SetLineTotal sets a stream's totals from the history (at start-up).
func (f *Fleet) SetLineTotal(lt store.LineTotal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(lt.Site, func(s *siteState) {
		p, known := s.probe(lt.Probe, &f.names)
		if p == nil {
			return
		}
		t := p.total(lt.Method, &f.names)
		if t == nil {
			return
		}
		t.sent, t.received, t.outages, t.outageSeconds = lt.Sent, lt.Received, [len(causes)]int64{}, [len(causes)]float64{}
		for c, n := range lt.Outages {
			t.outages[causeIndex(c)] += n
		}
		for c, d := range lt.OutageSeconds {
			t.outageSeconds[causeIndex(c)] += d
		}
		if !known {
			s.enforceCap()
		}
	})
}

// Count adds a newly stored measurement to the running totals. Call it once
// per stored message (not for duplicates).
func (f *Fleet) Count(m *wire.Measurement) {
	l := m.LineQuality
	if l == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.update(m.Site, func(s *siteState) {
		p, known := s.probe(m.Probe, &f.names)
		if p == nil {
			return
		}
		if !known {
			// after the counting: p points into s.probes (the cap
			// drops the least recently measured probe, whose counts
			// do not change that)
			defer s.enforceCap()
		}
		t := p.total(l.Method, &f.names)
		if t == nil {
			return
		}
		t.sent += l.Sent
		t.received += l.Received
		listed := 0.0
		for _, o := range l.Outages {
			c := causeIndex(o.Cause)
			t.outages[c]++
			t.outageSeconds[c] += o.DurationSeconds
			listed += o.DurationSeconds
		}
		// beyond the 64 a summary lists: counted, cause unknown
		unknown := causeIndex(wire.CauseUnknown)
		t.outages[unknown] += l.OutagesDropped
		if l.OutageSecondsTotal != nil && *l.OutageSecondsTotal > listed {
			t.outageSeconds[unknown] += *l.OutageSecondsTotal - listed
		}
	})
}
