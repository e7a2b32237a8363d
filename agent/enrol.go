package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/internal/enrol"
	"github.com/hubmon/hubmon/agent/wire"
)

const enrolUsage = `usage: hubmon-agent enrol [-config /etc/hubmon/agent.yaml] FILE | CODE | -
       hubmon-agent enrol -boot [-config /etc/hubmon/agent.yaml]

Installs the enrolment your council made for this hub with hubmon-collector
enrol: the file SITE.hubmon-enrol, or its short code (HM-...; "-" reads it
from standard input). The site, broker and password go into the agent's
config, every other setting of an existing config is kept, and the council's
CA certificate goes next to it (hubmon-ca.pem). A code carries only the CA's
fingerprint: the certificate is taken from the broker, which must be
reachable.

-boot installs a bundle copied onto the SD card's boot partition
(/boot/firmware or /boot: hubmon-enrol* or *.hubmon-enrol), deletes it, and
leaves hubmon-enrol-result.txt there; with none, it does nothing. "run" does
the same when it starts. HUBMON_ENROL_PATHS (glob patterns separated by ':',
or "off") says where to look instead.

Flags:
`

// bootPatterns are where a bundle on the boot partition is looked for.
func bootPatterns(getenv func(string) string) []string {
	switch v := getenv("HUBMON_ENROL_PATHS"); v {
	case "":
		return enrol.DefaultBootPatterns
	case "off":
		return nil
	default:
		return strings.Split(v, ":")
	}
}

// parseInterspersed parses flags before and after positional arguments, so
// that `enrol CODE -config x` works as well as `enrol -config x CODE`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdEnrol(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enrol", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, enrolUsage)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "/etc/hubmon/agent.yaml", "the agent's configuration file (created if missing)")
	dataDir := fs.String("data-dir", enrol.DefaultDataDir, "data_dir of a configuration that enrol creates")
	boot := fs.Bool("boot", false, "install a bundle from the SD card's boot partition, if there is one")
	timeout := fs.Duration("timeout", 15*time.Second, "bound on taking the CA certificate from the broker (short codes)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	opts := enrol.Options{ConfigPath: *configPath, DataDir: *dataDir, Getenv: getenv, FetchTimeout: *timeout}
	if *boot {
		if len(pos) > 0 {
			fmt.Fprintln(stderr, "hubmon-agent enrol: -boot takes no file or code")
			return 2
		}
		file, res, err := enrol.InstallBoot(ctx, bootPatterns(getenv), opts)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "hubmon-agent enrol: %s: %v\n", file, err)
			return 1
		case file == "":
			fmt.Fprintln(stdout, "no enrolment file on the boot partition: nothing to do")
			return 0
		}
		printInstalled(stdout, res, "")
		fmt.Fprintf(stdout, "  the enrolment file %s was deleted from the boot partition\n", file)
		return 0
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	b, file, err := readBundle(pos)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent enrol: %v\n", err)
		return 1
	}
	res, err := enrol.Install(ctx, b, opts)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent enrol: %v\n", err)
		return 1
	}
	printInstalled(stdout, res, file)
	return 0
}

// readBundle reads the bundle args name: a file, "-" for standard input, or
// a short code (one argument, or several: a code pasted with spaces). It
// returns the file's name, if it was one.
func readBundle(args []string) (*wire.Bundle, string, error) {
	var data []byte
	var file string
	switch {
	case len(args) == 1 && args[0] == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, wire.MaxBundleBytes+1))
		if err != nil {
			return nil, "", fmt.Errorf("read standard input: %w", err)
		}
		data = b
	case len(args) == 1 && !wire.LooksLikeCode(args[0]) || fileExists(args[0]):
		if len(args) > 1 {
			return nil, "", fmt.Errorf("one enrolment file at a time (got %d arguments)", len(args))
		}
		file = args[0]
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%s: no such file, and not an enrolment code (codes start with %s)", file, wire.CodePrefix)
		}
		if err != nil {
			return nil, "", err
		}
		data, err = io.ReadAll(io.LimitReader(f, wire.MaxBundleBytes+1))
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", file, err)
		}
	default:
		data = []byte(strings.Join(args, " "))
	}
	b, err := wire.DecodeBundle(data)
	if err != nil && file != "" {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	return b, file, err
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func printInstalled(w io.Writer, res *enrol.Result, file string) {
	fmt.Fprintf(w, "installed the enrolment for site %s\n", res.Site)
	if res.Created {
		fmt.Fprintf(w, "  config  %s (new, with %d default probes: a public speed test, DNS, essential services)\n", res.ConfigPath, res.Probes)
	} else {
		fmt.Fprintf(w, "  config  %s (site and broker replaced; %d probes and every other setting kept)\n", res.ConfigPath, res.Probes)
	}
	fmt.Fprintf(w, "  broker  %s (user %s)\n", res.BrokerURL, res.Site)
	if res.CA != nil {
		from := ""
		if res.CAFromBroker {
			from = "; taken from the broker, its fingerprint matches the code"
		}
		fmt.Fprintf(w, "  CA      %s: %q, valid until %s%s\n", res.CAPath, res.CA.Subject.CommonName, res.CA.NotAfter.Format(time.DateOnly), from)
		if time.Now().After(res.CA.NotAfter) {
			fmt.Fprintln(w, "  warning: the CA certificate has expired: the agent will not connect; ask the council for a new enrolment")
		}
	}
	if res.PreviousSite != "" {
		fmt.Fprintf(w, "  note: this hub was site %s; measurements of it still waiting to be sent will be refused by the collector\n", res.PreviousSite)
	}
	if file != "" {
		fmt.Fprintf(w, "  %s holds the hub's password: delete it now (rm %s)\n", file, file)
	}
	fmt.Fprintln(w, "next: sudo systemctl restart hubmon-agent")
}

// bootEnrol installs a bundle found on the boot partition before `run`
// loads the config, logging what it did to stderr. A failure is logged and
// the agent goes on with the config it has.
func bootEnrol(ctx context.Context, configPath string, getenv func(string) string, stderr io.Writer) {
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "enrol")
	file, res, err := enrol.InstallBoot(ctx, bootPatterns(getenv), enrol.Options{ConfigPath: configPath, Getenv: getenv})
	switch {
	case err != nil && res == nil:
		log.Error("the enrolment file on the boot partition could not be installed; going on with the configuration there is",
			"file", file, "config", configPath, "err", err)
	case err != nil:
		log.Error("enrolment installed, but its file could not be deleted from the boot partition", "file", file, "site", res.Site, "err", err)
	case res != nil:
		log.Info("installed the enrolment file from the boot partition, and deleted it", "file", file, "site", res.Site,
			"config", configPath, "broker", res.BrokerURL, "config_created", res.Created)
	default:
		if _, err := os.Stat(configPath); errors.Is(err, fs.ErrNotExist) {
			log.Warn("no configuration: enrol this hub with `hubmon-agent enrol FILE-OR-CODE`, or copy the enrolment file onto the SD card's boot partition",
				"config", configPath, "looked_in", strings.Join(dirs(bootPatterns(getenv)), " "))
		}
	}
}

func dirs(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		if d := filepath.Dir(p); len(out) == 0 || out[len(out)-1] != d {
			out = append(out, d)
		}
	}
	return out
}
