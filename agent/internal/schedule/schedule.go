// Package schedule runs the agent's probes on their intervals and turns each
// run into a measurement.
//
// Each job runs in its own goroutine. Heavy jobs (speed tests) take a shared
// lock, so two never overlap and saturate the line together. Every interval
// gets a random splay, so a fleet started at once does not test at once.
// The scheduler owns the timeout, the duration, success and the error text; a
// probe only measures (the blackbox_exporter model).
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// Job is one configured probe.
type Job struct {
	Name     string
	Kind     string
	Interval time.Duration
	Splay    time.Duration // random extra delay, 0..Splay, before each run
	FirstRun time.Duration // delay before the first run
	Timeout  time.Duration
	Heavy    bool // loads the line: never concurrently with another heavy job
	Prober   probe.Prober
}

// Sink receives each finished measurement (the agent commits it to the
// outbox). An error is logged; the measurement is then lost, which the log
// says.
type Sink func(ctx context.Context, m *wire.Measurement) error

// RunOnce runs job now and returns its measurement. It returns nil when ctx
// was cancelled during the run: a run the agent itself interrupted (shutdown)
// measured nothing about the line.
func RunOnce(ctx context.Context, job Job) *wire.Measurement {
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	res, err := safeProbe(runCtx, job.Prober)
	if ctx.Err() != nil {
		return nil
	}
	m := &wire.Measurement{
		Probe:           job.Name,
		Kind:            job.Kind,
		MeasuredAt:      start.UTC(),
		DurationSeconds: time.Since(start).Seconds(),
		Success:         err == nil,
		Speedtest:       res.Speedtest,
	}
	if err != nil {
		if runCtx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s: %w", job.Timeout, err)
		}
		m.Error = truncate(err.Error(), 1000)
	}
	if m.Kind == wire.KindSpeedtest && m.Speedtest == nil {
		m.Speedtest = &wire.Speedtest{}
	}
	return m
}

// safeProbe turns a probe's panic into a failed run instead of a dead agent.
func safeProbe(ctx context.Context, p probe.Prober) (res probe.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probe panicked: %v", r)
		}
	}()
	return p.Probe(ctx)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 { // do not split a UTF-8 sequence
		n--
	}
	return s[:n] + "..."
}

// Run runs jobs until ctx is done, passing every measurement to sink.
func Run(ctx context.Context, jobs []Job, sink Sink, log *slog.Logger) {
	var heavy sync.Mutex
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() {
			next := job.FirstRun
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(next):
				}
				if job.Heavy {
					heavy.Lock()
				}
				m := RunOnce(ctx, job)
				if job.Heavy {
					heavy.Unlock()
				}
				if m == nil {
					return // cancelled
				}
				lg := log.With("probe", job.Name, "kind", job.Kind, "duration_seconds", m.DurationSeconds)
				if err := sink(ctx, m); err != nil {
					lg.Error("measurement not stored; it is lost", "err", err)
				} else if m.Success {
					lg.Info("probe succeeded", "seq", m.Seq)
				} else {
					lg.Warn("probe failed", "seq", m.Seq, "err", m.Error)
				}
				next = job.Interval
				if job.Splay > 0 {
					next += rand.N(job.Splay)
				}
			}
		})
	}
	wg.Wait()
}
