package metrics

// BenchmarkWriteSeries: the fleet's series of 1,000 and 20,000 sites, each
// with the agent's default probes (a speed test, UDP line quality, DNS of
// two names, three HTTPS services) and a status, written uncompressed:
//
//	go test -run '^$' -bench WriteSeries -benchmem ./collector/internal/metrics/
//
// (collector's BenchmarkScrape measures the whole of /metrics, as served.)
//
// In the "history" cases each site's figures arrive 8 times, round-robin over
// the sites as a history loaded at start-up delivers them: each site's
// records then lie apart in the heap, as in a collector that has run a while,
// and a scrape waits on memory to reach them.

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/store"
)

func benchFleet(n int) *Fleet { return benchFleetRounds(n, 1) }

// benchFleetRounds is benchFleet with each site's figures observed rounds
// times, an hour apart, round-robin over the sites.
func benchFleetRounds(n, rounds int) *Fleet {
	f := NewFleet()
	for r := range rounds {
		observeBenchFleet(f, n, t0.Add(time.Duration(r)*time.Hour))
	}
	return f
}

func observeBenchFleet(f *Fleet, n int, t0 time.Time) {
	fl := wire.Float
	expiry := t0.AddDate(0, 2, 0)
	for i := range n {
		site := fmt.Sprintf("hub-%05d", i)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		f.ObserveAgent(store.Agent{Status: wire.Status{Site: site, AgentID: "AGENT0001", State: wire.StateOnline, AgentVersion: "0.3.0",
			OS: "linux", Arch: "arm64", SentAt: at, UptimeSeconds: 3600, DataUsedBytes: 3 << 30}, LastSeenAt: at})
		f.Observe(&wire.Measurement{Site: site, Probe: "internet", Kind: wire.KindSpeedtest, MeasuredAt: at, Success: true,
			Speedtest: &wire.Speedtest{DownloadBitsPerSecond: fl(3.2e7 + float64(i)), UploadBitsPerSecond: fl(6.4e6 + float64(i)),
				LatencySeconds: fl(0.0123), JitterSeconds: fl(0.002), LatencyUnderDownloadSeconds: fl(0.0812), LatencyUnderUploadSeconds: fl(0.0934),
				AddedLatencyUnderDownloadSeconds: fl(0.0689), AddedLatencyUnderUploadSeconds: fl(0.0811), BufferbloatGrade: "C"}})
		lq := &wire.Measurement{Site: site, Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: at, Success: true,
			LineQuality: &wire.LineQuality{Method: "udp", IntervalSeconds: 60, Sent: 40, Received: 39, RTTMinSeconds: fl(0.011),
				RTTP50Seconds: fl(0.0153), RTTP95Seconds: fl(0.0311), RTTMaxSeconds: fl(0.052), JitterSeconds: fl(0.0021)}}
		f.Observe(lq)
		f.Count(lq)
		f.Observe(&wire.Measurement{Site: site, Probe: "dns", Kind: wire.KindDNS, MeasuredAt: at, Success: true,
			DNS: &wire.DNS{Results: []wire.DNSResult{
				{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: fl(0.0121)},
				{Resolver: "system", Name: "www.nhs.uk", Success: true, ResolveSeconds: fl(0.0183)}}}})
		var hs []wire.HTTPResult
		for _, name := range []string{"gov-uk", "nhs", "universal-credit"} {
			hs = append(hs, wire.HTTPResult{Name: name, Success: true, StatusCode: 200, DNSSeconds: fl(0.0101), ConnectSeconds: fl(0.0212),
				TLSSeconds: fl(0.0423), FirstByteSeconds: fl(0.1234), TotalSeconds: fl(0.2012), CertNotAfter: &expiry})
		}
		f.Observe(&wire.Measurement{Site: site, Probe: "services", Kind: wire.KindHTTP, MeasuredAt: at, Success: true, HTTP: &wire.HTTP{Results: hs}})
	}
}

func BenchmarkWriteSeries(b *testing.B) {
	for _, c := range []struct {
		n, rounds int
		name      string
	}{{1000, 1, ""}, {20000, 1, ""}, {20000, 8, "/history"}} {
		b.Run(fmt.Sprintf("sites=%d%s", c.n, c.name), func(b *testing.B) {
			f := benchFleetRounds(c.n, c.rounds)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			var size countBytes
			w := exposition.NewWriter(&size)
			f.WriteSeries(w)
			w.Flush()
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				w := exposition.NewWriter(discard{})
				f.WriteSeries(w)
				w.Flush()
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			b.ReportMetric(float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(w.Samples()), "series")
			b.ReportMetric(float64(size), "bytes")
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MB")
		})
	}
}

type countBytes int

func (c *countBytes) Write(p []byte) (int, error) { *c += countBytes(len(p)); return len(p), nil }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
