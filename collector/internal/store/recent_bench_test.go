package store

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// BenchmarkRecent: what a restart reads to fill the metrics (Recent, 50 a
// probe), from a history of 2,000 sites with 5 probes each and 60
// measurements a probe. Reported: the peak heap while reading (sampled
// every 1,000 rows) and rows/s.
//
//	go test -run '^$' -bench Recent -benchtime 3x ./collector/internal/store/
func BenchmarkRecent(b *testing.B) {
	const sites, probes, per = 2000, 5, 60
	s := openStore(b)
	ctx := context.Background()
	payload := []byte(`{"v":1}`)
	kinds := []string{wire.KindSpeedtest, wire.KindLineQuality, wire.KindDNS, wire.KindHTTP, wire.KindWiFi}
	var items []Item
	flush := func() {
		if _, err := s.Commit(ctx, items); err != nil {
			b.Fatal(err)
		}
		items = items[:0]
	}
	n := 0
	for i := range sites {
		site := fmt.Sprintf("site-%05d", i)
		for p := range probes {
			for k := range per {
				n++
				m := &wire.Measurement{Version: 1, MessageID: fmt.Sprintf("M%09d", n), Site: site, AgentID: "AGENT0001", Seq: int64(n),
					Probe: fmt.Sprintf("probe-%d", p), Kind: kinds[p], MeasuredAt: t0.Add(time.Duration(k) * time.Minute), Success: true}
				// a realistic payload: the message itself, padded to ~600 bytes
				body := fmt.Sprintf(`{"v":1,"message_id":%q,"site":%q,"agent_id":"AGENT0001","seq":%d,"probe":%q,"kind":%q,"measured_at":%q,"success":true,"pad":%q}`,
					m.MessageID, site, n, m.Probe, m.Kind, m.MeasuredAt.Format(time.RFC3339Nano), strings.Repeat("x", 400))
				items = append(items, Item{Measurement: m, Payload: []byte(body), ReceivedAt: m.MeasuredAt})
				if len(items) == 4096 {
					flush()
				}
			}
		}
	}
	flush()
	_ = payload
	b.ResetTimer()
	var peak uint64
	rows := 0
	for range b.N {
		runtime.GC()
		var ms runtime.MemStats
		err := s.Recent(ctx, t0.Add(-time.Hour), 50, func(r *Row) error {
			rows++
			if rows%1000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(peak), "peak-heap-bytes")
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
