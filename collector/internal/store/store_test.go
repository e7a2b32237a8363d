package store

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

func openStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "hubmon.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func meas(id string, seq int64, at time.Time, dl *float64) *wire.Measurement {
	return &wire.Measurement{Version: 1, MessageID: id, Site: "leeds-1", AgentID: "AGENT0001", Seq: seq,
		Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: at, Success: dl != nil,
		Speedtest: &wire.Speedtest{DownloadBitsPerSecond: dl, DownloadBytes: 1000}}
}

func TestCommitStoresOnce(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	items := []Item{
		item(meas("MSG000001", 1, t0, wire.Float(1e7)), t0.Add(time.Second)),
		item(meas("MSG000002", 2, t0.Add(time.Minute), nil), t0.Add(time.Minute)),
		item(meas("MSG000001", 1, t0, wire.Float(1e7)), t0.Add(2*time.Second)),
	}
	out, err := s.Commit(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != Stored || out[1] != Stored || out[2] != Duplicate {
		t.Fatalf("outcomes %v", out)
	}
	out, _ = s.Commit(ctx, items[:1]) // redelivered in a later batch
	if out[0] != Duplicate {
		t.Fatalf("redelivery outcome %v", out[0])
	}
	if n, _ := s.Count(ctx); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	// payloads are bound as bytes and stored as the text they are
	var typ, text string
	if err := s.w.QueryRow(`SELECT typeof(payload), payload FROM measurements WHERE message_id = 'MSG000001'`).Scan(&typ, &text); err != nil {
		t.Fatal(err)
	}
	if typ != "text" || text != string(items[0].Payload) {
		t.Fatalf("stored payload: %s %q, want text %q", typ, text, items[0].Payload)
	}
	rows := recent(t, s, t0.Add(-time.Hour), 10)
	if len(rows) != 2 || rows[0].MessageID != "MSG000002" || rows[0].Speedtest.DownloadBitsPerSecond != nil ||
		*rows[1].Speedtest.DownloadBitsPerSecond != 1e7 || !rows[1].MeasuredAt.Equal(t0) {
		t.Fatalf("Recent = %+v", rows)
	}
}

// recent returns what Recent hands over, by site and probe, newest first.
func recent(t *testing.T, s *Store, since time.Time, perProbe int) []Row {
	t.Helper()
	var out []Row
	err := s.Recent(context.Background(), since, perProbe, func(r *Row) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(out, func(a, b Row) int {
		return cmp.Or(strings.Compare(a.Site, b.Site), strings.Compare(a.Probe, b.Probe), b.MeasuredAt.Compare(a.MeasuredAt))
	})
	return out
}

func item(m *wire.Measurement, recv time.Time) Item {
	p, _ := json.Marshal(m)
	return Item{Measurement: m, Payload: p, ReceivedAt: recv}
}

func status(state string, session int64, conn, sent time.Time) *wire.Status {
	return &wire.Status{Version: 1, Site: "leeds-1", AgentID: "AGENT0001", State: state, Session: session, ConnectedAt: conn, SentAt: sent, AgentVersion: "v", OS: "linux", Arch: "arm64"}
}

func TestStatusOrdering(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	c1, c2 := t0, t0.Add(time.Hour)
	steps := []struct {
		st        *wire.Status
		want      Outcome
		wantState string
	}{
		{status("online", 1, c1, c1), Stored, "online"},
		{status("online", 1, c1, c1.Add(time.Minute)), Stored, "online"},
		{status("online", 1, c1, c1.Add(30*time.Second)), Stale, "online"}, // out of order
		{status("offline", 1, c1, c1), Stored, "offline"},                  // the will: final for session 1
		{status("online", 1, c1, c1.Add(2*time.Minute)), Stale, "offline"}, // late periodic from session 1
		{status("online", 2, c2, c2), Stored, "online"},                    // reconnected
		{status("offline", 1, c1, c1), Stale, "online"},                    // a late will of session 1
		{status("online", 3, c1.Add(-time.Hour), c1), Stored, "online"},    // clock stepped back: session decides
		{func() *wire.Status { // a replaced Pi (new agent id, session 1)
			st := status("online", 1, c2.Add(time.Hour), c2.Add(time.Hour))
			st.AgentID = "AGENT0002"
			return st
		}(), Stored, "online"},
	}
	for i, st := range steps {
		out, err := s.Commit(ctx, []Item{{Status: st.st, ReceivedAt: t0.Add(time.Duration(i) * time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		agents, _ := s.Agents(ctx)
		if out[0] != st.want || len(agents) != 1 || agents[0].State != st.wantState {
			t.Fatalf("step %d: outcome %v state %v, want %v %s", i, out[0], agents, st.want, st.wantState)
		}
		if !agents[0].LastSeenAt.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("step %d: last seen %v", i, agents[0].LastSeenAt)
		}
	}
}

func TestMessageIDIsPerSite(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	a := meas("MSG000001", 1, t0, nil)
	b := meas("MSG000001", 1, t0, nil)
	b.Site = "bradford-1"
	out, err := s.Commit(ctx, []Item{{Measurement: a, Payload: []byte(`{}`)}, {Measurement: b, Payload: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != Stored || out[1] != Stored {
		t.Fatalf("another site's id made a message a duplicate: %v", out)
	}
}

func TestOpenRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hubmon.db")
	os.WriteFile(path, []byte(strings.Repeat("garbage!", 1000)), 0o600)
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "not an SQLite database") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b[:8]) != "garbage!" {
		t.Fatal("Open modified a foreign file")
	}
}

func TestConcurrentCommits(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := "W" + string(rune('A'+w)) + strings.Repeat("0", 6) + string(rune('a'+i%26)) + string(rune('a'+i/26))
				if _, err := s.Commit(ctx, []Item{{Measurement: meas(id, int64(i+1), t0, nil), Payload: []byte(`{}`), ReceivedAt: t0}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, _ := s.Count(ctx); n != 200 {
		t.Fatalf("count %d, want 200", n)
	}
}

func BenchmarkCommit100(b *testing.B) {
	s := openStore(b)
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 600))
	n := 0
	for b.Loop() {
		items := make([]Item, 100)
		for i := range items {
			n++
			items[i] = Item{Measurement: meas("MSG"+strconv.Itoa(100000+n), int64(n), t0, wire.Float(1e7)), Payload: payload, ReceivedAt: t0}
		}
		if _, err := s.Commit(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

func TestLineTotals(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var items []Item
	for i, recv := range []int64{40, 10, 38} {
		m := &wire.Measurement{Version: 1, MessageID: "LQ00000" + strconv.Itoa(i), Site: "leeds-1", AgentID: "AGENT0001", Seq: int64(i + 1),
			Probe: "line", Kind: wire.KindLineQuality, MeasuredAt: t0.Add(time.Duration(i) * time.Minute), Success: true,
			LineQuality: &wire.LineQuality{Method: "udp", Target: "x:1", IntervalSeconds: 60, Sent: 40, Received: recv}}
		if i == 1 {
			m.LineQuality.Outages = []wire.Outage{{Start: t0, End: t0.Add(45 * time.Second), DurationSeconds: 45, Cause: "wan", LostProbes: 30},
				{Start: t0, End: t0.Add(5 * time.Second), DurationSeconds: 5, Cause: "lan", LostProbes: 3}}
		}
		items = append(items, item(m, t0))
	}
	items = append(items, items[1]) // a duplicate is not counted twice
	if _, err := s.Commit(ctx, items); err != nil {
		t.Fatal(err)
	}
	got, err := s.LineTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Sent != 120 || got[0].Received != 88 || got[0].Outages["wan"] != 1 || got[0].OutageSeconds["wan"] != 45 || got[0].OutageSeconds["lan"] != 5 {
		t.Fatalf("LineTotals = %+v", got)
	}
}

func TestWriterSettings(t *testing.T) {
	s := openStore(t)
	for pragma, want := range map[string]int{"wal_autocheckpoint": 16384, "cache_size": -16384} {
		var got int
		if err := s.w.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer's %s = %d, want %d", pragma, got, want)
		}
	}
}
