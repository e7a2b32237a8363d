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
	"os/exec"
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
from standard input). The council's CA certificate goes next to the config
(hubmon-ca.pem). A code carries only the CA's fingerprint: the certificate is
taken from the broker, which must be reachable.

Where the site, broker and password go depends on the config:
  - one that takes its site from a variable (site: ${HUBMON_SITE}, as the
    Debian package's does) is not changed: they go into the variables it
    uses, in agent.env next to it (systemd's EnvironmentFile for the service),
    with the line-quality target (HUBMON_ECHO_TARGET) the broker's host at
    port 9471 unless -echo-target says otherwise. Run as root on a systemd
    system, enrol then restarts hubmon-agent.service (-restart=false: not).
  - any other is written with them, keeping every other setting; a missing
    one is created.

-boot installs a bundle copied onto the SD card's boot partition
(/boot/firmware or /boot: hubmon-enrol* or *.hubmon-enrol), deletes it, and
leaves hubmon-enrol-result.txt there; with none, it does nothing. The Debian
package's hubmon-enrol.service runs it at boot, before the agent; "run" does
the same when it starts. HUBMON_ENROL_PATHS (glob patterns separated by ':',
or "off") says where to look instead.

Flags:
`

// The Debian package's config and service.
const (
	packagedConfig = "/etc/hubmon/agent.yaml"
	serviceUnit    = "hubmon-agent.service"
)

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
	configPath := fs.String("config", packagedConfig, "the agent's configuration file (created if missing)")
	dataDir := fs.String("data-dir", enrol.DefaultDataDir, "data_dir of a configuration that enrol creates")
	envFile := fs.String("env-file", "", "the environment file of a configuration that takes its values from variables (default "+enrol.EnvFileName+" next to it)")
	echoTarget := fs.String("echo-target", "", "the collector's UDP echo responder, host:port, for a configuration that takes it from a variable (default the broker's host, port 9471)")
	restart := fs.Bool("restart", true, "restart "+serviceUnit+" after installing into its environment file, when run as root on a systemd system")
	boot := fs.Bool("boot", false, "install a bundle from the SD card's boot partition, if there is one")
	timeout := fs.Duration("timeout", 15*time.Second, "bound on taking the CA certificate from the broker (short codes)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	opts := enrol.Options{ConfigPath: *configPath, DataDir: *dataDir, Getenv: getenv, FetchTimeout: *timeout,
		EnvPath: *envFile, EchoTarget: *echoTarget}
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
		printInstalled(stdout, res, "", *echoTarget != "")
		fmt.Fprintf(stdout, "  the enrolment file %s was deleted from the boot partition\n", file)
		// no restart: at boot hubmon-agent.service waits for this (the
		// package's hubmon-enrol.service), and starts once it is done
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
	printInstalled(stdout, res, file, *echoTarget != "")
	switch {
	case res.EnvPath == "":
		fmt.Fprintln(stdout, "next: sudo systemctl restart hubmon-agent   (if it runs as a service)")
	case *restart && serviceHere(*configPath):
		restartService(ctx, stdout, stderr)
	default:
		fmt.Fprintln(stdout, "next: sudo systemctl restart hubmon-agent")
	}
	return 0
}

// serviceHere reports whether enrol can restart the packaged service after
// installing for configPath: it is the service's config, enrol runs as
// root, systemd runs the system and the unit is enabled.
func serviceHere(configPath string) bool {
	if abs, err := filepath.Abs(configPath); err != nil || abs != packagedConfig || os.Geteuid() != 0 {
		return false
	}
	if st, err := os.Stat("/run/systemd/system"); err != nil || !st.IsDir() {
		return false
	}
	return exec.Command("systemctl", "is-enabled", "--quiet", serviceUnit).Run() == nil
}

// restartService restarts (or starts: a hub that was not enrolled) the
// agent's service, so that it reads the new environment file, and says how
// that went. The enrolment is installed either way.
func restartService(ctx context.Context, stdout, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "restart", serviceUnit).CombinedOutput()
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-agent enrol: the enrolment is installed, but systemctl restart %s failed (%v): %s"+
			"see: systemctl status %s; journalctl -u %s\n", serviceUnit, err, out, serviceUnit, serviceUnit)
		return
	}
	fmt.Fprintf(stdout, "restarted %s: see that it works with: sudo hubmon-agent check\n", serviceUnit)
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

func printInstalled(w io.Writer, res *enrol.Result, file string, echoGiven bool) {
	fmt.Fprintf(w, "installed the enrolment for site %s\n", res.Site)
	if res.EnvPath != "" {
		var names []string
		for _, v := range res.Env {
			if v.Value != "" { // an empty one is not in the file
				names = append(names, v.Name)
			}
		}
		created := ""
		if res.EnvCreated {
			created = " (new)"
		}
		fmt.Fprintf(w, "  env     %s%s: %s\n", res.EnvPath, created, strings.Join(names, ", "))
		fmt.Fprintf(w, "  config  %s (not changed: it takes these from the environment; %d probes)\n", res.ConfigPath, res.Probes)
	} else if res.Created {
		fmt.Fprintf(w, "  config  %s (new, with %d default probes: a public speed test, DNS, essential services)\n", res.ConfigPath, res.Probes)
	} else {
		fmt.Fprintf(w, "  config  %s (site and broker replaced; %d probes and every other setting kept)\n", res.ConfigPath, res.Probes)
	}
	fmt.Fprintf(w, "  broker  %s (user %s)\n", res.BrokerURL, res.Site)
	if res.EchoTarget != "" {
		how := "the collector's UDP echo responder, taken to be on the broker's host; if it is elsewhere, enrol again with -echo-target HOST:PORT"
		if echoGiven {
			how = "the collector's UDP echo responder"
		}
		fmt.Fprintf(w, "  echo    %s (%s)\n", res.EchoTarget, how)
	}
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
}

// bootEnrol installs a bundle found on the boot partition before `run`
// loads the config, logging what it did to stderr. A failure is logged and
// the agent goes on with the config it has. It returns getenv, with the
// variables it wrote to an environment file (which the process's own
// environment, set before, does not have) in front.
func bootEnrol(ctx context.Context, configPath string, getenv func(string) string, stderr io.Writer) func(string) string {
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
			"config", configPath, "env_file", res.EnvPath, "broker", res.BrokerURL, "config_created", res.Created)
	default:
		if _, err := os.Stat(configPath); errors.Is(err, fs.ErrNotExist) {
			log.Warn("no configuration: enrol this hub with `hubmon-agent enrol FILE-OR-CODE`, or copy the enrolment file onto the SD card's boot partition",
				"config", configPath, "looked_in", strings.Join(dirs(bootPatterns(getenv)), " "))
		}
	}
	if res == nil || len(res.Env) == 0 {
		return getenv
	}
	set := map[string]string{}
	for _, v := range res.Env {
		set[v.Name] = v.Value
	}
	return func(name string) string {
		if v, ok := set[name]; ok {
			return v
		}
		return getenv(name)
	}
}

// withEnvFile is getenv with, for each variable it does not set, the value
// the environment file next to configPath gives it (agent.env: the
// service's EnvironmentFile, which enrol writes), so that `check` and `once`
// see the hub's enrolment as the service does. A file that is not there, or
// that this user may not read (it is root's), adds nothing.
func withEnvFile(configPath string, getenv func(string) string) func(string) string {
	file, err := enrol.ReadEnvFile(filepath.Join(filepath.Dir(configPath), enrol.EnvFileName))
	if err != nil || len(file) == 0 {
		return getenv
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return file[name]
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
