package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/gaps"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// cmdReport writes the gap report from the history, read-only: it can run
// next to the collector.
func cmdReport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/collector.yaml", "the collector's configuration file (database, sites_file, thresholds)")
	sinceFlag := fs.String("since", "30d", "the period, ending now: days (30d) or a duration (12h); at least 1h")
	format := fs.String("format", "csv", "csv, json or html")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubmon-collector report: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	since, err := gaps.ParseSince(*sinceFlag)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector report: -since: %v\n", err)
		return 2
	}
	if !slices.Contains(gaps.Formats, *format) {
		fmt.Fprintf(stderr, "hubmon-collector report: -format: want csv, json or html (got %q)\n", *format)
		return 2
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	hubs, err := sites.New(sites.Options{Path: cfg.SitesFile, AutoRegister: cfg.AutoRegister, Getenv: getenv})
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	st, err := store.OpenReadOnly(cfg.Database)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	defer st.Close()
	engine := gaps.New(gaps.Options{Store: st, Sites: hubs, Rules: cfg.Thresholds.Rules(), BelowRatio: cfg.Thresholds.BelowRatioValue(),
		Presence: cfg.Gaps.Presence, Retention: since})
	if err := engine.Load(ctx); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	w := bufio.NewWriter(stdout)
	rep := engine.Report(time.Now(), since)
	if err := rep.Write(w, *format); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: write report: %v\n", err)
		return 1
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: write report: %v\n", err)
		return 1
	}
	return 0
}
