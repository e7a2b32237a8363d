package gaps

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// history writes measurements to a real store.
type history struct {
	tb  testing.TB
	st  *store.Store
	seq atomic.Int64
	buf []store.Item
}

func newHistory(tb testing.TB) *history {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "hubmon.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return &history{tb: tb, st: st}
}

func (h *history) add(m *wire.Measurement) {
	n := h.seq.Add(1)
	m.Version = wire.Version
	m.MessageID = fmt.Sprintf("MSG%012d", n)
	m.AgentID = "AGENT0001"
	m.Seq = n
	p, err := json.Marshal(m)
	if err != nil {
		h.tb.Fatal(err)
	}
	h.buf = append(h.buf, store.Item{Measurement: m, Payload: p, ReceivedAt: m.MeasuredAt})
	if len(h.buf) >= 500 {
		h.flush()
	}
}

func (h *history) flush() {
	if len(h.buf) == 0 {
		return
	}
	if _, err := h.st.Commit(context.Background(), h.buf); err != nil {
		h.tb.Fatal(err)
	}
	h.buf = h.buf[:0]
}

// speedtest adds a speed test; a rate of 0 is "not measured".
func (h *history) speedtest(site string, at time.Time, downMbps, upMbps, rttMs, addedMs float64) {
	st := &wire.Speedtest{ServerID: "1", ServerHost: "x:1"}
	m := &wire.Measurement{Site: site, Probe: "internet", Kind: wire.KindSpeedtest, MeasuredAt: at, Success: true, Speedtest: st}
	if downMbps > 0 {
		st.DownloadBitsPerSecond = wire.Float(downMbps * 1e6)
	}
	if upMbps > 0 {
		st.UploadBitsPerSecond = wire.Float(upMbps * 1e6)
	}
	if rttMs > 0 {
		st.LatencySeconds = wire.Float(rttMs / 1e3)
	}
	if addedMs > 0 {
		st.AddedLatencyUnderDownloadSeconds = wire.Float(addedMs / 1e3)
		st.AddedLatencyUnderUploadSeconds = wire.Float(addedMs / 2e3)
	}
	if downMbps == 0 || upMbps == 0 {
		m.Success, m.Error = false, "upload: not measured"
	}
	h.add(m)
}

// line adds a line-quality summary of stream method over [at, at+interval).
func (h *history) line(site, method string, at time.Time, interval time.Duration, sent, received int64, jitterMs float64, outages ...wire.Outage) *wire.Measurement {
	lq := &wire.LineQuality{Method: method, Target: "x:1", IntervalSeconds: interval.Seconds(), Sent: sent, Received: received, Outages: outages}
	if jitterMs > 0 {
		lq.JitterSeconds = wire.Float(jitterMs / 1e3)
	}
	m := &wire.Measurement{Site: site, Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: at, Success: true, LineQuality: lq}
	h.add(m)
	return m
}

// good adds good hourly summaries over [from, to).
func (h *history) good(site, method string, from, to time.Time) {
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		h.line(site, method, t, time.Hour, 3600, 3600, 2)
	}
}

func (h *history) dns(site string, at time.Time, ok bool) {
	m := &wire.Measurement{Site: site, Probe: "dns", Kind: wire.KindDNS, MeasuredAt: at, Success: ok,
		DNS: &wire.DNS{Results: []wire.DNSResult{{Resolver: "system", Name: "gov.uk", Success: ok}}}}
	if !ok {
		m.Error = "timeout"
		m.DNS.Results[0].Error = "timeout"
	}
	h.add(m)
}

func mustSites(tb testing.TB, text string) []config.Site {
	tb.Helper()
	list, err := config.ParseSites([]byte(text), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return list
}

func newEngine(tb testing.TB, st *store.Store, list []config.Site, auto bool, now time.Time) *Engine {
	tb.Helper()
	th := config.Defaults().Thresholds
	return New(Options{Store: st, Sites: sites.Static(list, auto, func() time.Time { return now }), Rules: th.Rules(),
		BelowRatio: th.BelowRatioValue(), Now: func() time.Time { return now }})
}
