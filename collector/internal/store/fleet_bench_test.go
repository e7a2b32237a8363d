package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// BenchmarkCommitFleet: committing messages from a fleet, as the collector
// does while draining a backlog: each batch holds messages of sites picked
// at random, every site has an agent row (so each message also updates its
// last-seen time), and the history already holds 20 messages a site, so
// the indexes are as wide as the fleet. Reported per message: CPU time
// (cpu-ns/msg, user and system, fsync included) and rows/s.
//
//	go test -run '^$' -bench CommitFleet -benchtime 20000x ./collector/internal/store/
func BenchmarkCommitFleet(b *testing.B) {
	for _, sites := range []int{2000, 20000} {
		for _, batch := range []int{48, 256, 1024} {
			b.Run(fmt.Sprintf("sites=%d/batch=%d", sites, batch), func(b *testing.B) {
				s := openStore(b)
				ctx := context.Background()
				rng := rand.New(rand.NewPCG(1, 2))
				payload := []byte(strings.Repeat("x", 700)) // a typical line-quality message
				seq := make([]int64, sites)
				at := t0
				mk := func() Item {
					i := rng.IntN(sites)
					seq[i]++
					at = at.Add(time.Millisecond)
					site := fmt.Sprintf("site-%05d", i)
					m := &wire.Measurement{Version: 1, MessageID: fmt.Sprintf("%s-%08d", site, seq[i]), Site: site,
						AgentID: "AGENT0001", Seq: seq[i], Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: at, Success: true}
					return Item{Measurement: m, Payload: payload, ReceivedAt: at}
				}
				// the fleet's agents, and 20 messages a site
				var items []Item
				for i := range sites {
					st := &wire.Status{Version: 1, Site: fmt.Sprintf("site-%05d", i), AgentID: "AGENT0001", State: "online", Session: 1,
						ConnectedAt: t0, SentAt: t0, AgentVersion: "v", OS: "linux", Arch: "arm64"}
					items = append(items, Item{Status: st, Payload: payload[:400], ReceivedAt: t0})
				}
				for range 20 * sites {
					items = append(items, mk())
				}
				for len(items) > 0 {
					n := min(len(items), 4096)
					if _, err := s.Commit(ctx, items[:n]); err != nil {
						b.Fatal(err)
					}
					items = items[n:]
				}
				batchItems := make([]Item, 0, batch)
				cpu := cpuTime()
				b.ResetTimer()
				done := 0
				for done < b.N {
					batchItems = batchItems[:0]
					for range min(batch, b.N-done) {
						batchItems = append(batchItems, mk())
					}
					if _, err := s.Commit(ctx, batchItems); err != nil {
						b.Fatal(err)
					}
					done += len(batchItems)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/msg")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
