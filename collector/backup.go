package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// cmdBackup copies the history named in the config to one new file, while
// the collector may be running.
func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/collector.yaml", "the collector's configuration file (its database)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "hubmon-collector backup: name one new file to write, e.g. /var/backups/hubmon-2026-11-27.db")
		return 2
	}
	cfg, err := config.Load(*configPath, getenv)
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
	res, err := st.Backup(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d measurements, %d agents, %d bytes (integrity checked)\n",
		cfg.Database, res.Path, res.Measurements, res.Agents, res.Bytes)
	return 0
}
