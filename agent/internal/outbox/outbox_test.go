package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

func open(tb testing.TB, path string, max int) *Outbox {
	tb.Helper()
	o, err := Open(path, "leeds-central-library", max)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

func measurement(i int) *wire.Measurement {
	return &wire.Measurement{
		Probe: "local", Kind: wire.KindSpeedtest, Success: true,
		MeasuredAt: time.Date(2026, 11, 26, 12, 0, i, 0, time.UTC),
		Speedtest:  &wire.Speedtest{DownloadBitsPerSecond: wire.Float(float64(i) * 1e6), UploadBitsPerSecond: wire.Float(1e6), LatencySeconds: wire.Float(0.01)},
	}
}

func TestAddPendingDelete(t *testing.T) {
	ctx := context.Background()
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), 100)
	var ids []string
	for i := range 5 {
		m := measurement(i)
		if err := o.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
		if m.Seq != int64(i+1) || m.AgentID != o.AgentID() || m.Site != "leeds-central-library" || m.MessageID == "" {
			t.Fatalf("Add did not fill identity: %+v", m)
		}
		// what was stored is a valid wire message
		if err := m.Validate("leeds-central-library", m.MeasuredAt); err != nil {
			t.Fatalf("stored message invalid: %v", err)
		}
		ids = append(ids, m.MessageID)
	}
	got, err := o.Pending(ctx, 0, 3, func(id string) bool { return id == ids[0] })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].MessageID != ids[1] || got[2].MessageID != ids[3] {
		t.Fatalf("Pending = %v", got)
	}
	if _, err := wire.DecodeMeasurement(got[0].Payload, "leeds-central-library", time.Now()); err != nil {
		t.Fatalf("payload does not decode: %v", err)
	}
	n, err := o.Delete(ctx, []string{ids[0], ids[2], "NOTINTHEOUTBOX"})
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v; want 2", n, err)
	}
	// a redelivered ack is harmless
	if n, err := o.Delete(ctx, []string{ids[0]}); err != nil || n != 0 {
		t.Fatalf("second Delete = %d, %v", n, err)
	}
	st, err := o.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 3 || st.DroppedTotal != 0 || !st.Oldest.Equal(time.Date(2026, 11, 26, 12, 0, 1, 0, time.UTC)) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestSessionsAndCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 100)
	for want := int64(1); want <= 3; want++ {
		if n, err := o.NextSession(ctx); err != nil || n != want {
			t.Fatalf("NextSession = %d, %v; want %d", n, err, want)
		}
	}
	o.Close()
	o = open(t, path, 100)
	if n, _ := o.NextSession(ctx); n != 4 {
		t.Fatalf("session after reopen = %d, want 4", n)
	}
	for i := range 5 {
		o.Add(ctx, measurement(i))
	}
	got, _ := o.Pending(ctx, 3, 10, nil)
	if len(got) != 2 || got[0].Seq != 4 {
		t.Fatalf("Pending after 3 = %+v", got)
	}
}

func TestBoundDropsOldestAndCounts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 10)
	for i := range 25 {
		if err := o.Add(ctx, measurement(i)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := o.Stats(ctx)
	if st.Backlog != 10 || st.DroppedTotal != 15 {
		t.Fatalf("Stats = %+v, want backlog 10 dropped 15", st)
	}
	got, _ := o.Pending(ctx, 0, 100, nil)
	if got[0].Seq != 16 || got[9].Seq != 25 {
		t.Fatalf("kept seq %d..%d, want the newest 16..25", got[0].Seq, got[9].Seq)
	}
	// the counter and the identity survive a restart; seq never goes back
	id := o.AgentID()
	o.Close()
	o2 := open(t, path, 10)
	st, _ = o2.Stats(ctx)
	if st.DroppedTotal != 15 || o2.AgentID() != id {
		t.Fatalf("after reopen: %+v, agent %q (was %q)", st, o2.AgentID(), id)
	}
	o2.Delete(ctx, []string{got[9].MessageID}) // delete the newest: AUTOINCREMENT must not reuse 25
	m := measurement(99)
	if err := o2.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m.Seq != 26 {
		t.Fatalf("seq after reopen = %d, want 26", m.Seq)
	}
}

// TestIdentityIgnoresTheClock: a wall clock that jumps back and forth (the
// measurements' times) changes neither the order of seq nor the uniqueness
// of message ids: both come from the outbox, not the clock.
func TestIdentityIgnoresTheClock(t *testing.T) {
	ctx := context.Background()
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), 100)
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ids := map[string]bool{}
	var last int64
	for i, jump := range []time.Duration{0, -24 * time.Hour, 365 * 24 * time.Hour, -365 * 24 * time.Hour, 0, -time.Minute} {
		at = at.Add(jump)
		m := measurement(0)
		m.MeasuredAt = at
		if err := o.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
		if m.Seq != last+1 || ids[m.MessageID] {
			t.Fatalf("measurement %d (clock %s): seq %d after %d, id %s seen before: %v", i, at, m.Seq, last, m.MessageID, ids[m.MessageID])
		}
		last, ids[m.MessageID] = m.Seq, true
	}
}

func TestOpenRejectsGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	os.WriteFile(path, []byte(strings.Repeat("not a database ", 500)), 0o600)
	_, err := Open(path, "x-site", 10)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(garbage) = %v, want ErrCorrupt naming the file", err)
	}
	o, aside, err := Recover(path, "x-site", 10, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if b, _ := os.ReadFile(aside); !strings.HasPrefix(string(b), "not a database") {
		t.Fatalf("corrupt file not kept at %s", aside)
	}
	if err := o.Add(context.Background(), measurement(1)); err != nil {
		t.Fatalf("recovered outbox unusable: %v", err)
	}
}

// TestKilledWriterLosesNothing runs a child process that adds measurements as
// fast as it can and prints each message id after Add returns; the parent
// SIGKILLs it mid-write. Every id the child reported as committed must be in
// the outbox, and the file must be intact. (SIGKILL loses the process, not the
// page cache; a power cut is covered by synchronous=FULL, which this cannot
// show.)
func TestKilledWriterLosesNothing(t *testing.T) {
	if os.Getenv("OUTBOX_CHILD") != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildWriter$", "-test.v")
		cmd.Env = append(os.Environ(), "OUTBOX_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var committed []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				committed = append(committed, id)
				if len(committed) == 50+round*37 {
					cmd.Process.Kill()
					break
				}
			}
		}
		cmd.Wait()
		if len(committed) < 50 {
			t.Fatalf("round %d: child committed only %d", round, len(committed))
		}
		o, err := Open(path, "leeds-central-library", 1_000_000)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		have := map[string]bool{}
		all, err := o.Pending(ctx, 0, 1_000_000, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			have[e.MessageID] = true
		}
		for _, id := range committed {
			if !have[id] {
				t.Errorf("round %d: committed %s lost", round, id)
			}
		}
		o.Close()
	}
}

func TestChildWriter(t *testing.T) {
	path := os.Getenv("OUTBOX_CHILD")
	if path == "" {
		t.Skip("only as a child of TestKilledWriterLosesNothing")
	}
	o, err := Open(path, "leeds-central-library", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100_000 { // bounded; the parent kills it long before
		m := measurement(i % 60)
		if err := o.Add(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %s\n", m.MessageID)
	}
}

func BenchmarkAdd(b *testing.B) {
	o := open(b, filepath.Join(b.TempDir(), "outbox.db"), 1_000_000)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := o.Add(ctx, measurement(i%60)); err != nil {
			b.Fatal(err)
		}
	}
}
