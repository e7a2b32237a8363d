package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/schedule"
	"github.com/hubmon/hubmon/agent/wire"
)

// cmdOnce runs every probe (or one) now, prints the results and publishes
// nothing: the first thing an installer runs. Speed tests run at their full
// duration whatever their schedule and the data budget; a line-quality
// summary lasts onceLinePeriod.
func cmdOnce(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("once", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/agent.yaml", "configuration file")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	only := fs.String("probe", "", "run only the probe with this name")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*configPath, withEnvFile(*configPath, getenv))
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 1
	}
	// Info: a probe left out (no wireless interface, no ICMP) says why
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	js, err := jobs(cfg, log, true, nil) // one probe at a time: no speed test runs behind another's back
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent: %v\n", err)
		return 1
	}
	var results []*wire.Measurement
	found := false
	for _, j := range js {
		if *only != "" && j.Name != *only && j.Name != icmpOf(cfg, *only) {
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
		switch {
		case *only == "":
			fmt.Fprintln(stderr, "hubmon-agent: none of the probes can run on this system (see above)")
			return 1
		case slices.ContainsFunc(cfg.Probes, func(p config.Probe) bool { return p.Name == *only || icmpOf(cfg, p.Name) == *only }):
			fmt.Fprintf(stderr, "hubmon-agent: probe %q cannot run on this system (see above)\n", *only)
			return 1
		}
		fmt.Fprintf(stderr, "hubmon-agent: no probe named %q in %s\n", *only, *configPath)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
	} else {
		printResults(stdout, results, time.Now())
	}
	for _, m := range results {
		if !m.Success {
			return 1
		}
	}
	return 0
}

// icmpOf returns the name of the ICMP measurements of the linequality probe
// name, "" if it has none (jobs).
func icmpOf(cfg *config.Config, name string) string {
	for _, p := range cfg.Probes {
		if p.Name == name && p.Kind == wire.KindLineQuality && p.LineQuality != nil && p.LineQuality.ICMPTarget != "" {
			return config.ICMPName(name)
		}
	}
	return ""
}

// printResults prints a compact table per kind measured, then the reason of
// each failure. now dates certificate expiry.
func printResults(w io.Writer, ms []*wire.Measurement, now time.Time) {
	sections := []struct {
		kind, title string
		print       func(tw *tabwriter.Writer, ms []*wire.Measurement)
	}{
		{wire.KindSpeedtest, "Speed tests", printSpeedtests},
		{wire.KindLineQuality, "Line quality", printLineQuality},
		{wire.KindDNS, "DNS", printDNS},
		{wire.KindHTTP, "Essential services", func(tw *tabwriter.Writer, ms []*wire.Measurement) { printHTTP(tw, ms, now) }},
		{wire.KindWiFi, "Wi-Fi", printWiFi},
	}
	first := true
	for _, s := range sections {
		var of []*wire.Measurement
		for _, m := range ms {
			if m.Kind == s.kind {
				of = append(of, m)
			}
		}
		if len(of) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		fmt.Fprintln(w, s.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		s.print(tw, of)
		tw.Flush()
	}
	for _, m := range ms {
		if !m.Success {
			fmt.Fprintf(w, "\n%s failed: %s\n", m.Probe, m.Error)
		}
	}
}

func result(m *wire.Measurement) string {
	if m.Success {
		return "ok"
	}
	return "FAILED"
}

func printSpeedtests(tw *tabwriter.Writer, ms []*wire.Measurement) {
	fmt.Fprintln(tw, "PROBE\tRESULT\tDOWN Mbit/s\tUP Mbit/s\tLATENCY ms\tJITTER ms\tDATA MB\tSERVER\t")
	for _, m := range ms {
		st := m.Speedtest
		if st == nil {
			st = &wire.Speedtest{}
		}
		server := st.ServerHost
		if server == "" {
			server = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t\n", m.Probe, result(m),
			num(st.DownloadBitsPerSecond, 1e-6), num(st.UploadBitsPerSecond, 1e-6),
			num(st.LatencySeconds, 1e3), num(st.JitterSeconds, 1e3), float64(st.BytesUsed())/1e6, server)
	}
}

func printLineQuality(tw *tabwriter.Writer, ms []*wire.Measurement) {
	fmt.Fprintln(tw, "PROBE\tRESULT\tMETHOD\tTARGET\tSENT\tRECEIVED\tLOSS %\tP50 ms\tP95 ms\tJITTER ms\tOUTAGES\t")
	for _, m := range ms {
		lq := m.LineQuality
		if lq == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", m.Probe, result(m))
			continue
		}
		loss := "-"
		if lq.Sent > 0 {
			loss = fmt.Sprintf("%.1f", 100*float64(lq.Sent-lq.Received)/float64(lq.Sent))
		}
		outages := fmt.Sprint(len(lq.Outages))
		if lq.OutageSince != nil {
			outages += " (one going on)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", m.Probe, result(m), lq.Method, lq.Target,
			lq.Sent, lq.Received, loss, num(lq.RTTP50Seconds, 1e3), num(lq.RTTP95Seconds, 1e3), num(lq.JitterSeconds, 1e3), outages)
	}
}

func printDNS(tw *tabwriter.Writer, ms []*wire.Measurement) {
	fmt.Fprintln(tw, "PROBE\tRESOLVER\tNAME\tRESULT\t")
	for _, m := range ms {
		if m.DNS == nil || len(m.DNS.Results) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\t\n", m.Probe, result(m))
			continue
		}
		for _, r := range m.DNS.Results {
			res := num(r.ResolveSeconds, 1e3) + " ms"
			if !r.Success {
				res = "error: " + r.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", m.Probe, r.Resolver, r.Name, res)
		}
	}
}

func printHTTP(tw *tabwriter.Writer, ms []*wire.Measurement, now time.Time) {
	fmt.Fprintln(tw, "PROBE\tSERVICE\tRESULT\tSTATUS\tTOTAL ms\tCERT EXPIRES IN\t")
	for _, m := range ms {
		if m.HTTP == nil || len(m.HTTP.Results) == 0 {
			fmt.Fprintf(tw, "%s\t-\t%s\t-\t-\t-\t\n", m.Probe, result(m))
			continue
		}
		for _, r := range m.HTTP.Results {
			res, status, cert := "ok", "-", "-"
			if !r.Success {
				res = "error: " + r.Error
			}
			if r.StatusCode != 0 {
				status = fmt.Sprint(r.StatusCode)
			}
			if r.CertNotAfter != nil {
				cert = fmt.Sprintf("%d days", int(r.CertNotAfter.Sub(now).Hours()/24))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Probe, r.Name, res, status, num(r.TotalSeconds, 1e3), cert)
		}
	}
}

func printWiFi(tw *tabwriter.Writer, ms []*wire.Measurement) {
	fmt.Fprintln(tw, "PROBE\tRESULT\tINTERFACE\tSSID\tSIGNAL dBm\tRATE Mbit/s\tBAND\t")
	for _, m := range ms {
		wf := m.WiFi
		if wf == nil {
			wf = &wire.WiFi{}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Probe, result(m), dash(wf.Interface), dash(wf.SSID),
			dbm(wf.SignalDBM), num(wf.LinkBitsPerSecond, 1e-6), dash(wf.Band))
	}
}

func num(v *float64, scale float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v*scale)
}

func dbm(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", *v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
