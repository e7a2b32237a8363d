package main

// The last steps of hubmon-agent check: the short speed test (10) and the
// test result's way to the collector (11).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/internal/publish"
	"github.com/hubmon/hubmon/agent/internal/schedule"
	"github.com/hubmon/hubmon/agent/wire"
)

// checkSpeedtest is step 10: a short speed test against the first speed
// test's server, with the probe's own code (and a live display).
func (c *checker) checkSpeedtest(ctx context.Context) checkResult {
	switch {
	case c.speedProbe == nil:
		return skip("No speed test in the settings.")
	case c.skipSpeedtest:
		return skip("Left out (-skip-speedtest).")
	}
	st := *c.speedProbe.Speedtest
	d := c.env.speedDuration
	job := schedule.Job{
		Name: checkProbe, Kind: wire.KindSpeedtest, Heavy: true, Duration: d,
		Timeout: 2*d + 90*time.Second, // the ping phase alone may take 20 s
		NewProber: func(d time.Duration) probe.Prober {
			return probe.NewSpeedtest(probe.SpeedtestConfig{
				ServerURL: st.ServerURL, ServerIDs: st.ServerIDs, Connections: st.Connections,
				Duration: d, Progress: c.out.speedProgress,
			})
		},
	}
	m := schedule.RunOnce(ctx, job)
	if m == nil {
		return fail("Interrupted.", "", ctx.Err())
	}
	c.speed = m
	s := m.Speedtest
	if !m.Success {
		return fail("The speed test did not finish.", adviceAgain, errors.New(m.Error))
	}
	summary := fmt.Sprintf("%s download, %s upload", mbits(s.DownloadBitsPerSecond), mbits(s.UploadBitsPerSecond))
	if s.LatencySeconds != nil {
		summary += fmt.Sprintf(", latency %s", shortDuration(time.Duration(*s.LatencySeconds*float64(time.Second))))
	}
	return pass(fmt.Sprintf("%s (a %d-second test that used %s of data).", summary, int(d.Seconds()), megabytes(s.BytesUsed())))
}

func mbits(v *float64) string {
	if v == nil {
		return "? Mbit/s"
	}
	return fmt.Sprintf("%.1f Mbit/s", *v/1e6)
}

func megabytes(n int64) string {
	if n < 10e6 {
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d MB", (n+5e5)/1e6)
}

// checkCollector is step 11: a real test result goes into the outbox and
// out through the normal path, and check waits for the collector's ack (the
// only proof that it is in the history). Without the service, check runs the
// agent's publisher for the time of the wait; with it, the service sends it.
func (c *checker) checkCollector(ctx context.Context) checkResult {
	m := c.dnsResult
	what := "the name lookup of step 4"
	if c.speed != nil && c.speed.Success {
		m, what = c.speed, "the speed test above"
	}
	if m == nil {
		return fail("There is no test result to send.", adviceCouncil, errors.New("no speed test and no name lookup"))
	}
	cfg := c.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fail("The agent's data folder cannot be made.", adviceSudo, err)
	}
	ob, err := outbox.Open(cfg.OutboxPath(), cfg.Site, cfg.Outbox.MaxMessages)
	if err != nil {
		return fail("The agent's stored data cannot be opened.", adviceSudo+" If it happens again, tell your council contact.", err)
	}
	defer func() {
		ob.Close()
		matchOwner(cfg.DataDir, cfg.OutboxPath(), outbox.LockPath(cfg.OutboxPath()))
	}()
	if err := admit(m, cfg.Site, ob.AgentID(), c.env.now()); err != nil {
		return fail("The test result cannot be sent: the council's collector would refuse it.",
			"If step 5 found the clock wrong, put that right first. Otherwise tell your council contact, with the details below.", err)
	}
	oldest := oldestPending(ctx, ob)
	if err := ob.Add(ctx, m); err != nil {
		return fail("The test result cannot be stored on this Pi.", adviceSudo+" If it happens again, tell your council contact.", err)
	}
	c.sent = &checkSent{Probe: m.Probe, Kind: m.Kind, MessageID: m.MessageID}

	wait := c.env.ackWait
	var logs lastWarning
	var refused refusal
	stop := func() {}
	if c.running {
		// the service looks at its outbox at least every quarter of its
		// ack timeout
		wait += cfg.Broker.AckTimeout / 4
	} else {
		stop = c.startPublisher(ctx, ob, &logs, refused.watch(m.MessageID))
	}
	acked := waitAcked(ctx, ob, m, wait)
	stop()
	if reason, ok := refused.get(); ok {
		c.sent.Refused = reason
		return fail("The council's collector refused the test result.",
			"If step 5 found the clock wrong, put that right first. Otherwise tell your council contact, with the details below.", errors.New(reason))
	}
	progressed := !acked && oldest > 0 && oldestPending(context.WithoutCancel(ctx), ob) > oldest
	sender := "this check"
	if c.running {
		sender = "the hubmon service"
	}
	switch {
	case acked:
		c.sent.Acknowledged = true
		return pass(fmt.Sprintf("The council's collector stored this hub's test result (%s, probe %q, sent by %s).", what, m.Probe, sender))
	case progressed:
		return pass(fmt.Sprintf("The council's collector is receiving this hub's results (sent by %s).", sender)).
			note("Older results are still being sent; the test result waits behind them on this Pi and goes out with them.")
	case ctx.Err() != nil:
		return fail("Interrupted.", "", ctx.Err())
	case c.running:
		return fail(fmt.Sprintf("The hubmon service did not get the test result to the council's collector within %s.", wait.Round(time.Second)),
			"Restart the service (sudo systemctl restart hubmon-agent) and run this check again. If it still fails, stop the service (sudo systemctl stop hubmon-agent), run this check to see which step fails, then start the service again (sudo systemctl start hubmon-agent).", nil)
	case logs.err() != nil:
		return fail("The test result could not be sent to the council server.", adviceAgain, logs.err())
	}
	return fail(fmt.Sprintf("The council server took the test result, but the collector did not confirm it within %s.", wait.Round(time.Second)),
		fmt.Sprintf("The collector may be stopped, or may not know this hub yet: tell your council contact that hub %q is not getting through. The result stays on this Pi and is sent again later.", cfg.Site), nil)
}

// startPublisher runs the agent's publisher on ob, as the service would,
// until the returned function is called: it publishes the online status on
// connecting, the outbox, and the offline status on the way out.
func (c *checker) startPublisher(ctx context.Context, ob *outbox.Outbox, logs *lastWarning, acked func(*wire.Ack)) (stop func()) {
	cfg := c.cfg
	budget, err := schedule.NewBudget(ctx, schedule.BudgetConfig{Store: ob, MonthlyBytes: cfg.DataBudget.Bytes(), Location: cfg.Location()})
	fill := func(*wire.Status) {}
	if err == nil {
		fill = budget.Fill // the status says what the service's would
	}
	pub := publish.New(publish.Options{
		Site: cfg.Site, BrokerURL: cfg.Broker.URL, Username: cfg.Broker.Username, Password: cfg.Broker.Password,
		TLS: c.tlsConfig, ConnectTimeout: cfg.Broker.ConnectTimeout, AckTimeout: cfg.Broker.AckTimeout,
		StatusInterval: cfg.Broker.StatusInterval, Outbox: ob, Budget: fill, Acked: acked,
		AgentVersion: version, OS: runtime.GOOS, Arch: runtime.GOARCH, Started: time.Now(),
		Logger: slog.New(logs),
	})
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.Run(pctx)
	}()
	return func() {
		cancel() // it says offline and disconnects: moments
		<-done
	}
}

// waitAcked polls the outbox until m has left it (the collector acked it)
// or d has passed.
func waitAcked(ctx context.Context, ob *outbox.Outbox, m *wire.Measurement, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		es, err := ob.Pending(ctx, m.Seq-1, 1, nil)
		if err == nil && (len(es) == 0 || es[0].MessageID != m.MessageID) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// oldestPending is the seq of the oldest entry in the outbox, 0 if none.
func oldestPending(ctx context.Context, ob *outbox.Outbox) int64 {
	es, err := ob.Pending(ctx, 0, 1, nil)
	if err != nil || len(es) == 0 {
		return 0
	}
	return es[0].Seq
}

// refusal notes whether the collector refused one message for good.
type refusal struct {
	mu     sync.Mutex
	reason string
	seen   bool
}

// watch returns a publish.Options.Acked hook that looks for id.
func (r *refusal) watch(id string) func(*wire.Ack) {
	return func(a *wire.Ack) {
		for _, rj := range a.Rejected {
			if rj.MessageID == id {
				r.mu.Lock()
				r.reason, r.seen = rj.Reason, true
				r.mu.Unlock()
			}
		}
	}
}

func (r *refusal) get() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reason, r.seen
}

// lastWarning is a slog handler that keeps the error of the last warning
// with one that the publisher logged (why a connection failed).
type lastWarning struct {
	mu   sync.Mutex
	last error
}

func (h *lastWarning) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *lastWarning) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "err" {
			return true
		}
		h.mu.Lock()
		h.last = fmt.Errorf("%s: %v", r.Message, a.Value.Any())
		h.mu.Unlock()
		return false
	})
	return nil
}

func (h *lastWarning) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lastWarning) WithGroup(string) slog.Handler      { return h }

func (h *lastWarning) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}
