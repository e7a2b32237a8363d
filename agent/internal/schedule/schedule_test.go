package schedule

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

type proberFunc func(ctx context.Context) (probe.Result, error)

func (f proberFunc) Probe(ctx context.Context) (probe.Result, error) { return f(ctx) }

func job(p proberFunc) Job {
	return Job{Name: "local", Kind: wire.KindSpeedtest, Interval: time.Hour, Timeout: time.Second, Prober: p}
}

func TestRunOnce(t *testing.T) {
	tests := []struct {
		name    string
		p       proberFunc
		success bool
		errHas  string
	}{
		{"success", func(ctx context.Context) (probe.Result, error) {
			return probe.Result{Kind: wire.KindSpeedtest, Speedtest: &wire.Speedtest{DownloadBitsPerSecond: wire.Float(1e6), UploadBitsPerSecond: wire.Float(1e6), LatencySeconds: wire.Float(0.01)}}, nil
		}, true, ""},
		{"failure keeps partial figures", func(ctx context.Context) (probe.Result, error) {
			return probe.Result{Speedtest: &wire.Speedtest{DownloadBitsPerSecond: wire.Float(1e6)}}, errors.New("upload: N/A")
		}, false, "upload: N/A"},
		{"timeout", func(ctx context.Context) (probe.Result, error) {
			<-ctx.Done()
			return probe.Result{}, ctx.Err()
		}, false, "timed out after 1s"},
		{"panic", func(ctx context.Context) (probe.Result, error) { panic("boom") }, false, "probe panicked: boom"},
		{"long error", func(ctx context.Context) (probe.Result, error) {
			return probe.Result{}, errors.New(strings.Repeat("é", 2000))
		}, false, "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := RunOnce(context.Background(), job(tt.p))
			if m == nil {
				t.Fatal("nil measurement")
			}
			if m.Success != tt.success || !strings.Contains(m.Error, tt.errHas) {
				t.Fatalf("success %v error %q", m.Success, m.Error)
			}
			if m.Speedtest == nil || m.Probe != "local" || m.MeasuredAt.IsZero() || m.MeasuredAt.Location() != time.UTC {
				t.Fatalf("measurement %+v", m)
			}
			// what the scheduler makes must pass the collector's validation
			m.Version, m.MessageID, m.Site, m.AgentID, m.Seq = 1, "MSG0000001", "x-site", "AGENT0001", 1
			if err := m.Validate("x-site", time.Now()); err != nil {
				t.Fatalf("invalid: %v", err)
			}
			if len(m.Error) > 1010 {
				t.Fatalf("error not truncated: %d bytes", len(m.Error))
			}
		})
	}
}

func TestRunOnceCancelledRecordsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := RunOnce(ctx, job(func(ctx context.Context) (probe.Result, error) {
		cancel()
		return probe.Result{}, context.Canceled
	}))
	if m != nil {
		t.Fatalf("a run interrupted by shutdown was recorded: %+v", m)
	}
}

// TestHeavyJobsNeverOverlap runs two heavy jobs on a short interval, in real
// time, and checks that they were never inside Probe at the same time (a
// heavy job on an interval waits for the other; planned ones skip: see
// TestPlannedNeverOverlap).
func TestHeavyJobsNeverOverlap(t *testing.T) {
	var inside, maxInside, runs atomic.Int32
	p := func(ctx context.Context) (probe.Result, error) {
		n := inside.Add(1)
		for {
			m := maxInside.Load()
			if n <= m || maxInside.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inside.Add(-1)
		runs.Add(1)
		return probe.Result{Speedtest: &wire.Speedtest{}}, errors.New("x")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, b := job(p), job(p)
	a.Heavy, b.Heavy, a.Interval, b.Interval, b.Name = true, true, time.Millisecond, time.Millisecond, "other"
	var mu sync.Mutex
	got := 0
	done := make(chan struct{})
	go func() {
		Run(ctx, []Job{a, b}, Options{Sink: func(ctx context.Context, m *wire.Measurement) error {
			mu.Lock()
			got++
			mu.Unlock()
			return nil
		}})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if runs.Load() < 20 {
		t.Fatalf("only %d runs", runs.Load())
	}
	if maxInside.Load() != 1 {
		t.Fatalf("%d heavy probes ran at once", maxInside.Load())
	}
}

// TestRunOnceKinds: RunOnce passes each kind's figures on, and runs a heavy
// job at its full duration (once ignores schedule and budget).
func TestRunOnceKinds(t *testing.T) {
	var got time.Duration
	heavy := job(nil)
	heavy.Duration = 7 * time.Second
	heavy.NewProber = func(d time.Duration) probe.Prober {
		got = d
		return proberFunc(func(ctx context.Context) (probe.Result, error) {
			return probe.Result{Kind: wire.KindSpeedtest, Speedtest: &wire.Speedtest{DownloadBytes: 1}}, nil
		})
	}
	if m := RunOnce(context.Background(), heavy); got != 7*time.Second || m.Speedtest.DownloadBytes != 1 {
		t.Fatalf("heavy job ran for %s: %+v", got, m)
	}
	res := probe.Result{
		LineQuality: &wire.LineQuality{Method: "udp"}, DNS: &wire.DNS{}, HTTP: &wire.HTTP{}, WiFi: &wire.WiFi{Interface: "wlan0"},
	}
	m := RunOnce(context.Background(), Job{Name: "x", Kind: wire.KindWiFi, Timeout: time.Second,
		Prober: proberFunc(func(ctx context.Context) (probe.Result, error) { return res, nil })})
	if m.LineQuality != res.LineQuality || m.DNS != res.DNS || m.HTTP != res.HTTP || m.WiFi != res.WiFi || m.Speedtest != nil {
		t.Fatalf("figures not passed on: %+v", m)
	}
}

// TestBusy: Options.Busy is set while a heavy probe runs, and only then.
func TestBusy(t *testing.T) {
	from := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(from)
	var busy atomic.Bool
	var inHeavy []bool
	heavy := Job{Name: "internet", Kind: wire.KindSpeedtest, Heavy: true, Interval: time.Hour, FirstRun: 30 * time.Second, Timeout: time.Hour, Duration: 10 * time.Second,
		NewProber: func(d time.Duration) probe.Prober {
			return proberFunc(func(ctx context.Context) (probe.Result, error) {
				inHeavy = append(inHeavy, busy.Load())
				<-clock.After(time.Minute)
				panic("boom") // Busy is cleared all the same
			})
		}}
	// samples at 00:00:10, during the speed test (00:00:30-00:01:30) at
	// 00:01:10, then at 00:02:10 ...
	var seen []bool
	light := Job{Name: "dns", Kind: wire.KindDNS, Interval: time.Minute, FirstRun: 10 * time.Second, Timeout: time.Hour,
		Prober: proberFunc(func(ctx context.Context) (probe.Result, error) {
			seen = append(seen, busy.Load())
			return probe.Result{}, errors.New("x")
		})}
	simulate(t, clock, []Job{heavy, light}, Options{Busy: &busy}, from.Add(3*time.Minute))
	if len(inHeavy) != 1 || !inHeavy[0] || len(seen) != 3 || seen[0] || !seen[1] || seen[2] || busy.Load() {
		t.Fatalf("busy in the heavy probe %v; seen by the light one at 00:00:10, 00:01:10, 00:02:10: %v; at the end %v", inHeavy, seen, busy.Load())
	}
}
