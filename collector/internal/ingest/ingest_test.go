package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/store"
)

const site = "leeds-central-library"

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type acks struct {
	mu   sync.Mutex
	msgs []wire.Ack
}

func (a *acks) publish(topic string, payload []byte) error {
	s, kind, err := wire.ParseTopic(topic)
	if err != nil || kind != wire.TopicAck {
		return err
	}
	ack, err := wire.DecodeAck(payload, s)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.msgs = append(a.msgs, *ack)
	a.mu.Unlock()
	return nil
}

func (a *acks) all() (stored []string, rejected []wire.Rejected) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.msgs {
		stored = append(stored, m.Stored...)
		rejected = append(rejected, m.Rejected...)
	}
	return
}

type fixture struct {
	in     *Ingester
	st     *store.Store
	health *metrics.Health
	acks   *acks
}

func setup(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hubmon.db"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	f := &fixture{st: st, health: metrics.NewHealth(reg), acks: &acks{}}
	f.in = New(Options{Store: st, Fleet: metrics.NewFleet(), Health: f.health, Now: func() time.Time { return now }, AckDelay: 5 * time.Millisecond})
	f.in.SetPublisher(f.acks.publish)
	t.Cleanup(func() { f.in.Close(); st.Close() })
	return f
}

func golden(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../agent/wire/testdata/measurement-v1-speedtest.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandleStoresOnceAndAcks(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	p := golden(t)
	for range 3 { // redelivery
		if err := f.in.Handle(ctx, site, wire.TopicMeasurement, p); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := f.st.Count(ctx); n != 1 {
		t.Fatalf("stored %d rows, want 1", n)
	}
	if got := testutil.ToFloat64(f.health.Messages.WithLabelValues("measurement", "duplicate")); got != 2 {
		t.Errorf("duplicates counted %v, want 2", got)
	}
	waitFor(t, "3 acks", func() bool { s, _ := f.acks.all(); return len(s) == 3 })
	stored, _ := f.acks.all()
	for _, id := range stored {
		if id != "Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS" {
			t.Fatalf("acked %q", id)
		}
	}
}

func TestHandleRejects(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	p := golden(t)
	future := []byte(strings.Replace(string(p), "2026-11-26T11:58:03.25Z", "2026-11-27T11:58:03Z", 1))
	v2 := []byte(strings.Replace(string(p), `"version": 1`, `"version": 2`, 1))
	for _, c := range []struct {
		site, kind string
		payload    []byte
	}{
		{site, wire.TopicMeasurement, future},
		{site, wire.TopicMeasurement, v2},
		{"bradford-library", wire.TopicMeasurement, p}, // claims another site
		{site, wire.TopicMeasurement, []byte("\xff\xfe")},
		{site, wire.TopicAck, p},
	} {
		if err := f.in.Handle(ctx, c.site, c.kind, c.payload); err != nil {
			t.Fatalf("rejection returned an error (the broker would redeliver forever): %v", err)
		}
	}
	if n, _ := f.st.Count(ctx); n != 0 {
		t.Fatalf("stored %d rejected rows", n)
	}
	for reason, want := range map[string]float64{"future": 1, "version": 1, "site_mismatch": 1, "malformed": 1, "bad_topic": 1} {
		if got := testutil.ToFloat64(f.health.Rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	// none of these is rejected back to the agent for good: the future one
	// may be the collector's clock, a newer collector takes version 2, the
	// mismatched one is not this site's to drop
	negative := []byte(strings.Replace(string(p), "34200000", "-1", 1))
	badID := []byte(strings.Replace(string(p), "Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS", "not an id!", 1))
	for _, pl := range [][]byte{negative, badID} {
		if err := f.in.Handle(ctx, site, wire.TopicMeasurement, pl); err != nil {
			t.Fatal(err)
		}
	}
	// the negative speed is permanent: rejected back, so the agent drops it;
	// the bad id cannot be named in an ack (it would spoil the whole ack)
	waitFor(t, "a reject ack", func() bool { _, r := f.acks.all(); return len(r) > 0 })
	time.Sleep(50 * time.Millisecond) // let any wrong extra ack arrive
	_, rej := f.acks.all()
	if len(rej) != 1 || rej[0].MessageID != "Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS" || !strings.Contains(rej[0].Reason, "download_bits_per_second") {
		t.Fatalf("rejected acks %+v", rej)
	}
}

func TestHandleStoreFailureIsAnError(t *testing.T) {
	f := setup(t)
	if err := f.in.Ready(); err != nil {
		t.Fatalf("Ready before any commit: %v", err)
	}
	f.st.Close() // the database is gone
	err := f.in.Handle(context.Background(), site, wire.TopicMeasurement, golden(t))
	if err == nil {
		t.Fatal("Handle returned nil although nothing was stored: the broker would ack a lost message")
	}
	if err := f.in.Ready(); err == nil || !strings.Contains(err.Error(), "commit to the history failed") {
		t.Errorf("Ready after a failed commit = %v, want the commit's error", err)
	}
	if got := testutil.ToFloat64(f.health.Messages.WithLabelValues("measurement", "store_error")); got != 1 {
		t.Errorf("store_error = %v", got)
	}
}

func TestConcurrentHandleBatches(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	base := golden(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			var m wire.Measurement
			json.Unmarshal(base, &m)
			m.MessageID = "MSG" + strings.Repeat("0", 5) + string(rune('A'+i%26)) + string(rune('A'+i/26))
			p, _ := json.Marshal(m)
			if err := f.in.Handle(ctx, site, wire.TopicMeasurement, p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, _ := f.st.Count(ctx); n != 200 {
		t.Fatalf("stored %d, want 200", n)
	}
	if n := f.in.waiting.Load(); n != 0 {
		t.Errorf("%d requests of Handle still counted waiting after every commit", n)
	}
	f.in.Close()
	stored, _ := f.acks.all()
	if len(stored) != 200 {
		t.Fatalf("acked %d after Close, want 200", len(stored))
	}
	if err := f.in.Handle(ctx, site, wire.TopicMeasurement, base); err != ErrClosed {
		t.Fatalf("Handle after Close = %v", err)
	}
}

// BenchmarkHandleParallel measures validated, committed, acknowledged
// measurements per second with concurrent callers (as with many agents).
func BenchmarkHandleParallel(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "hubmon.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	in := New(Options{Store: st, Fleet: metrics.NewFleet(), Health: metrics.NewHealth(prometheus.NewRegistry())})
	in.SetPublisher(func(string, []byte) error { return nil })
	defer in.Close()
	base, err := os.ReadFile("../../../agent/wire/testdata/measurement-v1-speedtest.json")
	if err != nil {
		b.Fatal(err)
	}
	var m wire.Measurement
	json.Unmarshal(base, &m)
	m.MeasuredAt = time.Now().UTC()
	var n atomic.Int64
	b.SetParallelism(64) // many agents at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mm := m
		for pb.Next() {
			mm.MessageID = fmt.Sprintf("MSG%012d", n.Add(1))
			p, _ := json.Marshal(mm)
			if err := in.Handle(context.Background(), site, wire.TopicMeasurement, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "msgs/s")
}

// While the publisher is busy (too many acks in flight), acks are kept, a
// site's gathered into one message, and published when it takes them again:
// none lost, none counted as errors.
func TestAcksWaitWhilePublisherBusy(t *testing.T) {
	f := setup(t)
	var busy atomic.Bool
	busy.Store(true)
	var refused atomic.Int64
	f.in.SetPublisher(func(topic string, payload []byte) error {
		if busy.Load() {
			refused.Add(1)
			return ErrAckBusy
		}
		return f.acks.publish(topic, payload)
	})
	ctx := context.Background()
	var m wire.Measurement
	if err := json.Unmarshal(golden(t), &m); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		m.MessageID = fmt.Sprintf("Z3Q6B7Y4M2KD5WXAJ7H2N4P%03d", i)
		m.Seq = int64(i + 1)
		p, _ := json.Marshal(&m)
		if err := f.in.Handle(ctx, site, wire.TopicMeasurement, p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the publisher to be asked several times", func() bool { return refused.Load() >= 3 })
	if s, _ := f.acks.all(); len(s) != 0 {
		t.Fatalf("%d acks published while busy", len(s))
	}
	busy.Store(false)
	waitFor(t, "every ack", func() bool { s, _ := f.acks.all(); return len(s) == n })
	f.acks.mu.Lock()
	msgs := len(f.acks.msgs)
	f.acks.mu.Unlock()
	if msgs != 1 {
		t.Errorf("%d ack messages for one site's %d acks held back, want 1", msgs, n)
	}
	if got := testutil.ToFloat64(f.health.Acks.WithLabelValues("error")); got != 0 {
		t.Errorf("ack errors counted: %v", got)
	}
}

// gather commits a message that comes alone at once, and waits for more
// while they come fast, until the batch is full, but not for callers of
// Handle when all of them are in the batch.
func TestGatherWaitsOnlyWhileMessagesComeFast(t *testing.T) {
	in := &Ingester{opts: Options{MaxBatch: 50, GroupWait: 10 * time.Second}, reqs: make(chan *request, 100), closing: make(chan struct{})}
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for range 3 {
		in.reqs <- &request{}
	}
	start := time.Now()
	if b := in.gather(nil, wait); len(b) != 3 || time.Since(start) > 5*time.Second {
		t.Fatalf("3 messages queued: a batch of %d after %s, want 3 at once", len(b), time.Since(start))
	}
	for range groupMin {
		in.reqs <- &request{}
	}
	go func() {
		for range 50 - groupMin {
			time.Sleep(time.Millisecond)
			in.reqs <- &request{}
		}
	}()
	start = time.Now()
	if b := in.gather(nil, wait); len(b) != 50 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d queued and more coming: a batch of %d after %s, want the full 50 before GroupWait", groupMin, len(b), time.Since(start))
	}
	// every caller of Handle waiting is in the batch: nothing more can come
	in.waiting.Store(groupMin + 4)
	for range groupMin + 4 {
		in.reqs <- &request{sync: true}
	}
	start = time.Now()
	if b := in.gather(nil, wait); len(b) != groupMin+4 || time.Since(start) > 5*time.Second {
		t.Fatalf("every waiting caller queued: a batch of %d after %s, want %d at once", len(b), time.Since(start), groupMin+4)
	}
	// no waiting at all once closing
	in.reqs <- &request{}
	if b := in.gather(nil, nil); len(b) != 1 {
		t.Fatalf("closing: a batch of %d, want 1", len(b))
	}
}
