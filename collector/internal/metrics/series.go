package metrics

import (
	"math"
	"time"
	"unsafe"

	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/offheap"
)

// The per-site families of /metrics: each one read by a dashboard, a
// recording or alerting rule (dashboards/), or the only output of its probe
// (Wi-Fi). Figures nothing reads are not exported: the history keeps every
// measurement whole.
var (
	gauge   = exposition.Gauge
	counter = exposition.Counter

	famDownload = exposition.NewFamily("hubmon_speedtest_download_bytes_per_second",
		"Download rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", gauge, "site", "probe")
	famUpload = exposition.NewFamily("hubmon_speedtest_upload_bytes_per_second",
		"Upload rate of the most recent speed test that measured it, in bytes per second (Prometheus base unit; x8 for bit/s).", gauge, "site", "probe")
	famLatency = exposition.NewFamily("hubmon_speedtest_latency_seconds",
		"Idle round-trip time to the speed-test server, of the most recent test that measured it.", gauge, "site", "probe")
	famFigureTime = exposition.NewFamily("hubmon_speedtest_figure_timestamp_seconds",
		"When the exported download and upload rates were measured (Unix time).", gauge, "site", "probe", "figure")
	famSuccess = exposition.NewFamily("hubmon_speedtest_success",
		"1 if the most recent speed test succeeded, 0 if it failed.", gauge, "site", "probe")
	famLastSuccess = exposition.NewFamily("hubmon_speedtest_last_success_timestamp_seconds",
		"When the most recent successful speed test started (Unix time).", gauge, "site", "probe")
	famLoaded = exposition.NewFamily("hubmon_speedtest_loaded_latency_seconds",
		"Median round-trip time while the line was downloading / uploading (latency under load).", gauge, "site", "probe", "direction")
	famAdded = exposition.NewFamily("hubmon_speedtest_added_latency_seconds",
		"Latency under load minus idle latency, by direction: what a video call feels while the line is busy.", gauge, "site", "probe", "direction")
	famGrade = exposition.NewFamily("hubmon_speedtest_bufferbloat_grade",
		"Bufferbloat grade of the most recent test that graded it (A+ < 5 ms added latency, A < 30, B < 60, C < 200, D < 400, F); value always 1.", gauge, "site", "probe", "grade")

	// line quality: the most recent summary (one per interval, about a
	// minute), by method (udp to the echo responder, icmp)
	famLQLoss = exposition.NewFamily("hubmon_linequality_loss_ratio",
		"Share of probes lost in the most recent line-quality interval (0-1).", gauge, "site", "probe", "method")
	famLQRTT = exposition.NewFamily("hubmon_linequality_rtt_seconds",
		"Round-trip time in the most recent line-quality interval, by statistic (p50, p95).", gauge, "site", "probe", "method", "statistic")
	famLQJitter = exposition.NewFamily("hubmon_linequality_jitter_seconds",
		"Mean absolute difference of consecutive RTTs in the most recent line-quality interval.", gauge, "site", "probe", "method")
	famLQOutage = exposition.NewFamily("hubmon_linequality_outage_active",
		"1 while a disconnection is going on (at the end of the most recent interval).", gauge, "site", "probe", "method")
	famLQSentTotal = exposition.NewFamily("hubmon_linequality_probes_sent_total",
		"Line-quality probes sent, over the whole history.", counter, "site", "probe", "method")
	famLQLostTotal = exposition.NewFamily("hubmon_linequality_probes_lost_total",
		"Line-quality probes lost, over the whole history.", counter, "site", "probe", "method")
	famLQOutagesTotal = exposition.NewFamily("hubmon_linequality_outages_total",
		"Disconnections that ended, by cause, over the whole history.", counter, "site", "probe", "method", "cause")
	famLQOutageSecondsTotal = exposition.NewFamily("hubmon_linequality_outage_seconds_total",
		"Time disconnected, by cause, over the whole history (counted when each disconnection ends).", counter, "site", "probe", "method", "cause")

	famDNSSuccess = exposition.NewFamily("hubmon_dns_success",
		"1 if the name resolved in the most recent DNS run.", gauge, "site", "probe", "resolver", "name")
	famDNSSeconds = exposition.NewFamily("hubmon_dns_resolve_seconds",
		"Resolution time in the most recent DNS run.", gauge, "site", "probe", "resolver", "name")

	famHTTPSuccess = exposition.NewFamily("hubmon_http_success",
		"1 if the service answered (2xx or 3xx) in the most recent check.", gauge, "site", "probe", "service")
	famHTTPStatus = exposition.NewFamily("hubmon_http_status_code",
		"HTTP status code of the most recent check.", gauge, "site", "probe", "service")
	famHTTPPhase = exposition.NewFamily("hubmon_http_phase_seconds",
		"Duration of each phase of the most recent check (dns, connect, tls, first_byte, total).", gauge, "site", "probe", "service", "phase")
	famHTTPCert = exposition.NewFamily("hubmon_http_cert_expiry_timestamp_seconds",
		"When the service's TLS certificate expires (Unix time).", gauge, "site", "probe", "service")

	famWiFiSignal = exposition.NewFamily("hubmon_wifi_signal_dbm",
		"Wi-Fi signal strength in dBm.", gauge, "site", "probe")
	famWiFiRate = exposition.NewFamily("hubmon_wifi_link_bytes_per_second",
		"Wi-Fi link (transmit) rate in bytes per second (x8 for bit/s).", gauge, "site", "probe")
	famWiFiFreq = exposition.NewFamily("hubmon_wifi_frequency_hertz",
		"Wi-Fi channel frequency.", gauge, "site", "probe")
	famWiFiInfo = exposition.NewFamily("hubmon_wifi_info",
		"The Wi-Fi network the agent uses.", gauge, "site", "probe", "interface", "ssid", "band")

	famUp = exposition.NewFamily("hubmon_agent_up",
		"1 if the agent's MQTT session is up (its last status is online), 0 if offline.", gauge, "site")
	famLastSeen = exposition.NewFamily("hubmon_agent_last_seen_timestamp_seconds",
		"When the collector last received anything from the site (Unix time).", gauge, "site")
	famInfo = exposition.NewFamily("hubmon_agent_info",
		"The agent of each site: identity, version and platform.", gauge, "site", "agent_id", "version", "os", "arch")
	famBacklog = exposition.NewFamily("hubmon_agent_outbox_backlog_messages",
		"Measurements waiting in the agent's outbox for the collector's acknowledgement, as last reported.", gauge, "site")
	famDropped = exposition.NewFamily("hubmon_agent_outbox_dropped_messages_total",
		"Measurements the agent discarded because its outbox was full, as last reported.", counter, "site")
	famStart = exposition.NewFamily("hubmon_agent_start_timestamp_seconds",
		"When the agent process started (Unix time), from its last status.", gauge, "site")
	famClock = exposition.NewFamily("hubmon_agent_clock_synchronized",
		"0 when the agent's last status said its system clock was not synchronised (its measurements' times may be wrong), else 1.", gauge, "site")
	famBudget = exposition.NewFamily("hubmon_agent_data_budget_bytes",
		"The site's monthly speed-test data budget (absent when none).", gauge, "site")
	famBudgetUsed = exposition.NewFamily("hubmon_agent_data_used_bytes",
		"Data the site's speed tests used this month.", gauge, "site")
	famSkipped = exposition.NewFamily("hubmon_agent_speedtests_skipped",
		"Speed tests skipped this month to stay inside the data budget (or because one was still running).", gauge, "site")
	famShortened = exposition.NewFamily("hubmon_agent_speedtests_shortened",
		"Speed tests shortened this month to stay inside the data budget.", gauge, "site")
	famLost = exposition.NewFamily("hubmon_agent_measurements_lost",
		"Measurements the agent could not write to its outbox since it started.", gauge, "site")
)

func unix(t time.Time) float64 { return unixNano(t.UnixNano()) }

// unixNano returns Unix ns as Unix time in seconds.
func unixNano(ns int64) float64 { return float64(ns) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Label values the series use.
var (
	lDownload, lUpload = label("download"), label("upload")
	lDirections        = [2]exposition.Label{lDownload, lUpload}
	lP50, lP95         = label("p50"), label("p95")
	lCauses            = [len(causes)]exposition.Label{label(causes[0]), label(causes[1]), label(causes[2])}
	lPhases            = func() (ls [len(httpPhases)]exposition.Label) {
		for i, p := range httpPhases {
			ls[i] = label(p)
		}
		return ls
	}()
)

func label(s string) exposition.Label {
	l, ok := exposition.NewLabel(s)
	if !ok {
		panic("metrics: invalid label value " + s)
	}
	return l
}

// rows are the states of a snapshot, flattened by kind, in site and probe
// order, with the figures copied in: each family is written in a pass over
// one of them, which reads memory in order (a pass that followed pointers
// to 20,000 sites' records, scattered in the heap, waited on memory for
// each). Their label values are copied, in the same order, into one arena:
// the rows hold no pointers.
type rows struct {
	labels *exposition.Arena
	speeds []speedRow
	lines  []lineRow
	totals []totalRow
	dns    []dnsRow
	http   []httpRow
	wifi   []wifiRow
	agents []agentRow
	// touched is what touch read: kept, so that the reads are made
	touched int
}

type ref = exposition.Ref

type (
	speedRow struct {
		site, probe, grade        ref
		down, up, latency         float64 // NaN for none
		downAt, upAt, lastSuccess float64 // Unix time; NaN for none
		loaded, added             [2]float64
		success, graded           bool
	}
	lineRow struct {
		site, probe, method ref
		sent, received      int64
		p50, p95, jitter    float64
		outage              bool
	}
	totalRow struct {
		site, probe, method ref
		sent, received      int64
		outages             [len(causes)]int64
		outageSeconds       [len(causes)]float64
	}
	dnsRow struct {
		site, probe, resolver, name ref
		success                     bool
		seconds                     float64
	}
	httpRow struct {
		site, probe, name ref
		success           bool
		status            int
		phases            [len(httpPhases)]float64
		cert              float64
	}
	wifiRow struct {
		site, probe, iface, ssid, band ref
		signal, rate, hertz            float64
	}
	agentRow struct {
		site   ref
		info   [4]ref
		v      [len(agentFigures)]float64
		budget int64
	}
)

// agentFigures are the families of an agent's figures, in the order
// agentRow.v has them.
var agentFigures = [...]struct {
	fam *exposition.Family
	get func(a *agentState) float64
}{
	{famUp, func(a *agentState) float64 { return b2f(a.online) }},
	{famLastSeen, func(a *agentState) float64 { return unixNano(a.lastSeen) }},
	{famBacklog, func(a *agentState) float64 { return float64(a.counts[countBacklog]) }},
	{famDropped, func(a *agentState) float64 { return float64(a.counts[countDropped]) }},
	{famStart, func(a *agentState) float64 { return a.start }},
	{famClock, func(a *agentState) float64 { return b2f(!a.unsynced) }},
	{famBudgetUsed, func(a *agentState) float64 { return float64(a.counts[countDataUsed]) }},
	{famSkipped, func(a *agentState) float64 { return float64(a.counts[countSkipped]) }},
	{famShortened, func(a *agentState) float64 { return float64(a.counts[countShortened]) }},
	{famLost, func(a *agentState) float64 { return float64(a.counts[countLost]) }},
}

// value returns f's value, or NaN for none.
func (f figure) value() float64 {
	if !f.ok() {
		return math.NaN()
	}
	return f.v
}

// time returns when f was measured (Unix time), or NaN for none.
func (f figure) time() float64 {
	if !f.ok() {
		return math.NaN()
	}
	return unixNano(f.at)
}

func newSpeedRow(site, probe ref, s *speedState, ar *exposition.Arena) speedRow {
	r := speedRow{site: site, probe: probe, down: s.download.value() / 8, up: s.upload.value() / 8, latency: s.latency.value(),
		downAt: s.download.time(), upAt: s.upload.time(), lastSuccess: math.NaN(),
		loaded:  [2]float64{s.loadedDown.value(), s.loadedUp.value()},
		added:   [2]float64{s.addedDown.value(), s.addedUp.value()},
		success: s.success, graded: s.graded}
	if s.graded {
		r.grade = ar.Add(s.grade.l)
	}
	if s.lastSuccess != 0 {
		r.lastSuccess = unixNano(s.lastSuccess)
	}
	return r
}

func newAgentRow(site ref, a *agentState, ar *exposition.Arena) agentRow {
	r := agentRow{site: site, budget: a.budget, info: [4]ref{ar.Add(a.id), ar.Add(a.version.l), ar.Add(a.os.l), ar.Add(a.arch.l)}}
	for i, f := range agentFigures {
		r.v[i] = f.get(a)
	}
	return r
}

// room is what flatten makes room for, a site: rows of each kind (up to
// twice the default probes) and bytes of label text. It is address space:
// only what the rows fill takes memory; a fleet that needs more goes on in
// the Go heap.
const (
	roomLabels, roomSpeeds, roomLines, roomTotals = 320, 2, 2, 2
	roomDNS, roomHTTP, roomWiFi, roomAgents       = 4, 6, 1, 1
)

// kinds are kinds of rows, as flatten makes them.
type kinds uint8

const (
	kindSpeeds kinds = 1 << iota
	kindLines        // line quality, and its totals
	kindLight        // DNS, HTTP and Wi-Fi
	kindAgents
)

// room returns how many rows of a kind flatten makes room for, a site:
// per if ks has kind, else none.
func (ks kinds) room(kind kinds, per int) int {
	if ks&kind == 0 {
		return 0
	}
	return per
}

// A pass makes the rows of some kinds and writes them.
type pass struct {
	kinds kinds
	write func(w *exposition.Writer, r *rows)
}

// passes are a scrape's passes over the fleet, in the order it writes
// them: each flattens its kinds of rows, writes them and frees them before
// the next. At 20,000 sites with the default probes, the rows of all kinds
// take 17.6 MB, those of the first pass 9.3 and of the second 9.0: one
// more pass over the sites' records (5-10 % of a scrape's CPU) for 8 MB
// less at the collector's peak, which a scrape during ingest sets.
var passes = [...]pass{
	{kindSpeeds | kindLines | kindAgents, func(w *exposition.Writer, r *rows) {
		writeSpeeds(w, r.labels, r.speeds)
		writeLines(w, r.labels, r.lines, r.totals)
		writeAgents(w, r.labels, r.agents)
	}},
	{kindLight, func(w *exposition.Writer, r *rows) { writeLight(w, r.labels, r) }},
}

// flatten makes the rows of kinds ks of snap in a Region of their own (the
// text and the rows hold no pointers), which the caller frees once it has
// written them.
func flatten(snap []*siteState, ks kinds) (*rows, *offheap.Region) {
	n := len(snap)
	speeds, lines, totals := ks.room(kindSpeeds, roomSpeeds)*n, ks.room(kindLines, roomLines)*n, ks.room(kindLines, roomTotals)*n
	dns, http, wifi := ks.room(kindLight, roomDNS)*n, ks.room(kindLight, roomHTTP)*n, ks.room(kindLight, roomWiFi)*n
	agents := ks.room(kindAgents, roomAgents) * n
	reg := offheap.New(roomLabels*n + speeds*int(unsafe.Sizeof(speedRow{})) + lines*int(unsafe.Sizeof(lineRow{})) +
		totals*int(unsafe.Sizeof(totalRow{})) + dns*int(unsafe.Sizeof(dnsRow{})) + http*int(unsafe.Sizeof(httpRow{})) +
		wifi*int(unsafe.Sizeof(wifiRow{})) + agents*int(unsafe.Sizeof(agentRow{})) + 4096) // 4096: alignment
	r := &rows{labels: exposition.NewArenaOn(reg.Bytes(0, roomLabels*n)), speeds: offheap.Slice[speedRow](reg, 0, speeds),
		lines: offheap.Slice[lineRow](reg, 0, lines), totals: offheap.Slice[totalRow](reg, 0, totals),
		dns: offheap.Slice[dnsRow](reg, 0, dns), http: offheap.Slice[httpRow](reg, 0, http),
		wifi: offheap.Slice[wifiRow](reg, 0, wifi), agents: offheap.Slice[agentRow](reg, 0, agents)}
	ar := r.labels
	for i, s := range snap {
		if i%touchBatch == 0 {
			r.touched += touch(snap[i:min(i+touchBatch, len(snap))])
		}
		site := ar.Add(s.label)
		if ks&kindAgents != 0 && s.agent != nil {
			r.agents = append(r.agents, newAgentRow(site, s.agent, ar))
		}
		for i := range s.probes {
			p := &s.probes[i]
			if p.speed == nil && ks&(kindLines|kindLight) == 0 {
				continue
			}
			probe := ar.Add(p.name.l)
			if ks&kindSpeeds != 0 && p.speed != nil {
				r.speeds = append(r.speeds, newSpeedRow(site, probe, p.speed, ar))
			}
			if ks&(kindLines|kindLight) != 0 {
				r.addStreams(ks, site, probe, p)
			}
		}
	}
	ar.Done()
	return r, reg
}

// addStreams adds the rows of kinds ks (kindLines, kindLight) of probe p.
func (r *rows) addStreams(ks kinds, site, probe ref, p *probeState) {
	ar := r.labels
	for i := range p.streams {
		st := &p.streams[i]
		if ks&kindLines != 0 {
			if l := st.line(); l != nil {
				r.lines = append(r.lines, lineRow{site: site, probe: probe, method: ar.Add(st.variant.l), sent: l.sent, received: l.received,
					p50: l.p50, p95: l.p95, jitter: l.jitter, outage: l.outage})
			}
		}
		if ks&kindLight == 0 {
			continue
		}
		if x := st.wifi(); x != nil {
			r.wifi = append(r.wifi, wifiRow{site: site, probe: probe, iface: ar.Add(x.iface.l), ssid: ar.Add(x.ssid.l), band: ar.Add(x.band.l),
				signal: x.signal, rate: x.rate, hertz: x.hertz})
		}
		for _, d := range st.dns() {
			r.dns = append(r.dns, dnsRow{site: site, probe: probe, resolver: ar.Add(d.resolver.l), name: ar.Add(d.name.l),
				success: d.success, seconds: d.seconds})
		}
		for _, h := range st.http() {
			r.http = append(r.http, httpRow{site: site, probe: probe, name: ar.Add(h.name.l), success: h.success, status: int(h.status),
				phases: h.phases, cert: h.cert})
		}
	}
	if ks&kindLines != 0 {
		for i := range p.totals {
			t := &p.totals[i]
			r.totals = append(r.totals, totalRow{site: site, probe: probe, method: ar.Add(t.method.l), sent: t.sent, received: t.received,
				outages: t.outages, outageSeconds: t.outageSeconds})
		}
	}
}

// touchBatch is how many sites touch reads ahead of flatten.
const touchBatch = 32

// touch reads what flatten will read of a batch of sites, level by level
// (the site, then its probes, then their figures): a read waits on memory
// (the records of 20,000 sites are scattered in the heap), and reads that
// do not depend on each other wait together, where flatten, one site after
// another, would wait for each in turn. It returns a sum of what it read.
func touch(batch []*siteState) int {
	n := 0
	for _, s := range batch {
		n += len(s.probes)
	}
	for _, s := range batch {
		if len(s.id) > 0 {
			n += int(s.id[0])
		}
		if a := s.agent; a != nil {
			n += int(a.budget)
		}
		for i := range s.probes {
			p := &s.probes[i]
			n += len(p.streams) + len(p.totals)
			if p.speed != nil {
				n += int(p.speed.lastSuccess)
			}
		}
	}
	for _, s := range batch {
		for i := range s.probes {
			p := &s.probes[i]
			for j := range p.streams {
				st := &p.streams[j]
				n += st.n
				if l := st.line(); l != nil {
					n += int(l.sent)
				}
			}
			for j := range p.totals {
				n += int(p.totals[j].sent)
			}
		}
	}
	for _, s := range batch {
		for i := range s.probes {
			for j := range s.probes[i].streams {
				st := &s.probes[i].streams[j]
				if d := st.dns(); len(d) > 0 {
					n += int(d[len(d)-1].seconds)
				}
				if h := st.http(); len(h) > 0 {
					n += int(h[0].status + h[len(h)-1].status)
				}
			}
		}
	}
	return n
}

// WriteSeries writes the series of every site to w, from a snapshot taken
// when it starts. It may be called concurrently with everything else.
//
// The rows it writes from are made outside the Go heap (package offheap),
// a pass at a time, and given back once written: a scrape costs the
// collector's heap nothing that outlives it.
func (f *Fleet) WriteSeries(w *exposition.Writer) {
	snap := f.snapshot()
	for _, p := range passes {
		p.run(w, snap)
	}
}

// run flattens the pass's rows of snap, writes them to w and frees them
// (a panic in the writing, a bug, does not leave them mapped).
func (p pass) run(w *exposition.Writer, snap []*siteState) {
	r, reg := flatten(snap, p.kinds)
	defer reg.Free()
	p.write(w, r)
}

func writeSpeeds(w *exposition.Writer, ar *exposition.Arena, speeds []speedRow) {
	for _, fig := range []struct {
		fam *exposition.Family
		get func(r *speedRow) float64
	}{
		{famDownload, func(r *speedRow) float64 { return r.down }},
		{famUpload, func(r *speedRow) float64 { return r.up }},
		{famLatency, func(r *speedRow) float64 { return r.latency }},
	} {
		for i := range speeds {
			r := &speeds[i]
			if v := fig.get(r); !math.IsNaN(v) {
				w.SampleLabels(fig.fam, v, ar.Label(r.site), ar.Label(r.probe))
			}
		}
	}
	for i := range speeds {
		r := &speeds[i]
		if !math.IsNaN(r.downAt) {
			w.SampleLabels(famFigureTime, r.downAt, ar.Label(r.site), ar.Label(r.probe), lDownload)
		}
		if !math.IsNaN(r.upAt) {
			w.SampleLabels(famFigureTime, r.upAt, ar.Label(r.site), ar.Label(r.probe), lUpload)
		}
	}
	for i := range speeds {
		r := &speeds[i]
		w.SampleLabels(famSuccess, b2f(r.success), ar.Label(r.site), ar.Label(r.probe))
	}
	for i := range speeds {
		if r := &speeds[i]; !math.IsNaN(r.lastSuccess) {
			w.SampleLabels(famLastSuccess, r.lastSuccess, ar.Label(r.site), ar.Label(r.probe))
		}
	}
	for _, dir := range []struct {
		fam *exposition.Family
		get func(r *speedRow) *[2]float64
	}{
		{famLoaded, func(r *speedRow) *[2]float64 { return &r.loaded }},
		{famAdded, func(r *speedRow) *[2]float64 { return &r.added }},
	} {
		for i := range speeds {
			r := &speeds[i]
			for d, v := range dir.get(r) {
				if !math.IsNaN(v) {
					w.SampleLabels(dir.fam, v, ar.Label(r.site), ar.Label(r.probe), lDirections[d])
				}
			}
		}
	}
	for i := range speeds {
		if r := &speeds[i]; r.graded {
			w.SampleLabels(famGrade, 1, ar.Label(r.site), ar.Label(r.probe), ar.Label(r.grade))
		}
	}
}

func writeLines(w *exposition.Writer, ar *exposition.Arena, lines []lineRow, totals []totalRow) {
	for i := range lines {
		r := &lines[i]
		if r.sent > 0 {
			w.SampleLabels(famLQLoss, float64(r.sent-r.received)/float64(r.sent), ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method))
		}
	}
	for i := range lines {
		r := &lines[i]
		if !math.IsNaN(r.p50) {
			w.SampleLabels(famLQRTT, r.p50, ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method), lP50)
		}
		if !math.IsNaN(r.p95) {
			w.SampleLabels(famLQRTT, r.p95, ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method), lP95)
		}
	}
	for i := range lines {
		r := &lines[i]
		if !math.IsNaN(r.jitter) {
			w.SampleLabels(famLQJitter, r.jitter, ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method))
		}
	}
	for i := range lines {
		r := &lines[i]
		w.SampleLabels(famLQOutage, b2f(r.outage), ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method))
	}
	for i := range totals {
		r := &totals[i]
		w.SampleLabels(famLQSentTotal, float64(r.sent), ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method))
	}
	for i := range totals {
		r := &totals[i]
		w.SampleLabels(famLQLostTotal, float64(r.sent-r.received), ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method))
	}
	for i := range totals {
		r := &totals[i]
		for c := range causes {
			w.SampleLabels(famLQOutagesTotal, float64(r.outages[c]), ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method), lCauses[c])
		}
	}
	for i := range totals {
		r := &totals[i]
		for c := range causes {
			w.SampleLabels(famLQOutageSecondsTotal, r.outageSeconds[c], ar.Label(r.site), ar.Label(r.probe), ar.Label(r.method), lCauses[c])
		}
	}
}

func writeLight(w *exposition.Writer, ar *exposition.Arena, r *rows) {
	for i := range r.dns {
		x := &r.dns[i]
		w.SampleLabels(famDNSSuccess, b2f(x.success), ar.Label(x.site), ar.Label(x.probe), ar.Label(x.resolver), ar.Label(x.name))
	}
	for i := range r.dns {
		x := &r.dns[i]
		if !math.IsNaN(x.seconds) {
			w.SampleLabels(famDNSSeconds, x.seconds, ar.Label(x.site), ar.Label(x.probe), ar.Label(x.resolver), ar.Label(x.name))
		}
	}
	for i := range r.http {
		x := &r.http[i]
		w.SampleLabels(famHTTPSuccess, b2f(x.success), ar.Label(x.site), ar.Label(x.probe), ar.Label(x.name))
	}
	for i := range r.http {
		x := &r.http[i]
		if x.status > 0 {
			w.SampleLabels(famHTTPStatus, float64(x.status), ar.Label(x.site), ar.Label(x.probe), ar.Label(x.name))
		}
	}
	for i := range r.http {
		x := &r.http[i]
		for ph, v := range x.phases {
			if !math.IsNaN(v) {
				w.SampleLabels(famHTTPPhase, v, ar.Label(x.site), ar.Label(x.probe), ar.Label(x.name), lPhases[ph])
			}
		}
	}
	for i := range r.http {
		x := &r.http[i]
		if !math.IsNaN(x.cert) {
			w.SampleLabels(famHTTPCert, x.cert, ar.Label(x.site), ar.Label(x.probe), ar.Label(x.name))
		}
	}
	for _, fig := range []struct {
		fam *exposition.Family
		get func(w *wifiRow) float64
	}{
		{famWiFiSignal, func(w *wifiRow) float64 { return w.signal }},
		{famWiFiRate, func(w *wifiRow) float64 { return w.rate }},
		{famWiFiFreq, func(w *wifiRow) float64 { return w.hertz }},
	} {
		for i := range r.wifi {
			x := &r.wifi[i]
			if v := fig.get(x); !math.IsNaN(v) {
				w.SampleLabels(fig.fam, v, ar.Label(x.site), ar.Label(x.probe))
			}
		}
	}
	for i := range r.wifi {
		x := &r.wifi[i]
		w.SampleLabels(famWiFiInfo, 1, ar.Label(x.site), ar.Label(x.probe), ar.Label(x.iface), ar.Label(x.ssid), ar.Label(x.band))
	}
}

func writeAgents(w *exposition.Writer, ar *exposition.Arena, agents []agentRow) {
	for f, fig := range agentFigures {
		for i := range agents {
			r := &agents[i]
			w.SampleLabels(fig.fam, r.v[f], ar.Label(r.site))
		}
	}
	for i := range agents {
		r := &agents[i]
		w.SampleLabels(famInfo, 1, ar.Label(r.site), ar.Label(r.info[0]), ar.Label(r.info[1]), ar.Label(r.info[2]), ar.Label(r.info[3]))
	}
	for i := range agents {
		if r := &agents[i]; r.budget > 0 {
			w.SampleLabels(famBudget, float64(r.budget), ar.Label(r.site))
		}
	}
}
