package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/schedule"
	"github.com/hubmon/hubmon/agent/wire"
)

// cmdOnce runs every probe (or one) now, prints the results and publishes
// nothing: the first thing an installer runs.
func cmdOnce(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("once", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/agent.yaml", "configuration file")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	only := fs.String("probe", "", "run only the probe with this name")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	js, err := jobs(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 1
	}
	var results []*wire.Measurement
	found := false
	for _, j := range js {
		if *only != "" && j.Name != *only {
			continue
		}
		found = true
		if !*asJSON {
			fmt.Fprintf(stderr, "running %s (%s)...\n", j.Name, j.Kind)
		}
		m := schedule.RunOnce(ctx, j)
		if m == nil {
			fmt.Fprintln(stderr, "hubmon-agent: interrupted")
			return 130
		}
		m.Version, m.Site = wire.Version, cfg.Site
		results = append(results, m)
	}
	if !found {
		fmt.Fprintf(stderr, "hubmon-agent: no probe named %q in %s\n", *only, *configPath)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
	} else {
		printTable(stdout, results)
	}
	for _, m := range results {
		if !m.Success {
			return 1
		}
	}
	return 0
}

func printTable(w io.Writer, ms []*wire.Measurement) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBE\tRESULT\tDOWN Mbit/s\tUP Mbit/s\tLATENCY ms\tJITTER ms\tDATA MB\tSERVER\t")
	for _, m := range ms {
		res := "ok"
		if !m.Success {
			res = "FAILED"
		}
		st := m.Speedtest
		if st == nil {
			st = &wire.Speedtest{}
		}
		server := st.ServerHost
		if server == "" {
			server = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t\n", m.Probe, res,
			num(st.DownloadBitsPerSecond, 1e-6), num(st.UploadBitsPerSecond, 1e-6),
			num(st.LatencySeconds, 1e3), num(st.JitterSeconds, 1e3), float64(st.BytesUsed())/1e6, server)
	}
	tw.Flush()
	for _, m := range ms {
		if !m.Success {
			fmt.Fprintf(w, "\n%s failed: %s\n", m.Probe, m.Error)
		}
	}
}

func num(v *float64, scale float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v*scale)
}
