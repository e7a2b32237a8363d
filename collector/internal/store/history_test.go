package store

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

func TestPointsAndPointsAfter(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	since := t0.Add(50 * time.Second)
	st := meas("MSG000001", 1, t0, wire.Float(2e7))
	st.Speedtest.UploadBitsPerSecond = wire.Float(5e6)
	st.Speedtest.LatencySeconds = wire.Float(0.02)
	st.Speedtest.AddedLatencyUnderDownloadSeconds = wire.Float(0.03)
	lq := &wire.Measurement{Version: 1, MessageID: "MSG000002", Site: "leeds-1", AgentID: "AGENT0001", Seq: 2, Probe: "line",
		Kind: wire.KindLineQuality, MeasuredAt: t0.Add(-time.Minute), Success: true,
		LineQuality: &wire.LineQuality{Method: "icmp", Target: "x", IntervalSeconds: 60, Sent: 40, Received: 30, JitterSeconds: wire.Float(0.004),
			Outages:     []wire.Outage{{Start: t0.Add(-50 * time.Second), End: t0.Add(-40 * time.Second), DurationSeconds: 10, Cause: wire.CauseWAN, LostProbes: 7}},
			OutageSince: &since}}
	other := meas("MSG000003", 3, t0, wire.Float(1e6))
	other.Site = "bradford-1"
	if _, err := s.Commit(ctx, []Item{item(st, t0), item(lq, t0), item(other, t0)}); err != nil {
		t.Fatal(err)
	}

	var got []Point
	collect := func(p *Point) error { got = append(got, *p); return nil }
	if err := s.Points(ctx, "leeds-1", wire.KindSpeedtest, t0, t0.Add(time.Second), collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("speed tests: %+v", got)
	}
	p := got[0]
	if p.Site != "leeds-1" || p.Probe != "local" || p.DownloadBitsPerSecond != 2e7 || p.UploadBitsPerSecond != 5e6 || p.LatencySeconds != 0.02 ||
		p.AddedLatencyDownloadSeconds != 0.03 || !math.IsNaN(p.AddedLatencyUploadSeconds) || !math.IsNaN(p.IntervalSeconds) || p.LineQualityPresent {
		t.Errorf("speed test point %+v", p)
	}
	got = nil
	if err := s.Points(ctx, "leeds-1", wire.KindLineQuality, t0.Add(-time.Hour), t0, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("line quality: %+v", got)
	}
	p = got[0]
	if !p.LineQualityPresent || p.Method != "icmp" || p.IntervalSeconds != 60 || p.Sent != 40 || p.Received != 30 || p.LineJitterSeconds != 0.004 ||
		!p.OutageSince.Equal(since) || len(p.Outages) != 1 || p.Outages[0].DurationSeconds != 10 || !math.IsNaN(p.DownloadBitsPerSecond) {
		t.Errorf("line-quality point %+v", p)
	}
	// the range is [from, to)
	got = nil
	if err := s.Points(ctx, "leeds-1", wire.KindSpeedtest, t0.Add(time.Nanosecond), t0.Add(time.Hour), collect); err != nil || len(got) != 0 {
		t.Errorf("from after the test: %v %v", got, err)
	}

	var sites []string
	last, err := s.PointsAfter(ctx, 0, 2, func(p *Point) error { sites = append(sites, p.Site+"/"+p.Kind); return nil })
	if err != nil || last != 2 || strings.Join(sites, " ") != "leeds-1/speedtest leeds-1/linequality" {
		t.Fatalf("PointsAfter(0, 2) = %d %v %v", last, sites, err)
	}
	sites = nil
	last, err = s.PointsAfter(ctx, last, 10, func(p *Point) error { sites = append(sites, p.Site); return nil })
	if err != nil || last != 3 || len(sites) != 1 || sites[0] != "bradford-1" {
		t.Fatalf("PointsAfter(2, 10) = %d %v %v", last, sites, err)
	}
	if last, err = s.PointsAfter(ctx, last, 10, collect); err != nil || last != 3 {
		t.Fatalf("PointsAfter at the end = %d %v", last, err)
	}
	if n, err := s.MaxRowID(ctx); err != nil || n != 3 {
		t.Errorf("MaxRowID = %d %v", n, err)
	}
	all, err := s.Sites(ctx)
	if err != nil || strings.Join(all, ",") != "bradford-1,leeds-1" {
		t.Errorf("Sites = %v %v", all, err)
	}
	var times []time.Time
	if err := s.Successes(ctx, "leeds-1", wire.KindLineQuality, t0.Add(-time.Hour), t0.Add(time.Hour), func(at time.Time) { times = append(times, at) }); err != nil ||
		len(times) != 1 || !times[0].Equal(t0.Add(-time.Minute)) {
		t.Errorf("Successes = %v %v", times, err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hubmon.db")
	if _, err := OpenReadOnly(path); err == nil {
		t.Fatal("OpenReadOnly of a missing file succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("OpenReadOnly created the file")
	}
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if _, err := w.Commit(ctx, []Item{item(meas("MSG000001", 1, t0, wire.Float(1e7)), t0)}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.Count(ctx); err != nil || n != 1 {
		t.Fatalf("read-only count %d %v", n, err)
	}
	if _, err := r.Commit(ctx, []Item{item(meas("MSG000002", 2, t0, wire.Float(1e7)), t0)}); err == nil {
		t.Fatal("a read-only store committed")
	}
	notDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDB, []byte("hello, this is not a database"), 0o644)
	if _, err := OpenReadOnly(notDB); err == nil || !strings.Contains(err.Error(), "not an SQLite database") {
		t.Errorf("a text file: %v", err)
	}
}
