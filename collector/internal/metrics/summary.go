package metrics

import "time"

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

// Sites returns a summary of every site the collector knows (with an agent
// status or a speed test), sorted by id.
func (f *Fleet) Sites() []SiteSummary {
	var out []SiteSummary
	for _, st := range f.snapshot() {
		s := SiteSummary{Site: st.id}
		if a := st.agent; a != nil {
			s.StatusKnown, s.Online, s.LastSeen, s.AgentVersion = true, a.online, time.Unix(0, a.lastSeen).UTC(), a.version.s
		}
		for i := range st.probes {
			p := &st.probes[i]
			sp := p.speed
			if sp == nil || (s.Speed != nil && sp.lastAttempt <= s.Speed.At.UnixNano()) {
				continue
			}
			sum := &SpeedSummary{Probe: p.name.s, At: time.Unix(0, sp.lastAttempt).UTC(), Success: sp.success}
			// the figures of that very test, when it measured them
			last := sp.lastAttempt
			if sp.download.ok() && sp.download.at == last {
				sum.Download = &sp.download.v
			}
			if sp.upload.ok() && sp.upload.at == last {
				sum.Upload = &sp.upload.v
			}
			if sp.latency.ok() && sp.latency.at == last {
				sum.Latency = &sp.latency.v
			}
			s.Speed = sum
		}
		if s.StatusKnown || s.Speed != nil {
			out = append(out, s)
		}
	}
	return out
}
