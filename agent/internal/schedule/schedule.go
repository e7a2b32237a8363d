// Package schedule runs the agent's probes and turns each run into a
// measurement.
//
// Each job runs in its own goroutine. Light jobs (line quality, DNS, HTTP,
// Wi-Fi) run every Interval, start to start, with a random splay so a fleet
// started at once does not probe at once; a job whose runs last its interval
// (line quality) runs back to back. Heavy jobs (speed tests) load the line:
// two never run at once, and each run is weighed against the month's data
// Budget, which may shorten or skip it. A heavy job either runs on its
// interval too, or follows a Plan: a few runs a day at random times inside
// daily windows such as the opening hours. A planned run that finds another
// heavy run still going (another job's, or its own that overran) is skipped
// and counted, not queued.
//
// The scheduler owns the timeout, the duration, success and the error text; a
// probe only measures (the blackbox_exporter model). Time comes from a Clock,
// so tests can run a simulated month in milliseconds.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// Job is one configured probe.
type Job struct {
	Name     string
	Kind     string
	Interval time.Duration // between the starts of two runs; 0: back to back
	Splay    time.Duration // random extra delay, 0..Splay, before each run
	FirstRun time.Duration // delay before the first run
	Timeout  time.Duration
	Heavy    bool // loads the line: never concurrently with another heavy job
	// Prober measures. A heavy job sets NewProber instead, so that its
	// runs can be shortened.
	Prober probe.Prober
	// NewProber returns the prober of a heavy job's run that measures each
	// direction for d (at most Duration).
	NewProber func(d time.Duration) probe.Prober
	// Duration is a heavy job's full measuring time per direction.
	Duration time.Duration
	// Plan, if set, runs a heavy job at planned times; Interval, Splay and
	// FirstRun are then not used.
	Plan *Plan
}

// prober returns the prober of a run measuring d per direction.
func (j Job) prober(d time.Duration) probe.Prober {
	if j.NewProber != nil {
		return j.NewProber(d)
	}
	return j.Prober
}

// Sink receives each finished measurement (the agent commits it to the
// outbox). An error is logged; the measurement is then lost, which the log
// says.
type Sink func(ctx context.Context, m *wire.Measurement) error

// Clock is the scheduler's time. Now is the wall clock (plans are made in
// it); After waits, like time.After.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure Run.
type Options struct {
	Sink   Sink
	Logger *slog.Logger
	// Clock is the time; nil for the real one.
	Clock Clock
	// Location is the site's time zone, in which plans' days are; nil for
	// UTC.
	Location *time.Location
	// Seed makes this agent's plans its own (the agent derives it from its
	// id, so they stay the same across restarts).
	Seed uint64
	// Budget weighs and counts heavy runs; nil for one without a limit,
	// kept in memory.
	Budget *Budget
	// Busy, if set, is true while a heavy job's probe runs and false
	// otherwise, so that light probes can tell the agent's own load on the
	// line (probe.LineQualityConfig.Busy) from the line's state.
	Busy *atomic.Bool
}

// RunOnce runs job now and returns its measurement. It returns nil when ctx
// was cancelled during the run: a run the agent itself interrupted (shutdown)
// measured nothing about the line. A heavy job runs at its full Duration.
func RunOnce(ctx context.Context, job Job) *wire.Measurement {
	return runOnce(ctx, job, job.prober(job.Duration), realClock{})
}

func runOnce(ctx context.Context, job Job, p probe.Prober, clock Clock) *wire.Measurement {
	start := clock.Now()
	runCtx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	res, err := safeProbe(runCtx, p)
	if ctx.Err() != nil {
		return nil
	}
	m := &wire.Measurement{
		Probe:           job.Name,
		Kind:            job.Kind,
		MeasuredAt:      start.UTC(),
		DurationSeconds: max(0, clock.Now().Sub(start).Seconds()),
		Success:         err == nil,
		Speedtest:       res.Speedtest,
		LineQuality:     res.LineQuality,
		DNS:             res.DNS,
		HTTP:            res.HTTP,
		WiFi:            res.WiFi,
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

// Run runs jobs until ctx is done, passing every measurement to opts.Sink.
// It returns when every job has stopped; a run in progress is cancelled.
func Run(ctx context.Context, jobs []Job, opts Options) {
	s := &scheduler{opts: opts, jobs: jobs, heavy: make(chan struct{}, 1), planners: make(map[string]*planner)}
	if s.opts.Clock == nil {
		s.opts.Clock = realClock{}
	}
	if s.opts.Location == nil {
		s.opts.Location = time.UTC
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if s.opts.Budget == nil {
		s.opts.Budget, _ = NewBudget(ctx, BudgetConfig{Location: s.opts.Location, Now: s.opts.Clock.Now}) // no store: cannot fail
	}
	s.clock, s.log, s.budget = s.opts.Clock, s.opts.Logger, s.opts.Budget
	for _, j := range jobs {
		if j.Heavy && j.Plan != nil {
			s.planners[j.Name] = newPlanner(j.Plan, s.opts.Location, s.opts.Seed, j.Name)
		}
	}
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() {
			if p := s.planners[job.Name]; p != nil {
				s.runPlanned(ctx, job, p)
			} else {
				s.runEvery(ctx, job)
			}
		})
	}
	wg.Wait()
}

type scheduler struct {
	opts     Options
	jobs     []Job
	clock    Clock
	log      *slog.Logger
	budget   *Budget
	heavy    chan struct{} // holds a token while a heavy job runs
	planners map[string]*planner
}

// sleep waits d; false if ctx ended first.
func (s *scheduler) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.clock.After(d):
		return true
	}
}

// runEvery runs job every Interval, start to start, plus splay.
func (s *scheduler) runEvery(ctx context.Context, job Job) {
	next := job.FirstRun
	for {
		if !s.sleep(ctx, next) {
			return
		}
		start := s.clock.Now()
		if job.Heavy {
			select { // wait for the other heavy run to end
			case s.heavy <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s.runHeavy(ctx, job, start)
			<-s.heavy
		} else if m := runOnce(ctx, job, job.Prober, s.clock); m != nil {
			s.deliver(ctx, job, m)
		}
		if ctx.Err() != nil {
			return
		}
		// a run that fails at once still waits its interval: never a busy loop
		next = max(0, job.Interval-s.clock.Now().Sub(start))
		if job.Splay > 0 {
			next += rand.N(job.Splay)
		}
	}
}

const (
	// maxWait bounds one wait of a planned job, so that a wall clock that
	// jumps (a Pi without a real-time clock setting the time from NTP
	// after boot) is noticed within it.
	maxWait = 5 * time.Minute
	// lateness is how late (or early) a wake-up may be by the wall clock
	// before the wall clock is taken to have jumped.
	lateness = time.Minute
)

// runPlanned runs a heavy job at the instants of its plan.
func (s *scheduler) runPlanned(ctx context.Context, job Job, p *planner) {
	log := s.log.With("probe", job.Name)
	// cursor: planned instants up to it are dealt with (run, skipped, or
	// before the agent started)
	cursor := s.clock.Now().Round(0)
	expect := cursor
	for {
		now := s.clock.Now().Round(0) // wall clock: plans are in it
		if late := now.Sub(expect); late > lateness || late < -lateness {
			// the clock jumped forward (or the system slept): the runs
			// planned in between were never due; start from now. Or it
			// was set back (it had been ahead): the runs it had reached
			// were at wrong times, and waiting for its old time would
			// leave the day it is really in without tests; start from now
			log.Info("the clock jumped: planning from now", "jump_seconds", late.Seconds())
			cursor = now
		}
		next := p.next(cursor)
		if next.IsZero() || next.After(now) {
			wait := maxWait
			if !next.IsZero() {
				wait = min(next.Sub(now), maxWait)
			}
			if !s.sleep(ctx, wait) {
				return
			}
			expect = now.Add(wait)
			continue
		}
		cursor = next
		select {
		case s.heavy <- struct{}{}:
			s.runHeavy(ctx, job, next)
			<-s.heavy
		default:
			s.budget.skip(job, next, "another speed test was still running")
		}
		if ctx.Err() != nil {
			return
		}
		// runs planned while this one went on are skipped, not queued
		end := s.clock.Now().Round(0)
		for t := p.next(cursor); !t.IsZero() && !t.After(end); t = p.next(cursor) {
			s.budget.skip(job, t, "the previous speed test was still running")
			cursor = t
		}
		expect = end
	}
}

// runHeavy runs a heavy job planned at at, holding the heavy token, as the
// budget allows.
func (s *scheduler) runHeavy(ctx context.Context, job Job, at time.Time) {
	dec := s.budget.decide(job, at, s.runsLeft(at))
	if !dec.run {
		return // skipped, counted and logged by the budget
	}
	if dec.duration < job.Duration {
		s.log.Info("speed test shortened to stay inside the data budget", "probe", job.Name,
			"duration_seconds", dec.duration.Seconds(), "full_duration_seconds", job.Duration.Seconds(),
			"estimated_bytes", dec.estimate, "reason", dec.reason)
	}
	m := s.loading(func() *wire.Measurement { return runOnce(ctx, job, job.prober(dec.duration), s.clock) })
	s.budget.record(job, at, dec, m)
	if m != nil {
		s.deliver(ctx, job, m)
	}
}

// loading runs f with opts.Busy set. Heavy runs never overlap (the heavy
// token), so one flag is enough.
func (s *scheduler) loading(f func() *wire.Measurement) *wire.Measurement {
	if s.opts.Busy == nil {
		return f()
	}
	s.opts.Busy.Store(true)
	defer s.opts.Busy.Store(false)
	return f()
}

// runsLeft counts the heavy runs planned from at to the end of its month,
// in the site's time zone: exactly for planned jobs, by their mean interval
// for the others.
func (s *scheduler) runsLeft(at time.Time) int {
	lt := at.In(s.opts.Location)
	end := time.Date(lt.Year(), lt.Month()+1, 1, 0, 0, 0, 0, s.opts.Location)
	n := 0
	for _, j := range s.jobs {
		switch p := s.planners[j.Name]; {
		case !j.Heavy:
		case p != nil:
			n += p.count(at, end)
		default:
			n += int(end.Sub(at)/max(j.Interval+j.Splay/2, time.Minute)) + 1
		}
	}
	return max(n, 1)
}

// deliver passes m to the sink and logs the outcome.
func (s *scheduler) deliver(ctx context.Context, job Job, m *wire.Measurement) {
	lg := s.log.With("probe", job.Name, "kind", job.Kind, "duration_seconds", m.DurationSeconds)
	switch err := s.opts.Sink(ctx, m); {
	case err != nil:
		lg.Error("measurement not stored; it is lost", "err", err)
	case !m.Success:
		lg.Warn("probe failed", "seq", m.Seq, "err", m.Error)
	case job.Heavy:
		lg.Info("probe succeeded", "seq", m.Seq)
	default: // light probes run every minute or so: not worth a line each
		lg.Debug("probe succeeded", "seq", m.Seq)
	}
}
