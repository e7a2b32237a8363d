package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hubmon/hubmon/bench/internal/fleetsim"
	"github.com/hubmon/hubmon/bench/internal/rig"
)

const password = "bench-load-secret"

// bench holds the settings of one run and where figures go.
type bench struct {
	bin, repo     string
	conns         int
	ceilingCount  int // messages per broker-ceiling measurement
	liveCount     int // messages of the live ingest phase
	backlogCount  int // messages queued while the collector is paused
	history       int // messages a site committed before live and backlog (-history)
	historyPhases []string
	e2eDuration   time.Duration
	scrapes       int
	agentFirstRun time.Duration
	agentTestTime time.Duration
	keep          bool
	collectorEnv  []string
	runs          int         // -runs: each fleet size run this many times
	run           int         // the run going on, from 1 (-runs > 1)
	figures       []runFigure // every figure emitted (-runs > 1), for summarise
	out           io.Writer
	log           *slog.Logger
	tmp           string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory holding hubmon-collector and hubmon-agent (make build)")
	repo := fs.String("repo", ".", "the repository root (for deploy/mosquitto)")
	sitesFlag := fs.String("sites", "1000,10000,20000", "fleet sizes, comma-separated")
	quick := fs.Bool("quick", false, "a smoke run: 200 sites, a few thousand messages, a short agent speed test")
	conns := fs.Int("connections", 4, "the simulator's publishing connections")
	live := fs.Int("live", 100000, "messages in the live ingest phase")
	backlog := fs.Int("backlog", 100000, "messages queued while the collector is paused (the broker queues at most 200,000)")
	ceiling := fs.Int("ceiling", 50000, "messages per broker-ceiling measurement")
	e2e := fs.Duration("e2e", 20*time.Second, "how long to publish at the fleet's nominal rate for the end-to-end delay")
	scrapes := fs.Int("scrapes", 5, "scrapes of /metrics to time")
	runs := fs.Int("runs", 1, "run each fleet size this many times, then print each figure's median, min and max over the runs (runs on 2 shared cores differ by 10-20 %)")
	agent := fs.Bool("agent", true, "measure the agent's footprint (idle and during a speed test)")
	keep := fs.Bool("keep", false, "keep the working directory (logs, databases)")
	var collectorEnv []string
	fs.Func("collector-env", "NAME=value added to the collector's environment (repeatable), e.g. GOMEMLIMIT=140MiB", func(v string) error {
		if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
			return fmt.Errorf("%q is not NAME=value", v)
		}
		collectorEnv = append(collectorEnv, v)
		return nil
	})
	history := fs.Int("history", 0, "messages a site committed, after the warm-up, before the live and backlog phases: a history whose indexes are as wide as the fleet, as after weeks of running (0: a fresh history)")
	timeout := fs.Duration("timeout", 45*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b := &bench{conns: *conns, ceilingCount: *ceiling, liveCount: *live, backlogCount: *backlog, history: *history, e2eDuration: *e2e,
		scrapes: *scrapes, agentFirstRun: 15 * time.Second, agentTestTime: 10 * time.Second, keep: *keep, collectorEnv: collectorEnv, runs: *runs, out: stdout,
		log: slog.New(slog.NewTextHandler(stderr, nil))}
	var sites []int
	for _, f := range strings.Split(*sitesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "load: -sites: %q is not a fleet size\n", f)
			return 2
		}
		sites = append(sites, n)
	}
	if *quick {
		sites = []int{200}
		b.ceilingCount, b.liveCount, b.backlogCount, b.e2eDuration, b.scrapes = 2000, 3000, 3000, 4*time.Second, 3
		b.agentFirstRun, b.agentTestTime = 6*time.Second, 2*time.Second
	}
	if b.runs < 1 {
		fmt.Fprintf(stderr, "load: -runs: %d is not a number of runs\n", b.runs)
		return 2
	}
	if b.backlogCount > 150000 {
		fmt.Fprintln(stderr, "load: -backlog at most 150000: the broker drops what is queued beyond max_queued_messages (200,000)")
		return 2
	}
	var err error
	if b.bin, err = filepath.Abs(*bin); err == nil {
		b.repo, err = filepath.Abs(*repo)
	}
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	}
	for _, name := range []string{"hubmon-collector", "hubmon-agent"} {
		if _, err := os.Stat(filepath.Join(b.bin, name)); err != nil {
			fmt.Fprintf(stderr, "load: %v (run make build first)\n", err)
			return 2
		}
	}
	if b.tmp, err = os.MkdirTemp("", "hubmon-bench-load-"); err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 1
	}
	if b.keep {
		b.log.Info("keeping the working directory", "dir", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	b.log.Info("load benchmark", "sites", sites, "cores", runtime.NumCPU(), "loadavg", loadavg())
	failed := false
	for r := range b.runs {
		if b.runs > 1 {
			b.run = r + 1
		}
		for _, n := range sites {
			if err := b.fleet(ctx, n); err != nil {
				b.log.Error("fleet run failed", "sites", n, "run", b.run, "err", err)
				failed = true
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	b.run = 0
	b.summarise()
	if *agent && ctx.Err() == nil {
		if err := b.agent(ctx); err != nil {
			b.log.Error("agent footprint failed", "err", err)
			failed = true
		}
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

// emit prints one figure: {"figure":..,"sites":..,"value":.., extra fields
// sorted, "loadavg":[1m,5m,15m]}.
func (b *bench) emit(figure string, sites int, value float64, extra map[string]any) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"figure":%q`, figure)
	if sites > 0 {
		fmt.Fprintf(&buf, `,"sites":%d`, sites)
	}
	v, _ := json.Marshal(round(value))
	fmt.Fprintf(&buf, `,"value":%s`, v)
	if extra == nil {
		extra = map[string]any{}
	}
	if len(b.collectorEnv) > 0 { // a figure under other settings says so
		extra["collector_env"] = strings.Join(b.collectorEnv, " ")
	}
	if b.history > 0 && sites > 0 { // and one on a history filled first
		extra["history_messages_per_site"] = b.history
	}
	if b.run > 0 { // one of several runs (-runs)
		extra["run"] = b.run
		b.figures = append(b.figures, runFigure{name: figure, sites: sites, kind: figureKind(extra), value: value, extra: extra})
	}
	writeExtra(&buf, extra)
	fmt.Fprintln(b.out, buf.String())
}

// runFigure is one figure emitted in one of several runs.
type runFigure struct {
	name  string
	sites int
	kind  string // figureKind
	value float64
	extra map[string]any
}

// kindFields are the fields that tell apart the figures of one name and
// fleet size in a run: the ingest mode, the ceiling's subscriber.
var kindFields = []string{"mode", "subscriber"}

// figureKind is a figure's kindFields, as one string.
func figureKind(extra map[string]any) string {
	var k []string
	for _, name := range kindFields {
		if v, ok := extra[name].(string); ok {
			k = append(k, name+"="+v)
		}
	}
	return strings.Join(k, " ")
}

// summarise prints, after several runs, each figure's median over them,
// with "statistic":"median", "runs", "min" and "max", and the same of the
// ingest peak, CPU per message and CPU per scrape where a figure has them.
func (b *bench) summarise() {
	type key struct {
		name  string
		sites int
		kind  string
	}
	var order []key
	byKey := map[key][]runFigure{}
	for _, f := range b.figures {
		k := key{f.name, f.sites, f.kind}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], f)
	}
	for _, k := range order {
		fs := byKey[k]
		extra := map[string]any{"statistic": "median", "runs": len(fs)}
		for _, name := range kindFields {
			if v, ok := fs[0].extra[name]; ok {
				extra[name] = v
			}
		}
		med, lo, hi := spread(fs, func(f runFigure) (float64, bool) { return f.value, true })
		extra["min"], extra["max"] = lo, hi
		for _, name := range []string{"ingest_peak_rss_bytes", "collector_cpu_ms_per_message", "cpu_seconds_per_scrape"} {
			m, l, h := spread(fs, func(f runFigure) (float64, bool) { return number(f.extra[name]) })
			if !math.IsNaN(m) {
				extra[name], extra[name+"_min"], extra[name+"_max"] = m, l, h
			}
		}
		b.emit(k.name, k.sites, med, extra)
	}
}

// number returns v as a float64, if it is a number.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

// spread returns the median (nearest rank: of an even number of runs, the
// lower middle one), min and max of what get returns of fs; NaN where it
// returns nothing, or NaN, for every one.
func spread(fs []runFigure, get func(runFigure) (float64, bool)) (median, lo, hi float64) {
	var vs []float64
	for _, f := range fs {
		if v, ok := get(f); ok && !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	q := fleetsim.Summarise(vs) // sorts vs
	return q.P50, vs[0], q.Max
}

// check prints a line that is not a figure (a delivery check, say).
func (b *bench) check(name string, sites int, extra map[string]any) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"check":%q,"sites":%d`, name, sites)
	writeExtra(&buf, extra)
	fmt.Fprintln(b.out, buf.String())
}

func writeExtra(buf *bytes.Buffer, extra map[string]any) {
	if extra == nil {
		extra = map[string]any{}
	}
	extra["loadavg"] = loadavg()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := extra[k]
		if f, ok := v.(float64); ok {
			v = round(f)
		}
		fmt.Fprintf(buf, `,%q:%s`, k, marshal(v))
	}
	buf.WriteString("}")
}

// marshal is json.Marshal without HTML escaping ("<pid>" stays readable).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		enc.Encode(fmt.Sprint(v))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// round keeps 4 significant digits of a fraction (a count stays whole);
// NaN and Inf become nil (JSON null).
func round(v float64) any {
	if v != v || v > 1e300 || v < -1e300 {
		return nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return int64(v)
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return f
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

// selfCPU is this process's CPU seconds: the load generator's.
func selfCPU() float64 {
	u, _ := rig.ReadUsage(os.Getpid())
	return u.CPUSeconds
}

// fleet measures one fleet size.
func (b *bench) fleet(ctx context.Context, n int) error {
	dir := filepath.Join(b.tmp, fmt.Sprintf("sites-%d", n))
	if b.run > 0 {
		dir += fmt.Sprintf("-run-%d", b.run) // each run from a fresh broker and history
	}
	if !b.keep {
		defer os.RemoveAll(dir) // last: after the broker and collector stop
	}
	b.log.Info("fleet", "sites", n, "loadavg", loadavg())
	broker, err := rig.StartBroker(rig.BrokerOptions{RepoRoot: b.repo, Dir: filepath.Join(dir, "broker"), Password: password,
		SimPublishers: b.conns, Readers: []string{ceilingPaho, ceilingSub}})
	if err != nil {
		return err
	}
	defer broker.Stop(10 * time.Second)
	opts := fleetsim.Options{BrokerURL: broker.URL, Sites: n, SitePrefix: "hub", Seed: uint64(n),
		Acks: &fleetsim.Credential{Username: rig.SimAcksUser, Password: password}, Logger: b.log}
	for i := range b.conns {
		opts.Publishers = append(opts.Publishers, fleetsim.Credential{Username: rig.SimPublisher(i), Password: password})
	}
	sim, err := fleetsim.New(opts)
	if err != nil {
		return err
	}
	defer sim.Close()

	// 1. the broker alone, before the collector has a session on it
	if err := b.ceiling(ctx, n, broker, sim); err != nil {
		return fmt.Errorf("broker ceiling: %w", err)
	}

	// 2. the collector
	coll, err := rig.StartCollector(rig.CollectorOptions{Bin: filepath.Join(b.bin, "hubmon-collector"), Dir: filepath.Join(dir, "collector"),
		BrokerURL: broker.URL, Password: password, Env: b.collectorEnv})
	if err != nil {
		return err
	}
	defer func() {
		if err := coll.Stop(30 * time.Second); err != nil {
			b.log.Error("collector stop", "err", err)
		}
	}()
	m := &meter{coll: coll, broker: broker}

	// 3. ingest: every site's first report of each probe, then live, then
	// a backlog queued by the broker while the collector is stopped. No
	// scrape until they are done: at 20,000 sites one costs seconds of CPU
	// and hundreds of MB, which would blur their CPU and peak memory.
	modes := []string{"warmup", "live", "backlog"}
	if b.history > 0 {
		modes = []string{"warmup", "history", "live", "backlog"}
	}
	for _, mode := range modes {
		if mode == "history" {
			if err := b.fillHistory(ctx, n, sim, m); err != nil {
				return err
			}
			continue
		}
		if err := b.ingest(ctx, n, sim, m, mode, coll); err != nil {
			return err
		}
	}
	ingestHWM := m.phases["backlog"].hwm
	// 5. end-to-end delay at the fleet's own rate
	if err := b.e2e(ctx, n, sim, coll, m); err != nil {
		return err
	}
	// 6. /metrics
	if err := b.scrape(n, coll); err != nil {
		return err
	}
	// 7. memory and CPU over the whole run, and what reached the history
	u, err := coll.Usage()
	if err != nil {
		return err
	}
	b.emit("collector_peak_rss_bytes", n, float64(u.HWMBytes), map[string]any{"rss_bytes": u.RSSBytes,
		"ingest_peak_rss_bytes": ingestHWM, "hwm_after_warmup_bytes": m.phases["warmup"].hwm, "hwm_after_live_bytes": m.phases["live"].hwm,
		"hwm_after_e2e_bytes": m.phases["e2e"].hwm,
		"note":                "VmHWM at the end of the run (scrapes included); ingest_peak_rss_bytes is VmHWM after warm-up, live and backlog, before any scrape"})
	b.emit("collector_cpu_seconds", n, u.CPUSeconds, map[string]any{"warmup_cpu_seconds": m.phases["warmup"].coll,
		"live_cpu_seconds": m.phases["live"].coll, "backlog_cpu_seconds": m.phases["backlog"].coll, "e2e_cpu_seconds": m.phases["e2e"].coll,
		"note": "whole run: warm-up, live, backlog, end-to-end, scrapes"})
	return b.delivery(n, sim, coll)
}

// meter reads CPU seconds of the collector, the broker and this process
// (the load generator) around a phase.
type meter struct {
	coll   *rig.Collector
	broker *rig.Broker
	t0     cpu
	phases map[string]cpu
}

// cpu is CPU seconds used, and the collector's peak RSS (VmHWM) so far.
type cpu struct {
	coll, broker, self float64
	hwm                int64
}

func (m *meter) read() cpu {
	var c cpu
	if m.coll != nil {
		u, _ := m.coll.Usage()
		c.coll, c.hwm = u.CPUSeconds, u.HWMBytes
	}
	u, _ := m.broker.Usage()
	c.broker, c.self = u.CPUSeconds, selfCPU()
	return c
}

func (m *meter) start() { m.t0 = m.read() }

// ingestFigures are the CPU and memory figures of an ingest line that
// committed messages.
func (c cpu) ingestFigures(messages int) map[string]any {
	return map[string]any{"collector_cpu_seconds": c.coll, "broker_cpu_seconds": c.broker, "loadgen_cpu_seconds": c.self,
		"collector_cpu_ms_per_message": 1000 * c.coll / float64(messages), "collector_hwm_bytes": c.hwm}
}

func (m *meter) stop() cpu {
	c := m.read()
	return cpu{coll: c.coll - m.t0.coll, broker: c.broker - m.t0.broker, self: c.self - m.t0.self, hwm: c.hwm}
}

func (m *meter) record(name string, c cpu) {
	if m.phases == nil {
		m.phases = map[string]cpu{}
	}
	m.phases[name] = c
}

// counts are the collector's own counters.
type counts struct {
	stored, duplicate float64 // measurements
	statuses          float64 // stored or stale
	statusesRejected  float64
	commits           float64 // history transactions
	commitSeconds     float64
	batched           float64 // messages in those transactions
}

// counters reads the collector's counters from /metrics.
func counters(coll *rig.Collector) (counts, error) {
	s, err := coll.Scrape()
	if err != nil {
		s, err = coll.Scrape() // once more: at 20,000 sites a scrape can time out (503)
	}
	if err != nil {
		return counts{}, err
	}
	const msgs = "hubmon_collector_messages_total"
	return counts{
		stored:           rig.Sum(s.Body, msgs, "kind=measurement", "result=stored"),
		duplicate:        rig.Sum(s.Body, msgs, "kind=measurement", "result=duplicate"),
		statuses:         rig.Sum(s.Body, msgs, "kind=status", "result=stored") + rig.Sum(s.Body, msgs, "kind=status", "result=stale"),
		statusesRejected: rig.Sum(s.Body, msgs, "kind=status", "result=rejected"),
		commits:          rig.Sum(s.Body, "hubmon_collector_store_commit_seconds_count"),
		commitSeconds:    rig.Sum(s.Body, "hubmon_collector_store_commit_seconds_sum"),
		batched:          rig.Sum(s.Body, "hubmon_collector_store_batch_messages_sum"),
	}, nil
}

// ingest runs one ingest phase and emits its rate: "warmup" (every site's
// first report of each probe), "live" (the simulator publishing as fast as
// the broker takes messages) or "backlog" (the collector stopped with SIGSTOP
// while the simulator publishes, then continued: the rate is the drain).
func (b *bench) ingest(ctx context.Context, n int, sim *fleetsim.Sim, m *meter, mode string, coll *rig.Collector) error {
	ph := fleetsim.Phase{Name: mode, Count: b.liveCount, Track: true,
		// the collector's keep-alive is 30 s: paused for more than 45 s, the
		// broker would drop its connection (the session stays)
		Duration: 30 * time.Second}
	switch mode {
	case "warmup":
		ph.Count, ph.Kinds, ph.Duration = len(fleetsim.Mix)*n, fleetsim.EveryKind, 0
	case "backlog":
		ph.Count = b.backlogCount
	}
	pause := mode == "backlog"
	b.log.Info("ingest", "sites", n, "mode", mode, "messages", ph.Count)
	m.start()
	if pause {
		if err := coll.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
	}
	res, runErr := sim.Run(ctx, ph)
	from := res.Start
	if pause {
		from = time.Now()
		if err := coll.Signal(syscall.SIGCONT); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	// at 20,000 sites the warm-up takes minutes: every probe the collector
	// meets for the first time costs a scan of every probe it knows
	r := sim.WaitAcks(ctx, mode, 15*time.Minute)
	c := m.stop()
	m.record(mode, c)
	secs := r.LastAck.Sub(from).Seconds()
	extra := c.ingestFigures(r.Acked + r.Statuses)
	maps.Copy(extra, map[string]any{"mode": mode, "messages": r.Acked + r.Statuses, "measurements_acked": r.Acked, "statuses": r.Statuses,
		"seconds": secs, "measurements_per_second": float64(r.Acked) / secs,
		"unacked": r.Unacked, "rejected": r.Rejected, "publish_messages_per_second": res.PublishRate(),
		"ack_delay_p50_seconds": r.AckDelay.P50, "ack_delay_p99_seconds": r.AckDelay.P99})
	switch mode {
	case "warmup":
		extra["note"] = "every site's first report of each probe (status, line, dns, services, local): messages / (last ack - first publish)"
	case "backlog":
		extra["paused_seconds"] = from.Sub(res.Start).Seconds()
		extra["note"] = "drain after SIGCONT: messages / (last ack - SIGCONT)"
	default:
		extra["note"] = "messages / (last ack - first publish), simulator publishing as fast as the broker takes"
	}
	b.emit("ingest_messages_per_second", n, float64(r.Acked+r.Statuses)/secs, extra)
	if r.Unacked > 0 || r.Rejected > 0 {
		return fmt.Errorf("%s: %d unacknowledged, %d rejected of %d", mode, r.Unacked, r.Rejected, r.Tracked)
	}
	return nil
}

// historyChunk is how many messages fillHistory publishes before waiting
// for their acks: the bench broker queues at most 200,000 for the collector
// and drops the rest.
const historyChunk = 100000

// fillHistory commits b.history messages a site (-history), in chunks, and
// emits the rate as an ingest line with mode "history".
func (b *bench) fillHistory(ctx context.Context, n int, sim *fleetsim.Sim, m *meter) error {
	total := b.history * n
	b.log.Info("ingest", "sites", n, "mode", "history", "messages", total)
	m.start()
	var first, last time.Time
	acked, statuses := 0, 0
	for i := 0; total > 0; i++ {
		name := fmt.Sprintf("history-%d", i)
		b.historyPhases = append(b.historyPhases, name)
		res, err := sim.Run(ctx, fleetsim.Phase{Name: name, Count: min(total, historyChunk), Track: true})
		if err != nil {
			return err
		}
		r := sim.WaitAcks(ctx, name, 15*time.Minute)
		if r.Unacked > 0 || r.Rejected > 0 {
			return fmt.Errorf("%s: %d unacknowledged, %d rejected of %d", name, r.Unacked, r.Rejected, r.Tracked)
		}
		if first.IsZero() {
			first = res.Start
		}
		last = r.LastAck
		acked, statuses = acked+r.Acked, statuses+r.Statuses
		total -= min(total, historyChunk)
	}
	c := m.stop()
	m.record("history", c)
	secs := last.Sub(first).Seconds()
	extra := c.ingestFigures(acked + statuses)
	maps.Copy(extra, map[string]any{"mode": "history", "messages": acked + statuses, "seconds": secs,
		"note": fmt.Sprintf("filling the history (-history %d a site) in chunks of %d, each built, published and acknowledged in turn: messages / (last ack - first publish)", b.history, historyChunk)})
	b.emit("ingest_messages_per_second", n, float64(acked+statuses)/secs, extra)
	return nil
}

// scrape times /metrics when nothing else is going on. A scrape that fails
// (the collector answers 503 when gathering takes longer than 20 s) counts
// with its time, and is reported.
func (b *bench) scrape(n int, coll *rig.Collector) error {
	time.Sleep(time.Second)
	var secs, cpus []float64
	var size, series, failed int
	var lastErr string
	for range b.scrapes {
		u0, err := coll.Usage()
		if err != nil {
			return err
		}
		s, err := coll.Scrape()
		u1, uerr := coll.Usage()
		if uerr != nil {
			return uerr
		}
		secs = append(secs, s.End.Sub(s.Start).Seconds())
		cpus = append(cpus, u1.CPUSeconds-u0.CPUSeconds)
		if err != nil {
			failed++
			lastErr = err.Error()
			continue
		}
		size, series = len(s.Body), 0
		for _, line := range bytes.Split(s.Body, []byte("\n")) {
			if len(line) > 0 && line[0] != '#' {
				series++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	q := fleetsim.Summarise(slices.Clone(secs))
	var cpuSum float64
	for _, c := range cpus {
		cpuSum += c
	}
	extra := map[string]any{"scrapes": len(secs), "min_seconds": slices.Min(secs), "max_seconds": q.Max,
		"cpu_seconds_per_scrape": cpuSum / float64(len(cpus)), "series": series,
		"note": "median wall time of GET /metrics, text format, uncompressed, collector otherwise idle; CPU from /proc/<pid>/stat around each scrape (10 ms ticks)"}
	if failed > 0 {
		extra["failed"], extra["error"] = failed, lastErr
	}
	b.emit("scrape_seconds", n, q.P50, extra)
	if size > 0 {
		b.emit("scrape_bytes", n, float64(size), map[string]any{"series": series, "bytes_per_site": float64(size) / float64(n)})
	} else {
		b.emit("scrape_bytes", n, math.NaN(), map[string]any{"error": "no scrape succeeded: " + lastErr})
	}
	return nil
}

// delivery checks that every measurement the simulator tracked is in the
// history once, and prints sent / stored / lost / duplicated.
func (b *bench) delivery(n int, sim *fleetsim.Sim, coll *rig.Collector) error {
	rows, err := historyIDs(coll.DB)
	if err != nil {
		return err
	}
	var stored, lost, duplicated, unacked, dupAcks int
	tracked := sim.Tracked()
	sent := make(map[string]bool, len(tracked))
	for _, s := range tracked {
		k := s.Site + "/" + s.MessageID
		sent[k] = true
		switch rows[k] {
		case 0:
			lost++
		case 1:
			stored++
		default:
			duplicated++
		}
		if s.Acks == 0 {
			unacked++
		} else if s.Acks > 1 {
			dupAcks++
		}
	}
	stray := 0
	for k := range rows {
		if !sent[k] {
			stray++
		}
	}
	statuses := 0
	for _, p := range append([]string{"warmup", "live", "backlog", "e2e"}, b.historyPhases...) {
		statuses += sim.Result(p).Statuses
	}
	extra := map[string]any{"sent": len(tracked), "stored": stored, "lost": lost, "duplicated": duplicated,
		"unacked": unacked, "duplicate_acks": dupAcks, "rows_not_sent": stray, "statuses_sent": statuses}
	missing := 0
	if c, err := counters(coll); err == nil {
		extra["redelivered_by_broker"], extra["statuses_committed"], extra["statuses_rejected"] = c.duplicate, c.statuses, c.statusesRejected
		missing = max(0, statuses-int(c.statuses))
		extra["commits"], extra["mean_batch_messages"], extra["mean_commit_seconds"] = c.commits, c.batched/c.commits, c.commitSeconds/c.commits
	} else {
		extra["counters"] = "unavailable: " + err.Error()
	}
	b.check("delivery", n, extra)
	if lost+duplicated+unacked+stray+missing > 0 {
		return fmt.Errorf("delivery: %d lost, %d duplicated, %d unacknowledged, %d rows not sent, %d statuses not committed", lost, duplicated, unacked, stray, missing)
	}
	return nil
}
