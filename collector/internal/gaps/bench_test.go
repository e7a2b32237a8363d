package gaps

// Benchmarks of the gap figures at fleet scale:
//
//	go test -run '^$' -bench . -benchtime 3x ./collector/internal/gaps/
//
// BenchmarkLoad, BenchmarkUpdate and BenchmarkRefresh use a generated history
// of 1,000 sites x 30 days x 4 speed tests a day, with hourly line-quality
// summaries and a DNS probe every 30 minutes (HUBMON_BENCH_LQ_MINUTES=1 for
// the agent's default of one summary a minute: 43 million rows, slow to
// generate). BenchmarkScrape serves the figures of 20,000 sites.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
)

const benchDays = 30

var benchNow = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// benchSites returns n sites open 09:00-17:00 on weekdays and 10:00-13:00
// on Saturdays, with seats and a contract. They are parsed a thousand at a
// time: config bounds the values one YAML file may expand to (100,000).
func benchSites(n int) []config.Site {
	var list []config.Site
	for from := 0; from < n; from += 1000 {
		list = append(list, benchSitesRange(from, min(from+1000, n))...)
	}
	return list
}

func benchSitesRange(from, to int) []config.Site {
	var b bytes.Buffer
	b.WriteString("sites:\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `  - id: hub-%05d
    name: Hub %d
    hub_type: library
    council: Council %d
    ons_code: E0800%04d
    postcode: LS1 3AB
    latitude: 53.8
    longitude: -1.5
    public_seats: 8
    contract_download_mbps: 40
    contract_upload_mbps: 10
    access: fttc
    provider: BT
    opening_hours: {monday: ["09:00-17:00"], tuesday: ["09:00-17:00"], wednesday: ["09:00-17:00"], thursday: ["09:00-17:00"], friday: ["09:00-17:00"], saturday: ["10:00-13:00"]}
`, i, i, i%300, i%10000)
	}
	list, err := config.ParseSites(b.Bytes(), nil)
	if err != nil {
		panic(err)
	}
	return list
}

var (
	benchOnce sync.Once
	benchDir  string
	benchDB   string
	benchErr  error
	benchRows int64
)

// benchHistory generates the benchmark history once per run.
func benchHistory(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "hubmon-gaps-bench-")
		if benchErr != nil {
			return
		}
		benchDB = filepath.Join(benchDir, "hubmon.db")
		lqEvery := time.Hour
		if v := os.Getenv("HUBMON_BENCH_LQ_MINUTES"); v != "" {
			m, err := strconv.Atoi(v)
			if err != nil || m < 1 {
				benchErr = fmt.Errorf("HUBMON_BENCH_LQ_MINUTES=%q", v)
				return
			}
			lqEvery = time.Duration(m) * time.Minute
		}
		start := time.Now()
		benchRows, benchErr = generate(benchDB, 1000, benchDays, 4, lqEvery, 30*time.Minute)
		fmt.Fprintf(os.Stderr, "generated %d rows (1000 sites, %d days, line quality every %s) in %s\n", benchRows, benchDays, lqEvery, time.Since(start).Round(time.Second))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDB
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// generate writes a history of n sites over days days before benchNow.
func generate(path string, n, days, testsPerDay int, lqEvery, dnsEvery time.Duration) (int64, error) {
	st, err := store.Open(path)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		items []store.Item
		seq   int64
		rows  int64
	)
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		_, err := st.Commit(context.Background(), items)
		rows += int64(len(items))
		items = items[:0]
		return err
	}
	add := func(m *wire.Measurement) error {
		seq++
		m.Version, m.MessageID, m.AgentID, m.Seq = wire.Version, fmt.Sprintf("M%015d", seq), "AGENT0001", seq
		p, err := wireJSON(m)
		if err != nil {
			return err
		}
		items = append(items, store.Item{Measurement: m, Payload: p, ReceivedAt: m.MeasuredAt})
		if len(items) >= 1000 {
			return flush()
		}
		return nil
	}
	from := benchNow.Add(-time.Duration(days) * 24 * time.Hour)
	for i := range n {
		site := fmt.Sprintf("hub-%05d", i)
		for d := range days {
			day := from.Add(time.Duration(d) * 24 * time.Hour)
			for k := range testsPerDay {
				at := day.Add(9*time.Hour + time.Duration(k)*2*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
				down := 5e6 + rng.Float64()*60e6
				if err := add(&wire.Measurement{Site: site, Probe: "internet", Kind: wire.KindSpeedtest, MeasuredAt: at, Success: true,
					Speedtest: &wire.Speedtest{ServerID: "1", ServerHost: "x:1", DownloadBitsPerSecond: wire.Float(down),
						UploadBitsPerSecond: wire.Float(down / 5), LatencySeconds: wire.Float(0.01 + rng.Float64()*0.1),
						AddedLatencyUnderDownloadSeconds: wire.Float(rng.Float64() * 0.1), AddedLatencyUnderUploadSeconds: wire.Float(rng.Float64() * 0.1),
						DownloadBytes: 1 << 20, UploadBytes: 1 << 18}}); err != nil {
					return rows, err
				}
			}
			for t := day; t.Before(day.Add(24 * time.Hour)); t = t.Add(lqEvery) {
				sent := int64(lqEvery / (1500 * time.Millisecond))
				lq := &wire.LineQuality{Method: "udp", Target: "collector:9471", IntervalSeconds: lqEvery.Seconds(), Sent: sent, Received: sent,
					RTTMinSeconds: wire.Float(0.01), RTTP50Seconds: wire.Float(0.015), RTTP95Seconds: wire.Float(0.03), RTTMaxSeconds: wire.Float(0.05),
					JitterSeconds: wire.Float(0.002), OutageSecondsTotal: wire.Float(0)}
				if rng.IntN(50) == 0 {
					lq.Received = sent - 20
					lq.Outages = []wire.Outage{{Start: t.Add(time.Minute), End: t.Add(time.Minute + 30*time.Second), DurationSeconds: 30, Cause: wire.CauseWAN, LostProbes: 20}}
					lq.OutageSecondsTotal = wire.Float(30)
				}
				if err := add(&wire.Measurement{Site: site, Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: t, Success: true, LineQuality: lq}); err != nil {
					return rows, err
				}
			}
			for t := day; t.Before(day.Add(24 * time.Hour)); t = t.Add(dnsEvery) {
				if err := add(&wire.Measurement{Site: site, Probe: "dns", Kind: wire.KindDNS, MeasuredAt: t, Success: true,
					DNS: &wire.DNS{Results: []wire.DNSResult{{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: wire.Float(0.02), Addresses: 2}}}}); err != nil {
					return rows, err
				}
			}
		}
	}
	return rows, flush()
}

func benchEngine(b *testing.B, st *store.Store, n int) *Engine {
	b.Helper()
	th := config.Defaults().Thresholds
	clock := func() time.Time { return benchNow }
	return New(Options{Store: st, Sites: sites.Static(benchSites(n), false, clock), Rules: th.Rules(),
		BelowRatio: th.BelowRatioValue(), Now: clock})
}

// BenchmarkLoad: reading 30 days of history of 1,000 sites at start;
// heap-MB is the live heap the loaded history holds.
func BenchmarkLoad(b *testing.B) {
	st, err := store.OpenReadOnly(benchHistory(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var e *Engine
	b.ResetTimer()
	for range b.N {
		e = benchEngine(b, st, 1000)
		if err := e.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(benchRows), "rows")
	b.ReportMetric(historyHeapMB(e), "heap-MB")
}

// historyHeapMB is the live heap, after a GC, that e's history holds: the
// heap with it less the heap once it is gone.
func historyHeapMB(e *Engine) float64 {
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	e.mu.Lock()
	e.sites = nil
	e.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	return float64(int64(with.HeapAlloc)-int64(without.HeapAlloc)) / (1 << 20)
}

// BenchmarkRefresh: recomputing every figure of 1,000 sites from memory
// (what Run does every interval, besides reading new rows).
func BenchmarkRefresh(b *testing.B) {
	st, err := store.OpenReadOnly(benchHistory(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := benchEngine(b, st, 1000)
	if err := e.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		e.recompute()
	}
	b.StopTimer()
	b.ReportMetric(float64(e.published.Load().blob.Samples()), "series")
}

// BenchmarkUpdate: reading five minutes of new rows of 1,000 sites (a
// line-quality summary a minute, one DNS probe) and recomputing.
func BenchmarkUpdate(b *testing.B) {
	src := benchHistory(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "hubmon.db")
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := benchEngine(b, st, 1000)
	if err := e.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	var seq int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var items []store.Item
		for i := range 1000 {
			site := fmt.Sprintf("hub-%05d", i)
			for k := range 6 {
				seq++
				m := &wire.Measurement{Version: 1, MessageID: fmt.Sprintf("N%015d", seq), AgentID: "AGENT0001", Seq: seq, Site: site,
					Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: benchNow.Add(time.Duration(k) * time.Minute), Success: true,
					LineQuality: &wire.LineQuality{Method: "udp", Target: "x:1", IntervalSeconds: 60, Sent: 40, Received: 40}}
				if k == 5 {
					m.Kind, m.Probe, m.LineQuality = wire.KindDNS, "dns", nil
					m.DNS = &wire.DNS{Results: []wire.DNSResult{{Resolver: "system", Name: "www.gov.uk", Success: true}}}
				}
				p, _ := wireJSON(m)
				items = append(items, store.Item{Measurement: m, Payload: p, ReceivedAt: m.MeasuredAt})
			}
		}
		if _, err := st.Commit(context.Background(), items); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape: one scrape of the gap endpoint, uncompressed (the text
// is kept compressed: this is the cost of decompressing it), the figures
// computed beforehand:
// of the 1,000 sites of the generated history, and of 20,000 synthetic ones.
func BenchmarkScrape(b *testing.B) {
	b.Run("sites=1000", func(b *testing.B) {
		st, err := store.OpenReadOnly(benchHistory(b))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		e := benchEngine(b, st, 1000)
		if err := e.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
		scrape(b, e)
	})
	b.Run("sites=20000", func(b *testing.B) {
		const n = 20000
		e := benchEngine(b, nil, n)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rng := rand.New(rand.NewPCG(3, 4))
		from := benchNow.Add(-benchDays * 24 * time.Hour)
		for i, s := range e.opts.Sites.Sites() {
			h := newSiteHistory()
			for d := range benchDays {
				day := from.Add(time.Duration(d) * 24 * time.Hour)
				for k := range 4 {
					down := 5e6 + rng.Float64()*60e6
					h.addTest(&store.Point{RowID: int64(i*1000 + d*4 + k), Kind: wire.KindSpeedtest, MeasuredAt: day.Add(time.Duration(9+2*k) * time.Hour),
						DownloadBitsPerSecond: down, UploadBitsPerSecond: down / 5, LatencySeconds: 0.02, AddedLatencyDownloadSeconds: 0.01, AddedLatencyUploadSeconds: 0.02})
				}
				h.addLine(&store.Point{Kind: wire.KindLineQuality, Probe: "line", Method: "udp", MeasuredAt: day, IntervalSeconds: 86400, Sent: 57600, Received: 57600, LineQualityPresent: true})
			}
			e.sites[s.ID] = h
		}
		e.loaded = true
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.Logf("history of %d sites: %d MB heap", n, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>20)
		scrape(b, e)
	})
}

func scrape(b *testing.B, e *Engine) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	e.recompute()
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	p := e.published.Load()
	b.Logf("recompute: %s, %d gap series, %d MB text, %d MB kept compressed, %d MB more heap", took.Round(time.Millisecond),
		p.blob.Samples(), p.blob.Size()>>20, p.blob.CompressedSize()>>20, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>20)
	h := e.MetricsHandler()
	req := httptest.NewRequest("GET", "/metrics/gaps", nil)
	var size int
	b.ResetTimer()
	for range b.N {
		rec := &discardResponse{header: http.Header{}}
		h.ServeHTTP(rec, req)
		size = rec.n
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

type discardResponse struct {
	header http.Header
	n      int
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(int)     {}
func (d *discardResponse) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}

func wireJSON(m *wire.Measurement) ([]byte, error) { return json.Marshal(m) }
