package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // the site's time zone, on a Pi without /usr/share/zoneinfo
	"unicode/utf8"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/internal/publish"
	"github.com/hubmon/hubmon/agent/internal/schedule"
	"github.com/hubmon/hubmon/agent/wire"
)

// Set by the linker (see the Makefile).
var (
	version  = "dev"
	revision = "unknown"
)

const usage = `hubmon-agent measures a community hub's broadband and reports it to hubmon-collector.

Usage:
  hubmon-agent run -config agent.yaml [-check-config] [-log-level info]
  hubmon-agent once -config agent.yaml [-json] [-probe NAME]
  hubmon-agent check -config agent.yaml [-json] [-skip-speedtest]
  hubmon-agent enrol [-config agent.yaml] FILE | CODE    (install the council's enrolment for this hub)
  hubmon-agent version

run first installs an enrolment file found on the SD card's boot partition
(hubmon-agent enrol -h).
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], getenv, stdout, stderr)
	case "once":
		return cmdOnce(ctx, args[1:], getenv, stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], getenv, stdout, stderr)
	case "enrol", "enroll":
		return cmdEnrol(ctx, args[1:], getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "hubmon-agent %s (revision %s, %s, %s/%s)\n", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hubmon-agent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// onceLinePeriod is the line-quality summary of `hubmon-agent once`.
const onceLinePeriod = 10 * time.Second

// jobs builds the schedule from the config: one explicit switch of kinds.
// For `once` (once true) a line-quality summary lasts onceLinePeriod. A wifi
// probe with no interface named, on an agent without a wireless interface,
// is left out with a line in the log: a wired-only Pi is normal. A
// linequality probe with an ICMP target is two jobs: name (UDP) and
// config.ICMPName(name) (ICMP), so that each stream is a series of its own.
// busy reports whether a speed test is running (schedule.Options.Busy); nil
// for never.
func jobs(cfg *config.Config, log *slog.Logger, once bool, busy func() bool) ([]schedule.Job, error) {
	var out []schedule.Job
	for i, p := range cfg.Probes {
		lg := log.With("probe", p.Name)
		j := schedule.Job{Name: p.Name, Kind: p.Kind, Interval: p.Interval, Splay: p.Splay, FirstRun: p.FirstRun, Timeout: p.Timeout}
		switch p.Kind {
		case wire.KindSpeedtest:
			st := *p.Speedtest
			j.Heavy, j.Duration = true, st.Duration
			j.NewProber = func(d time.Duration) probe.Prober {
				return probe.NewSpeedtest(probe.SpeedtestConfig{
					ServerURL:   st.ServerURL,
					ServerIDs:   st.ServerIDs,
					Connections: st.Connections,
					Duration:    d, // the data budget may shorten it
					Logger:      lg,
				})
			}
			if s := p.Schedule; s != nil {
				j.Plan = &schedule.Plan{TestsPerDay: s.TestsPerDay, Week: week(cfg, s.Windows)}
			}
		case wire.KindLineQuality:
			lq := p.LineQuality
			period := p.Interval
			if once {
				period = onceLinePeriod
				j.Timeout = period + lq.Timeout + 20*time.Second
			}
			lc := probe.LineQualityConfig{
				UDPTarget:      lq.UDPTarget,
				ICMPTarget:     lq.ICMPTarget,
				SendInterval:   lq.SendInterval,
				Timeout:        lq.Timeout,
				Period:         period,
				OutageAfter:    lq.OutageAfter,
				Busy:           busy,
				NoGatewayCheck: !lq.GatewayCheck,
				Logger:         lg,
			}
			// back to back: each run is one summary of the period
			j.Interval, j.Splay, j.FirstRun = period, 0, 0
			j.Prober = probe.NewLineQuality(lc)
			if lq.ICMPTarget != "" {
				// ICMP is a stream, and a measurement, of its own: a probe
				// name of its own too, or the probe's series (success,
				// loss) would flip between the two
				name := config.ICMPName(p.Name)
				ic := lc
				ic.Logger = log.With("probe", name)
				icmp, err := probe.NewLineQualityICMP(ic)
				if err != nil {
					lg.Info("line quality measured over UDP only: ICMP echo is not available", "icmp_target", lq.ICMPTarget, "err", err)
				} else {
					out = append(out, j)
					j.Name, j.Prober = name, icmp
				}
			}
		case wire.KindDNS:
			j.Prober = probe.NewDNS(probe.DNSConfig{
				Names:     p.DNS.Names,
				Resolvers: p.DNS.Resolvers,
				Timeout:   p.DNS.Timeout,
				Logger:    lg,
			})
		case wire.KindHTTP:
			services := make([]probe.HTTPService, len(p.HTTP.Services))
			for k, s := range p.HTTP.Services {
				services[k] = probe.HTTPService{Name: s.Name, URL: s.URL}
			}
			j.Prober = probe.NewHTTP(probe.HTTPConfig{Services: services, Timeout: p.HTTP.Timeout, Logger: lg})
		case wire.KindWiFi:
			if p.WiFi.Interface == "" && len(probe.WirelessInterfaces()) == 0 {
				lg.Info("no wireless interface: the wifi probe is skipped")
				continue
			}
			j.Prober = probe.NewWiFi(probe.WiFiConfig{Interface: p.WiFi.Interface, Logger: lg})
		default:
			return nil, fmt.Errorf("probes[%d].kind: unknown kind %q", i, p.Kind)
		}
		out = append(out, j)
	}
	return out, nil
}

// week returns the spans of the named schedule windows on each weekday.
func week(cfg *config.Config, windows []string) schedule.Week {
	var w schedule.Week
	for d := range w {
		for _, r := range cfg.WindowRanges(windows, time.Weekday(d)) {
			w[d] = append(w[d], schedule.Span{From: r.From, To: r.To})
		}
	}
	return w
}

// planSeed turns the agent's id into the seed of its speed-test plans: its
// own, and the same after a restart.
func planSeed(agentID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(agentID))
	return h.Sum64()
}

func cmdRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/agent.yaml", "configuration file")
	checkOnly := fs.Bool("check-config", false, "check the configuration and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	getenv = bootEnrol(ctx, *configPath, getenv, stderr) // an enrolment file on the SD card's boot partition
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 1
	}
	if *checkOnly {
		fmt.Fprintf(stdout, "%s: configuration is valid (site %s, %d probes)\n", *configPath, cfg.Site, len(cfg.Probes))
		return 0
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 2
	}
	log = log.With("site", cfg.Site)
	if err := agent(ctx, cfg, log); err != nil {
		log.Error("hubmon-agent stopped", "err", err)
		return 1
	}
	return 0
}

func agent(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	started := time.Now()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ob, err := outbox.Open(cfg.OutboxPath(), cfg.Site, cfg.Outbox.MaxMessages)
	recovered := false
	if errors.Is(err, outbox.ErrCorrupt) {
		// an SD card's damage must not stop the hub being measured for ever
		var aside string
		ob, aside, err = outbox.Recover(cfg.OutboxPath(), cfg.Site, cfg.Outbox.MaxMessages, time.Now())
		if err == nil {
			recovered = true
			log.Error("outbox was corrupt: moved aside and started a new one; its unsent measurements are lost", "moved_to", aside)
		}
	}
	if err != nil {
		return err
	}
	defer ob.Close() // last: after the scheduler and the publisher have stopped
	// set by the scheduler while a speed test loads the line, read by the
	// line-quality probes
	busy := new(atomic.Bool)
	js, err := jobs(cfg, log, false, busy.Load)
	if err != nil {
		return err
	}
	loc := cfg.Location()
	budget, err := schedule.NewBudget(ctx, schedule.BudgetConfig{
		Store: ob, MonthlyBytes: cfg.DataBudget.Bytes(), Location: loc, Logger: log.With("component", "budget"),
	})
	if err != nil {
		return err
	}
	if recovered && cfg.DataBudget.Bytes() > 0 {
		// The month's figures were in the corrupt outbox. Restarting them
		// at 0 would let the rest of the month spend the whole budget
		// again; assume the tests so far kept to an even pace (what the
		// budget aims at), a share of the budget as large as the share of
		// the month gone.
		used := budget.AssumeOnPace(time.Now())
		log.Warn("the data budget's figures for this month were in the corrupt outbox: the month's use restarts from the budget's share of the month gone",
			"assumed_used_bytes", used, "data_budget_bytes", cfg.DataBudget.Bytes())
	}
	var tc *tls.Config
	if cfg.Broker.TLS() {
		if tc, err = publish.TLSConfig(cfg.Broker.CAFile, cfg.Broker.CertFile, cfg.Broker.KeyFile); err != nil {
			return err
		}
	}
	var lost atomic.Int64 // measurements that never reached the outbox
	pub := publish.New(publish.Options{
		Lost: lost.Load, Budget: budget.Fill, ClockSynced: clockSynced,
		Site: cfg.Site, BrokerURL: cfg.Broker.URL, Username: cfg.Broker.Username, Password: cfg.Broker.Password,
		TLS: tc, ConnectTimeout: cfg.Broker.ConnectTimeout, AckTimeout: cfg.Broker.AckTimeout,
		StatusInterval: cfg.Broker.StatusInterval, Outbox: ob,
		AgentVersion: version, OS: runtime.GOOS, Arch: runtime.GOARCH, Started: started,
		Logger: log.With("component", "publish"),
	})
	log.Info("hubmon-agent started", "version", version, "agent_id", ob.AgentID(), "broker", cfg.Broker.URL, "probes", len(js),
		"outbox", cfg.OutboxPath(), "timezone", loc.String(), "data_budget_bytes", cfg.DataBudget.Bytes())

	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pub.Run(ctx)
	}()
	schedule.Run(ctx, js, schedule.Options{
		Sink: func(ctx context.Context, m *wire.Measurement) error {
			// a measurement the collector would refuse for good is not
			// committed: the agent would publish it, and delete it when
			// refused, for nothing
			now := time.Now()
			flagClock(m, now, clockSynced())
			if err := admit(m, cfg.Site, ob.AgentID(), now); err != nil {
				lost.Add(1)
				return err
			}
			// committed even if we are stopping: it was measured
			if err := ob.Add(context.WithoutCancel(ctx), m); err != nil {
				lost.Add(1)
				return err
			}
			pub.Notify()
			return nil
		},
		Logger: log, Location: loc, Seed: planSeed(ob.AgentID()), Budget: budget, Busy: busy,
	})
	<-pubDone
	log.Info("hubmon-agent stopped")
	return nil
}

// resultErrorLen is what admit shortens the error texts of a measurement's
// results to when it is too large to publish: 64 results then take well under
// wire.MaxPayloadBytes.
const resultErrorLen = 128

// admit checks that the collector will accept m before the outbox commits
// it, filling what the outbox would with the longest values it can take. It
// sets m's Version and Site. A measurement whose encoding is larger than
// wire.MaxPayloadBytes has its results' error texts shortened to
// resultErrorLen bytes and is checked again. The error names the problem.
func admit(m *wire.Measurement, site, agentID string, now time.Time) error {
	m.Version, m.Site = wire.Version, site
	if err := admissible(*m, agentID, now); err != nil {
		return fmt.Errorf("the collector would refuse it: %w", err)
	}
	size, err := encodedSize(*m, agentID)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if size <= wire.MaxPayloadBytes {
		return nil
	}
	shortenResultErrors(m, resultErrorLen)
	if size, err = encodedSize(*m, agentID); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if size > wire.MaxPayloadBytes {
		return fmt.Errorf("%d bytes encoded, more than the %d a message may hold, even with its results' errors shortened", size, wire.MaxPayloadBytes)
	}
	return nil
}

// identified is v with the identity the outbox gives it, at its longest.
func identified(v wire.Measurement, agentID string) *wire.Measurement {
	v.MessageID = strings.Repeat("M", 64) // the longest valid id; the outbox's are 26 characters
	v.AgentID = agentID
	v.Seq = math.MaxInt64
	return &v
}

func admissible(v wire.Measurement, agentID string, now time.Time) error {
	return identified(v, agentID).Validate(v.Site, now)
}

func encodedSize(v wire.Measurement, agentID string) (int, error) {
	b, err := json.Marshal(identified(v, agentID))
	return len(b), err
}

// shortenResultErrors shortens the error text of each DNS and HTTP result
// of m to at most n bytes, "..." included. The results' slices are m's own
// (the probe made them for this measurement only).
func shortenResultErrors(m *wire.Measurement, n int) {
	if m.DNS != nil {
		for i := range m.DNS.Results {
			m.DNS.Results[i].Error = shorten(m.DNS.Results[i].Error, n)
		}
	}
	if m.HTTP != nil {
		for i := range m.HTTP.Results {
			m.HTTP.Results[i].Error = shorten(m.HTTP.Results[i].Error, n)
		}
	}
}

// shorten cuts s to at most n bytes, not inside a UTF-8 sequence, and marks
// the cut with "...".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("...")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
