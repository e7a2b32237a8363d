package schedule

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // the same zones on every machine

	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// fakeClock is a Clock whose time moves only in advance: a month of
// scheduling runs in milliseconds, and exactly the same way each time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{} // closed, and replaced, when a waiter is added
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, added: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	close(c.added)
	c.added = make(chan struct{})
	return ch
}

// advance moves the clock to until. Each time all n goroutines that use the
// clock are waiting on it (the scheduler's jobs: each one either sleeps or
// runs a fake prober that waits on the clock), it jumps to the earliest
// wake-up and fires it.
func (c *fakeClock) advance(n int, until time.Time) {
	for {
		c.mu.Lock()
		for len(c.waiters) < n {
			added := c.added
			c.mu.Unlock()
			<-added
			c.mu.Lock()
		}
		first := c.waiters[0].at
		for _, w := range c.waiters {
			if w.at.Before(first) {
				first = w.at
			}
		}
		if first.After(until) {
			c.now = until
			c.mu.Unlock()
			return
		}
		if first.After(c.now) { // after a jump, wake-ups can be overdue
			c.now = first
		}
		var keep []fakeWaiter
		for _, w := range c.waiters {
			if w.at.After(c.now) {
				keep = append(keep, w)
			} else {
				w.ch <- c.now
			}
		}
		c.waiters = keep
		c.mu.Unlock()
	}
}

// jump moves the wall clock without firing anything, like NTP stepping it.
func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// step moves the wall clock by d, backwards too, keeping every pending
// wake-up the same real time away (a timer runs on the monotonic clock, which
// a step of the wall clock does not move).
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for i := range c.waiters {
		c.waiters[i].at = c.waiters[i].at.Add(d)
	}
}

// line is a simulated broadband line that fake speed tests measure.
type line struct {
	downBPS, upBPS float64
	clock          *fakeClock
	// inside counts the speed tests running, maxInside the most at once
	inside, maxInside atomic.Int32
	mu                sync.Mutex
	runs              []simRun
}

type simRun struct {
	probe    string
	at       time.Time
	duration time.Duration
	bytes    int64
}

// newProber returns a job's NewProber: a test that loads the line for the
// warm-up and d in each direction (in fake time) and reports rate × that
// time in bytes.
func (l *line) newProber(name string) func(d time.Duration) probe.Prober {
	return func(d time.Duration) probe.Prober {
		return proberFunc(func(ctx context.Context) (probe.Result, error) {
			start := l.clock.Now()
			n := l.inside.Add(1)
			defer l.inside.Add(-1)
			for {
				m := l.maxInside.Load()
				if n <= m || l.maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			secs := loaded(d).Seconds()
			select {
			case <-ctx.Done():
				return probe.Result{}, ctx.Err()
			case <-l.clock.After(2*loaded(d) + 2*time.Second): // latency, then each direction
			}
			st := &wire.Speedtest{
				DownloadBitsPerSecond: wire.Float(l.downBPS), UploadBitsPerSecond: wire.Float(l.upBPS), LatencySeconds: wire.Float(0.02),
				DownloadBytes: int64(l.downBPS / 8 * secs), UploadBytes: int64(l.upBPS / 8 * secs),
			}
			l.mu.Lock()
			l.runs = append(l.runs, simRun{name, start, d, st.BytesUsed()})
			l.mu.Unlock()
			return probe.Result{Kind: wire.KindSpeedtest, Speedtest: st}, nil
		})
	}
}

func (l *line) taken() []simRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]simRun(nil), l.runs...)
}

// simulate runs jobs from the clock's time to until, and returns the
// measurements they delivered.
func simulate(tb testing.TB, clock *fakeClock, jobs []Job, opts Options, until time.Time) []*wire.Measurement {
	tb.Helper()
	var mu sync.Mutex
	var got []*wire.Measurement
	opts.Clock = clock
	opts.Sink = func(ctx context.Context, m *wire.Measurement) error {
		// what the scheduler makes must pass the collector's validation
		v := *m
		v.Version, v.MessageID, v.Site, v.AgentID, v.Seq = wire.Version, "MSG0000001", "x-site", "AGENT0001", 1
		if err := v.Validate("x-site", m.MeasuredAt); err != nil {
			tb.Errorf("invalid measurement: %v", err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, jobs, opts)
	}()
	clock.advance(len(jobs), until)
	cancel()
	<-done
	return got
}
