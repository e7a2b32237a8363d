package fleetsim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// Mix is what one agent with the default configuration publishes in an hour
// (agent/internal/config): a status every broker.status_interval (60 s), a
// line-quality summary each minute, DNS every 5 minutes, the essential HTTPS
// services every 15 minutes and 4 speed tests a day. Wi-Fi is off (hubs are
// wired by default).
var Mix = []struct {
	Kind    string // a wire measurement kind, or wire.TopicStatus
	PerHour float64
}{
	{wire.TopicStatus, 60},
	{wire.KindLineQuality, 60},
	{wire.KindDNS, 12},
	{wire.KindHTTP, 4},
	{wire.KindSpeedtest, 4.0 / 24},
}

// PerSitePerHour is the messages one agent publishes an hour (Mix summed).
func PerSitePerHour() float64 {
	var t float64
	for _, m := range Mix {
		t += m.PerHour
	}
	return t
}

// NominalRate is the messages per second a fleet of sites publishes in steady
// state.
func NominalRate(sites int) float64 { return float64(sites) * PerSitePerHour() / 3600 }

// Probe names the simulated agents use, as in deploy/dev/agent.yaml.
var probeName = map[string]string{
	wire.KindLineQuality: "line",
	wire.KindDNS:         "dns",
	wire.KindHTTP:        "services",
	wire.KindSpeedtest:   "local",
}

// line profiles (download/upload Mbit/s) sites are given at random
var lines = [][2]float64{{10, 1}, {36, 10}, {80, 20}, {300, 50}, {900, 110}}

// site is one simulated agent.
type site struct {
	name        string
	agentID     string
	seq         int64
	connectedAt time.Time
	started     time.Time
	statuses    int
	cycle       int     // messages made in EveryKind phases
	down, up    float64 // bit/s
}

// message is one publish.
type message struct {
	site       int
	topic      string
	payload    []byte
	retained   bool
	id         string // message id; empty for a status
	probe      string
	measuredAt time.Time
}

// generator makes the messages of the fleet, site after site, each site's
// first message its online status and then kinds drawn from Mix. It is not
// safe for concurrent use.
type generator struct {
	sites  []site
	next   int
	rng    *mrand.Rand
	cum    []float64
	server string
}

func newGenerator(prefix string, n int, seed uint64, now time.Time) *generator {
	g := &generator{rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), server: "hubmon.example.org:8080"}
	width := len(fmt.Sprint(n - 1))
	g.sites = make([]site, n)
	for i := range g.sites {
		l := lines[g.rng.IntN(len(lines))]
		g.sites[i] = site{
			name: fmt.Sprintf("%s-%0*d", prefix, width, i), agentID: rand.Text(),
			// an agent that has been up for a while, connected a little later
			started:     now.Add(-time.Duration(g.rng.IntN(86400)) * time.Second),
			connectedAt: now.Add(-time.Duration(g.rng.IntN(3600)) * time.Second),
			down:        l[0] * 1e6, up: l[1] * 1e6,
		}
	}
	var t float64
	for _, m := range Mix {
		t += m.PerHour
		g.cum = append(g.cum, t)
	}
	return g
}

func (g *generator) kind() string {
	x := g.rng.Float64() * g.cum[len(g.cum)-1]
	for i, c := range g.cum {
		if x < c {
			return Mix[i].Kind
		}
	}
	return Mix[len(Mix)-1].Kind
}

// Kinds says which kinds of message a phase publishes.
type Kinds int

const (
	// Mixed: each site's first message is its status, then kinds drawn in
	// the proportions of Mix.
	Mixed Kinds = iota
	// MeasurementsOnly: kinds drawn from Mix, but never a status (statuses
	// are retained: a subscriber that comes later would get them again).
	MeasurementsOnly
	// EveryKind: each site publishes the kinds of Mix in turn, its status
	// first, so len(Mix) x sites messages make every site report every probe.
	EveryKind
)

// make returns the next message, measured (or sent) at now.
func (g *generator) make(now time.Time, kinds Kinds) *message {
	i := g.next
	g.next = (g.next + 1) % len(g.sites)
	s := &g.sites[i]
	var kind string
	switch {
	case kinds == EveryKind:
		kind = Mix[s.cycle%len(Mix)].Kind
		s.cycle++
	case kinds == Mixed && s.statuses == 0:
		kind = wire.TopicStatus
	default:
		kind = g.kind()
		for kinds == MeasurementsOnly && kind == wire.TopicStatus {
			kind = g.kind()
		}
	}
	now = now.UTC()
	if kind == wire.TopicStatus {
		s.statuses++
		st := wire.Status{Version: wire.Version, Site: s.name, AgentID: s.agentID, State: wire.StateOnline, Session: 1,
			ConnectedAt: s.connectedAt, SentAt: now, AgentVersion: "0.1.0", OS: "linux", Arch: "arm64",
			UptimeSeconds: now.Sub(s.started).Seconds(), DataBudgetBytes: 20e9, DataUsedBytes: int64(g.rng.IntN(5e9)),
			BudgetMonth: now.Format("2006-01")}
		b, _ := json.Marshal(st)
		return &message{site: i, topic: wire.Topic(s.name, wire.TopicStatus), payload: b, retained: true}
	}
	s.seq++
	m := &wire.Measurement{Version: wire.Version, MessageID: rand.Text(), Site: s.name, AgentID: s.agentID, Seq: s.seq,
		Probe: probeName[kind], Kind: kind, MeasuredAt: now, Success: true}
	switch kind {
	case wire.KindLineQuality:
		g.lineQuality(m, now)
	case wire.KindDNS:
		g.dns(m)
	case wire.KindHTTP:
		g.http(m, now)
	case wire.KindSpeedtest:
		g.speedtest(m, s)
	}
	b, _ := json.Marshal(m)
	return &message{site: i, topic: wire.Topic(s.name, wire.TopicMeasurement), payload: b, id: m.MessageID,
		probe: m.Probe, measuredAt: now}
}

// jitter returns v scaled by a random factor in [1-f, 1+f].
func (g *generator) jitter(v, f float64) float64 { return v * (1 - f + 2*f*g.rng.Float64()) }

func (g *generator) ms(v float64) *float64 { return wire.Float(math.Round(g.jitter(v, 0.3)*1e6) / 1e9) }

func (g *generator) lineQuality(m *wire.Measurement, now time.Time) {
	m.DurationSeconds = 60
	lq := &wire.LineQuality{Method: "udp", Target: "hubmon.example.org:9471", IntervalSeconds: 60, Sent: 40, Received: 40,
		RTTMinSeconds: g.ms(11), RTTP50Seconds: g.ms(14), RTTP95Seconds: g.ms(31), RTTMaxSeconds: g.ms(52), JitterSeconds: g.ms(3),
		OutageSecondsTotal: wire.Float(0)}
	switch x := g.rng.IntN(100); {
	case x < 2: // an outage ended in this minute
		d := math.Round(g.jitter(10, 0.5)*10) / 10
		end := now.Add(-time.Duration(g.rng.IntN(30)) * time.Second)
		lost := int64(d / 1.5)
		lq.Received = lq.Sent - min(lost, lq.Sent)
		lq.Outages = []wire.Outage{{Start: end.Add(-time.Duration(d * float64(time.Second))), End: end, DurationSeconds: d,
			Cause: []string{wire.CauseWAN, wire.CauseLAN}[g.rng.IntN(2)], LostProbes: lost}}
		lq.OutageSecondsTotal = wire.Float(d)
	case x < 30:
		lq.Received = lq.Sent - int64(1+g.rng.IntN(2))
	}
	m.LineQuality = lq
}

func (g *generator) dns(m *wire.Measurement) {
	m.DurationSeconds = math.Round(g.jitter(0.05, 0.5)*1000) / 1000
	m.DNS = &wire.DNS{Results: []wire.DNSResult{
		{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: g.ms(18), Addresses: 4},
		{Resolver: "system", Name: "www.nhs.uk", Success: true, ResolveSeconds: g.ms(21), Addresses: 2},
	}}
}

func (g *generator) http(m *wire.Measurement, now time.Time) {
	m.DurationSeconds = math.Round(g.jitter(0.9, 0.3)*1000) / 1000
	notAfter := now.Add(90 * 24 * time.Hour).Truncate(24 * time.Hour)
	var rs []wire.HTTPResult
	for _, s := range []struct{ name, url string }{
		{"gov-uk", "https://www.gov.uk/"}, {"nhs", "https://www.nhs.uk/"}, {"universal-credit", "https://www.universal-credit.service.gov.uk/sign-in"},
	} {
		rs = append(rs, wire.HTTPResult{Name: s.name, URL: s.url, Success: true, StatusCode: 200,
			DNSSeconds: g.ms(12), ConnectSeconds: g.ms(15), TLSSeconds: g.ms(41), FirstByteSeconds: g.ms(120), TotalSeconds: g.ms(310),
			CertNotAfter: &notAfter})
	}
	m.HTTP = &wire.HTTP{Results: rs}
}

func (g *generator) speedtest(m *wire.Measurement, s *site) {
	st := &wire.Speedtest{ServerID: "Custom", ServerName: g.server, ServerHost: g.server}
	m.Speedtest = st
	m.DurationSeconds = math.Round(g.jitter(25, 0.1)*100) / 100
	if g.rng.IntN(50) == 0 {
		m.Success, m.Error = false, "download: no bytes received within 15s"
		return
	}
	down, up := g.jitter(s.down*0.95, 0.05), g.jitter(s.up*0.95, 0.05)
	st.DownloadBitsPerSecond, st.UploadBitsPerSecond = wire.Float(math.Round(down)), wire.Float(math.Round(up))
	st.LatencySeconds, st.JitterSeconds = g.ms(12), g.ms(2)
	st.DownloadBytes, st.UploadBytes = int64(down/8*12), int64(up/8*12)
	st.DownloadDurationSeconds, st.UploadDurationSeconds = wire.Float(12), wire.Float(12)
	added := g.jitter(0.04, 0.8)
	st.LatencyUnderDownloadSeconds, st.LatencyUnderUploadSeconds = wire.Float(*st.LatencySeconds+added), wire.Float(*st.LatencySeconds+added/2)
	st.AddedLatencyUnderDownloadSeconds, st.AddedLatencyUnderUploadSeconds = wire.Float(added), wire.Float(added/2)
	st.BufferbloatGrade = grade(added)
}

func grade(added float64) string {
	switch {
	case added < 0.005:
		return "A+"
	case added < 0.030:
		return "A"
	case added < 0.060:
		return "B"
	case added < 0.200:
		return "C"
	case added < 0.400:
		return "D"
	}
	return "F"
}
