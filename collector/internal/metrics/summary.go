package metrics

import (
	"sort"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// SiteSummary is what the collector's own status pages show of one hub:
// the state a member of staff wants to see after plugging the box in.
type SiteSummary struct {
	Site string
	// Status is known once the agent has published a status.
	StatusKnown  bool
	Online       bool
	LastSeen     time.Time
	AgentVersion string
	// The most recent speed test of any speed-test probe; nil if none.
	Speed *SpeedSummary
}

// SpeedSummary is one site's most recent speed test.
type SpeedSummary struct {
	Probe   string
	At      time.Time
	Success bool
	// Bits per second and seconds; nil when not measured.
	Download, Upload, Latency *float64
}

// Sites returns a summary of every site the collector knows, sorted by id.
func (f *Fleet) Sites() []SiteSummary {
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]*SiteSummary{}
	get := func(site string) *SiteSummary {
		s := by[site]
		if s == nil {
			s = &SiteSummary{Site: site}
			by[site] = s
		}
		return s
	}
	for site, a := range f.agents {
		s := get(site)
		s.StatusKnown, s.Online, s.LastSeen, s.AgentVersion = true, a.State == wire.StateOnline, a.LastSeenAt, a.AgentVersion
	}
	for k, st := range f.speeds {
		s := get(k.site)
		if s.Speed != nil && !st.lastAttempt.After(s.Speed.At) {
			continue
		}
		sp := &SpeedSummary{Probe: k.probe, At: st.lastAttempt, Success: st.success}
		// the figures of that very test, when it measured them
		if st.download != nil && st.download.at.Equal(st.lastAttempt) {
			sp.Download = &st.download.v
		}
		if st.upload != nil && st.upload.at.Equal(st.lastAttempt) {
			sp.Upload = &st.upload.v
		}
		if st.latency != nil && st.latency.at.Equal(st.lastAttempt) {
			sp.Latency = &st.latency.v
		}
		s.Speed = sp
	}
	out := make([]SiteSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}
