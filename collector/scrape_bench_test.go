package main

// BenchmarkScrape: one scrape of each of the collector's metric endpoints, at
// fleet scale, through the HTTP handler and the registry that collect wires
// (newRegistry, newHandler), uncompressed (as the target of issue 6 is
// stated) and gzip-compressed (as Prometheus asks):
//
//	go test -run '^$' -bench Scrape -benchmem -benchtime 5x ./collector/
//
// Each site has a sites-file entry (opening hours, seats, contract,
// location), an agent status, and the agent's default probes: a speed test,
// line quality over UDP, DNS (two names, the system resolver) and the three
// default essential services over HTTPS. The history has four speed tests a
// day and a line-quality summary every six hours over HUBMON_BENCH_DAYS days
// (default 7; 30 for the memory of a full gap retention, slow to generate).
// The collector's state is loaded from that history as at start-up
// (gaps.Engine.Load and Refresh, ingest.LoadState).
//
// Reported per endpoint: ns/op, CPU time (cpu-ns/op: the process's user and
// system time, GC included) and B/op of one scrape, the series and bytes
// it sent (series, bytes), and the collector's live heap once loaded
// (heap-MB, after a GC, the benchmark's own few structures included).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/ingest"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// benchEndpoints are the paths scraped; one that the handler does not
// serve (404) is skipped.
var benchEndpoints = []string{"/metrics", "/metrics/gaps"}

func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		for _, path := range benchEndpoints {
			for _, gz := range []bool{false, true} {
				name := fmt.Sprintf("sites=%d/path=%s", n, path)
				if gz {
					name += "/gzip"
				}
				b.Run(name, func(b *testing.B) {
					c := benchCollectorFor(b, n)
					w := &countingWriter{}
					req, _ := http.NewRequest("GET", path, nil)
					if gz {
						req.Header.Set("Accept-Encoding", "gzip")
					}
					w.countLines = true
					c.handler.ServeHTTP(w, req)
					if w.code == http.StatusNotFound {
						b.Skipf("%s: not served", path)
					}
					if w.code != http.StatusOK {
						b.Fatalf("GET %s: %d", path, w.code)
					}
					size, series := w.bytes, w.series
					cpu := cpuTime()
					for b.Loop() {
						w.reset()
						c.handler.ServeHTTP(w, req)
					}
					b.StopTimer()
					b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(float64(size), "bytes")
					if !gz {
						b.ReportMetric(float64(series), "series")
					}
					b.ReportMetric(float64(c.heap)/(1<<20), "heap-MB")
				})
			}
		}
	}
}

// cpuTime is the CPU time the process has used: on a shared machine a
// steadier measure of one scrape's cost than the wall-clock ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingWriter is an http.ResponseWriter that counts what it is sent: the
// bytes, and with countLines the sample lines (those not starting with #).
type countingWriter struct {
	header       http.Header
	code         int
	bytes        int
	countLines   bool
	series       int
	midLine, hdr bool // within a line; within a # line
}

func (w *countingWriter) reset() { *w = countingWriter{header: w.header} }

func (w *countingWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.bytes += len(p)
	n := len(p)
	for w.countLines && len(p) > 0 {
		if !w.midLine {
			w.midLine, w.hdr = true, p[0] == '#'
			if !w.hdr {
				w.series++
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		w.midLine, p = false, p[i+1:]
	}
	return n, nil
}

type benchCollector struct {
	handler http.Handler
	heap    uint64
}

var (
	benchMu         sync.Mutex
	benchCollectors = map[int]*benchCollector{}
)

// benchCollectorFor returns the collector of n sites, loading it the first
// time (one at a time: the 20,000-site one is large).
func benchCollectorFor(b *testing.B, n int) *benchCollector {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if c := benchCollectors[n]; c != nil {
		return c
	}
	clear(benchCollectors) // let the smaller one go before measuring the heap
	days := 7
	if v := os.Getenv("HUBMON_BENCH_DAYS"); v != "" {
		d, err := strconv.Atoi(v)
		if err != nil || d < 1 || d > 30 {
			b.Fatalf("HUBMON_BENCH_DAYS=%q: want 1 to 30", v)
		}
		days = d
	}
	c, err := loadBenchCollector(n, days, b.Logf)
	if err != nil {
		b.Fatal(err)
	}
	benchCollectors[n] = c
	return c
}

func loadBenchCollector(n, days int, logf func(string, ...any)) (*benchCollector, error) {
	dir, err := os.MkdirTemp("", "hubmon-scrape-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // the open store keeps its files until closed
	now := time.Now().UTC().Truncate(time.Minute)
	start := time.Now()
	sitesFile := filepath.Join(dir, "sites.yml")
	if err := os.WriteFile(sitesFile, benchSitesYAML(n), 0o644); err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dir, "hubmon.db"))
	if err != nil {
		return nil, err
	}
	rows, err := benchHistory(st, n, days, now)
	if err != nil {
		return nil, err
	}
	logf("%d sites: generated %d rows over %d days in %s", n, rows, days, time.Since(start).Round(time.Millisecond))

	// as collect wires it
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	cfg := config.Defaults()
	hubs, err := sites.New(sites.Options{Path: sitesFile})
	if err != nil {
		// config's bound on the values a YAML file may expand to (100,000)
		// rejects a sites file of more than a few thousand hubs: say so,
		// and load the same sites a thousand at a time
		logf("%d sites: the sites file is rejected (%v); loaded in parts instead", n, err)
		if hubs, err = benchSitesInParts(n); err != nil {
			return nil, err
		}
	}
	fleet := metrics.NewFleet()
	engine := newEngine(cfg, st, hubs, log)
	reg, health := newRegistry(st, hubs, engine)
	start = time.Now()
	if err := engine.Load(ctx); err != nil {
		return nil, err
	}
	if err := engine.Refresh(ctx); err != nil {
		return nil, err
	}
	logf("%d sites: gap figures loaded and computed in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	in := ingest.New(ingest.Options{Store: st, Fleet: fleet, Health: health, Sites: hubs, Logger: log})
	defer in.Close()
	if err := in.LoadState(ctx, false); err != nil {
		return nil, err
	}
	logf("%d sites: latest figures loaded in %s", n, time.Since(start).Round(time.Millisecond))
	c := &benchCollector{handler: newHandler(reg, fleet, hubs, engine, log, func(context.Context) error { return nil })}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c.heap = ms.HeapAlloc
	logf("%d sites: live heap %d MB", n, ms.HeapAlloc>>20)
	return c, nil
}

// benchSitesInParts returns a registry of the sites of benchSitesYAML(n),
// parsed a thousand at a time.
func benchSitesInParts(n int) (*sites.Registry, error) {
	var list []config.Site
	for from := 0; from < n; from += 1000 {
		part, err := config.ParseSites(benchSitesYAMLRange(from, min(from+1000, n)), nil)
		if err != nil {
			return nil, err
		}
		list = append(list, part...)
	}
	return sites.Static(list, false, nil), nil
}

func benchSiteID(i int) string { return fmt.Sprintf("hub-%05d", i) }

// benchSitesYAML is a sites file of n hubs open 09:00-17:00 on weekdays and
// 10:00-13:00 on Saturdays, with seats, a contract and a location.
func benchSitesYAML(n int) []byte { return benchSitesYAMLRange(0, n) }

// benchSitesYAMLRange is the sites file of benchSitesYAML's hubs from to to.
func benchSitesYAMLRange(from, to int) []byte {
	var b bytes.Buffer
	b.WriteString("sites:\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `  - id: %s
    name: Hub %d
    hub_type: library
    council: Council %d
    ons_code: E0800%04d
    postcode: LS1 3AB
    latitude: %.4f
    longitude: %.4f
    public_seats: 8
    contract_download_mbps: 40
    contract_upload_mbps: 10
    access: fttc
    provider: BT
    opening_hours: {monday: ["09:00-17:00"], tuesday: ["09:00-17:00"], wednesday: ["09:00-17:00"], thursday: ["09:00-17:00"], friday: ["09:00-17:00"], saturday: ["10:00-13:00"]}
`, benchSiteID(i), i, i%300, i%10000, 50+float64(i%800)/100, -5+float64(i%600)/100)
	}
	return b.Bytes()
}

// benchHistory writes days of history of n sites up to now: four speed tests
// a day, a line-quality summary every six hours, then each site's latest
// light probes (a one-minute line-quality summary, DNS, HTTP) and status.
func benchHistory(st *store.Store, n, days int, now time.Time) (int64, error) {
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
		p, err := json.Marshal(m)
		if err != nil {
			return err
		}
		items = append(items, store.Item{Measurement: m, Payload: p, ReceivedAt: m.MeasuredAt})
		if len(items) >= 1000 {
			return flush()
		}
		return nil
	}
	f := wire.Float
	from := now.Truncate(24*time.Hour).AddDate(0, 0, -days)
	for i := range n {
		site := benchSiteID(i)
		for d := range days + 1 {
			day := from.AddDate(0, 0, d)
			for k := range 4 {
				at := day.Add(9*time.Hour + time.Duration(k)*2*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
				if at.After(now.Add(-time.Hour)) {
					break
				}
				down := 5e6 + rng.Float64()*60e6
				if err := add(&wire.Measurement{Site: site, Probe: "internet", Kind: wire.KindSpeedtest, MeasuredAt: at, DurationSeconds: 30, Success: true,
					Speedtest: &wire.Speedtest{ServerID: "1234", ServerName: "Leeds", ServerHost: "speedtest.example.net:8080",
						DownloadBitsPerSecond: f(down), UploadBitsPerSecond: f(down / 5), LatencySeconds: f(0.01 + rng.Float64()*0.05),
						JitterSeconds: f(rng.Float64() * 0.01), DownloadBytes: int64(down / 8 * 10), UploadBytes: int64(down / 40 * 10),
						LatencyUnderDownloadSeconds: f(0.05 + rng.Float64()*0.1), LatencyUnderUploadSeconds: f(0.05 + rng.Float64()*0.1),
						AddedLatencyUnderDownloadSeconds: f(rng.Float64() * 0.1), AddedLatencyUnderUploadSeconds: f(rng.Float64() * 0.1),
						BufferbloatGrade: "B"}}); err != nil {
					return rows, err
				}
			}
			for t := day; t.Before(day.Add(24*time.Hour)) && t.Before(now.Add(-6*time.Hour)); t = t.Add(6 * time.Hour) {
				if err := add(benchLine(site, t, 6*time.Hour)); err != nil {
					return rows, err
				}
			}
		}
		at := now.Add(-time.Minute)
		if err := add(benchLine(site, at, time.Minute)); err != nil {
			return rows, err
		}
		if err := add(&wire.Measurement{Site: site, Probe: "dns", Kind: wire.KindDNS, MeasuredAt: at, DurationSeconds: 0.1, Success: true,
			DNS: &wire.DNS{Results: []wire.DNSResult{
				{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: f(0.012), Addresses: 4},
				{Resolver: "system", Name: "www.nhs.uk", Success: true, ResolveSeconds: f(0.018), Addresses: 2},
			}}}); err != nil {
			return rows, err
		}
		expiry := now.AddDate(0, 2, 0)
		var hs []wire.HTTPResult
		for _, s := range []struct{ name, url string }{
			{"gov-uk", "https://www.gov.uk/"}, {"nhs", "https://www.nhs.uk/"},
			{"universal-credit", "https://www.universal-credit.service.gov.uk/"},
		} {
			hs = append(hs, wire.HTTPResult{Name: s.name, URL: s.url, Success: true, StatusCode: 200,
				DNSSeconds: f(0.01), ConnectSeconds: f(0.02), TLSSeconds: f(0.04), FirstByteSeconds: f(0.12), TotalSeconds: f(0.2), CertNotAfter: &expiry})
		}
		if err := add(&wire.Measurement{Site: site, Probe: "services", Kind: wire.KindHTTP, MeasuredAt: at, DurationSeconds: 0.6, Success: true,
			HTTP: &wire.HTTP{Results: hs}}); err != nil {
			return rows, err
		}
		s := wire.Status{Version: wire.Version, Site: site, AgentID: "AGENT0001", State: wire.StateOnline, Session: 3,
			ConnectedAt: now.Add(-48 * time.Hour), SentAt: now, AgentVersion: "0.3.0", OS: "linux", Arch: "arm64",
			UptimeSeconds: 48 * 3600, BudgetMonth: now.Format("2006-01"), DataUsedBytes: 3 << 30}
		p, err := json.Marshal(s)
		if err != nil {
			return rows, err
		}
		items = append(items, store.Item{Status: &s, Payload: p, ReceivedAt: now})
	}
	return rows, flush()
}

func benchLine(site string, at time.Time, interval time.Duration) *wire.Measurement {
	sent := int64(interval / (1500 * time.Millisecond))
	return &wire.Measurement{Site: site, Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: at, DurationSeconds: interval.Seconds(), Success: true,
		LineQuality: &wire.LineQuality{Method: "udp", Target: "collector.example.net:9471", IntervalSeconds: interval.Seconds(), Sent: sent, Received: sent - 1,
			RTTMinSeconds: wire.Float(0.011), RTTP50Seconds: wire.Float(0.015), RTTP95Seconds: wire.Float(0.031), RTTMaxSeconds: wire.Float(0.052),
			JitterSeconds: wire.Float(0.002), OutageSecondsTotal: wire.Float(0)}}
}
