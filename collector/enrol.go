package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/broker"
	"github.com/hubmon/hubmon/collector/internal/config"
)

const enrolUsage = `usage: hubmon-collector enrol SITE -broker-url URL [flags]

Creates SITE's MQTT credentials (a random password), adds them to the broker's
password file, makes sure its ACL lets the site publish its own topics, and
writes an enrolment bundle for the hub: SITE.hubmon-enrol (mode 0600), which
holds the password and the CA certificate, and a short code for the same.
Install it on the hub with: hubmon-agent enrol FILE-OR-CODE.

Where the password file is: -passwd; else the embedded broker's (-config,
when the collector runs its own broker); else the one -mosquitto-conf names.

Flags:
`

// enrolOptions are the flags of `hubmon-collector enrol`.
type enrolOptions struct {
	site, brokerURL, caFile                string
	configPath, mosquittoConf, passwd, acl string
	sitesFile, out, reloadPID              string
	rotate, force, printCode, unlisted     bool
	aclSet                                 bool
}

// parseInterspersed parses flags before and after positional arguments, so
// that `enrol SITE -broker-url ...` works as well as `enrol -broker-url ... SITE`.
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

func cmdEnrol(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enrol", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, enrolUsage)
		fs.PrintDefaults()
	}
	var o enrolOptions
	fs.StringVar(&o.brokerURL, "broker-url", "", "the broker as the hub reaches it, e.g. mqtts://mqtt.council.example:8883 (required)")
	fs.StringVar(&o.caFile, "ca", "", "PEM file of the CA certificate that signed the broker's certificate (the council CA); leave out for a broker with a publicly trusted certificate")
	fs.StringVar(&o.configPath, "config", "", "the collector's config: its embedded broker's password file, its sites file")
	fs.StringVar(&o.mosquittoConf, "mosquitto-conf", "/etc/mosquitto/conf.d/hubmon.conf", "Mosquitto config naming password_file and acl_file (when the broker is Mosquitto)")
	fs.StringVar(&o.passwd, "passwd", "", "the broker's password file (overrides -config and -mosquitto-conf)")
	fs.StringVar(&o.acl, "acl", "", "Mosquitto's ACL file to check and, if it does not cover the site, extend (overrides -mosquitto-conf)")
	fs.StringVar(&o.sitesFile, "sites", "", "sites file the site must be listed in (default: the collector config's sites_file)")
	fs.StringVar(&o.out, "out", "", "the bundle file to write (default SITE.hubmon-enrol in the current directory)")
	fs.StringVar(&o.reloadPID, "reload-pid", "", "send SIGHUP to this process (a number, or a pid file) to reload the password file: Mosquitto, or the collector")
	fs.BoolVar(&o.rotate, "rotate", false, "give a site that is enrolled already a new password (the old one stops working when the broker reloads)")
	fs.BoolVar(&o.force, "force", false, "enrol the site whether it has a password already or not, and replace the bundle file if there is one")
	fs.BoolVar(&o.printCode, "print-code", false, "print the short code (it holds the password) on standard output")
	fs.BoolVar(&o.unlisted, "allow-unlisted", false, "enrol a site that is not in the sites file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.aclSet = o.aclSet || f.Name == "acl" })
	if len(pos) != 1 || o.brokerURL == "" {
		fs.Usage()
		return 2
	}
	o.site = pos[0]
	if err := enrol(o, getenv, stdout); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector enrol: %v\n", err)
		return 1
	}
	return 0
}

// enrolTarget is where a site's credentials go.
type enrolTarget struct {
	embedded       bool   // the collector's own broker
	passwd, acl    string // acl "": none (the embedded broker's is built in)
	sitesFile      string
	autoRegister   bool
	collectorUser  string
	readers        []string
	reloadHint     string
	mosquittoNoACL bool // Mosquitto with no acl_file at all
}

func resolveTarget(o enrolOptions, getenv func(string) string) (*enrolTarget, error) {
	t := &enrolTarget{passwd: o.passwd, acl: o.acl, sitesFile: o.sitesFile,
		reloadHint: "sudo systemctl reload mosquitto   (Mosquitto re-reads its password and ACL files on SIGHUP)"}
	if o.configPath != "" {
		// enrol needs file names, not secrets: a ${VAR} the operator's
		// shell does not set must not stop it
		lenient := func(name string) string {
			if v := getenv(name); v != "" {
				return v
			}
			return "unset-" + name
		}
		cfg, err := config.Load(o.configPath, lenient)
		if err != nil {
			return nil, err
		}
		if t.sitesFile == "" {
			t.sitesFile = cfg.SitesFile
		}
		t.autoRegister = cfg.AutoRegister
		if cfg.Embedded() {
			t.embedded, t.readers = true, cfg.EmbeddedBroker.Readers
			if t.passwd == "" {
				t.passwd = cfg.EmbeddedBroker.PasswordFile
			}
			t.reloadHint = "sudo systemctl kill -s HUP hubmon-collector   (the collector re-reads its password file on SIGHUP)"
		} else {
			t.collectorUser = cfg.MQTT.Username
		}
	}
	if t.embedded {
		return t, nil
	}
	if t.passwd == "" || !o.aclSet {
		pw, acl, err := broker.MosquittoFiles(o.mosquittoConf)
		switch {
		case err != nil && t.passwd == "":
			return nil, fmt.Errorf("where is the broker's password file? %w (pass -passwd, -mosquitto-conf, or -config for the embedded broker)", err)
		case err != nil:
			// -passwd given and no Mosquitto config: no ACL to check
		default:
			if t.passwd == "" {
				t.passwd = pw
			}
			if !o.aclSet {
				t.acl = acl
				t.mosquittoNoACL = acl == ""
			}
			if t.passwd == "" {
				return nil, fmt.Errorf("Mosquitto config %q names no password_file: pass -passwd", o.mosquittoConf)
			}
		}
	}
	return t, nil
}

func enrol(o enrolOptions, getenv func(string) string, stdout io.Writer) error {
	site := o.site
	if !wire.ValidSite(site) {
		return fmt.Errorf("%q is not a site id: lower-case letters, digits and inner hyphens, at most 63 characters", site)
	}
	if o.rotate && o.force {
		return errors.New("-rotate and -force: use one (-rotate for a site enrolled already, -force for either)")
	}
	useTLS, _, _, err := wire.BrokerAddress(o.brokerURL)
	if err != nil {
		return fmt.Errorf("-broker-url: %w", err)
	}
	t, err := resolveTarget(o, getenv)
	if err != nil {
		return err
	}
	switch {
	case site == t.collectorUser:
		return fmt.Errorf("%q is the collector's own MQTT user, not a site", site)
	case slices.Contains(t.readers, site):
		return fmt.Errorf("%q is a reader of the embedded broker (embedded_broker.readers), not a site", site)
	}

	var notes []string // printed after the summary
	siteLine, err := checkSite(site, t, o.unlisted)
	if err != nil {
		return err
	}

	var caPEM []byte
	caLine := "none: the hub trusts the system's CAs (right for a broker with a public certificate)"
	switch {
	case o.caFile != "" && !useTLS:
		return fmt.Errorf("-ca is for a TLS broker, and -broker-url %s is plain (use mqtts://)", o.brokerURL)
	case o.caFile != "":
		if caPEM, err = os.ReadFile(o.caFile); err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		certs, err := wire.CACertificates(string(caPEM))
		if err != nil {
			return fmt.Errorf("-ca %s: %w", o.caFile, err)
		}
		c := certs[0]
		if time.Now().After(c.NotAfter) {
			return fmt.Errorf("-ca %s: the certificate %q expired on %s", o.caFile, c.Subject.CommonName, c.NotAfter.Format(time.DateOnly))
		}
		caLine = fmt.Sprintf("%s (%q, until %s, SHA-256 %s)", o.caFile, c.Subject.CommonName, c.NotAfter.Format(time.DateOnly), wire.Fingerprint(c))
		if !c.IsCA {
			notes = append(notes, "the -ca certificate is not a CA certificate: the hub will trust exactly that certificate, and must be re-enrolled when it is renewed")
		}
	case !useTLS:
		caLine = "none: the broker URL is plain MQTT (no TLS); use mqtts:// for hubs on the internet"
	}

	// what the ACL lacks, before anything is written
	aclLine := "built into the embedded broker: a site publishes only its own topics"
	var aclMissing []string
	switch {
	case t.embedded:
	case t.acl != "":
		if aclMissing, err = broker.SiteACL(t.acl, site); err != nil {
			return err
		}
	case t.mosquittoNoACL:
		aclLine = "NONE: Mosquitto has no acl_file, so any site could publish as any other; use deploy/mosquitto/hubmon.acl"
	default:
		aclLine = "not checked (no -acl, no Mosquitto config)"
	}

	out := o.out
	if out == "" {
		out = site + ".hubmon-enrol"
	}
	replaceBundle := o.force || o.rotate
	if _, err := os.Lstat(out); err == nil && !replaceBundle {
		return fmt.Errorf("bundle file %s exists already: move it away, or pass -rotate or -force", out)
	}

	password, err := wire.NewPassword()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	b := &wire.Bundle{
		Note: fmt.Sprintf("hubmon enrolment for site %s, made %s. It holds the site's MQTT password: keep it secret, and delete it once installed. "+
			"On the hub: sudo hubmon-agent enrol %s (or the short code in \"code\"), or copy this file onto the SD card's boot partition: "+
			"the agent installs it when it starts, then deletes it.", site, now.Format(time.RFC3339), filepath.Base(out)),
		Site: site, BrokerURL: o.brokerURL, Username: site, Password: password, CAPEM: string(caPEM), CreatedAt: now,
	}
	data, err := b.MarshalFile()
	if err != nil {
		return err
	}
	// the bundle goes to a temporary file first: if the password file cannot
	// be written, no bundle is left behind for credentials that do not exist
	tmp, err := writeTemp(out, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op once it is in place

	mode, verb := broker.AddOnly, "added"
	switch {
	case o.rotate:
		mode, verb = broker.ReplaceOnly, "replaced (a new password; the old one stops working when the broker reloads)"
	case o.force:
		mode, verb = broker.AddOrReplace, "set"
	}
	if err := broker.PutUser(t.passwd, site, password, mode); err != nil {
		switch {
		case errors.Is(err, broker.ErrUserExists):
			return fmt.Errorf("site %q is enrolled already (it is in %s): pass -rotate to give it a new password", site, t.passwd)
		case errors.Is(err, broker.ErrNoSuchUser):
			return fmt.Errorf("-rotate: site %q is not enrolled (not in %s): leave -rotate out", site, t.passwd)
		}
		return err
	}
	passwdLine := fmt.Sprintf("%s: %s %s", t.passwd, site, verb)

	if t.acl != "" {
		if len(aclMissing) == 0 {
			aclLine = fmt.Sprintf("%s already lets %s publish its own topics (pattern lines for %%u): nothing added", t.acl, site)
		} else {
			if err := broker.AddSiteACL(t.acl, site); err != nil {
				return fmt.Errorf("%w (the password is set: run again with -rotate once the ACL is fixed)", err)
			}
			aclLine = fmt.Sprintf("%s: added a section for %s (%s)", t.acl, site, strings.Join(aclMissing, ", "))
		}
	}

	if replaceBundle {
		err = os.Rename(tmp, out)
	} else if err = os.Link(tmp, out); err == nil { // fails if out appeared meanwhile
		os.Remove(tmp)
	}
	if err != nil {
		return fmt.Errorf("write bundle: %w (the password is set: run again with -rotate)", err)
	}

	reloadLine := "reload the broker: " + t.reloadHint
	if o.reloadPID != "" {
		pid, name, err := signalReload(o.reloadPID)
		if err != nil {
			return fmt.Errorf("-reload-pid: %w (the site is enrolled; reload the broker by hand: %s)", err, t.reloadHint)
		}
		reloadLine = fmt.Sprintf("sent SIGHUP to process %d (%s): it re-reads the password file now", pid, name)
	}

	w := func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	w("enrolled site %s", site)
	w("  password file  %s", passwdLine)
	w("  ACL            %s", aclLine)
	w("  sites file     %s", siteLine)
	w("  broker         %s", o.brokerURL)
	w("  CA             %s", caLine)
	w("  bundle         %s (mode 0600; it holds the password: keep it secret, delete it once installed)", out)
	if o.printCode {
		w("  short code     %s", b.Code)
	} else {
		w("  short code     the \"code\" line of the bundle (or run with -print-code)")
	}
	for _, n := range notes {
		w("note: %s", n)
	}
	w("next:")
	w("  1. %s", reloadLine)
	w("  2. on the hub: sudo hubmon-agent enrol %s   (or the short code; or copy the file onto the SD card's boot partition)", filepath.Base(out))
	if b.CASHA256 != "" {
		w("     a code carries only the CA's fingerprint: the hub takes the certificate from the broker, so the broker's certfile must hold the CA after its own certificate")
	}
	return nil
}

// checkSite looks site up in the sites file, if there is one, and returns
// what to say about it.
func checkSite(site string, t *enrolTarget, allowUnlisted bool) (string, error) {
	if t.sitesFile == "" {
		return "none (every site is accepted)", nil
	}
	list, err := config.LoadSites(t.sitesFile, nil)
	if err != nil {
		return "", err
	}
	for _, s := range list {
		if s.ID == site {
			return fmt.Sprintf("%s lists %s (%q)", t.sitesFile, site, s.Name), nil
		}
	}
	switch {
	case t.autoRegister:
		return fmt.Sprintf("%s does not list %s; accepted anyway (auto_register)", t.sitesFile, site), nil
	case allowUnlisted:
		return fmt.Sprintf("%s does not list %s: the collector rejects its messages until it does", t.sitesFile, site), nil
	}
	return "", fmt.Errorf("site %q is not in the sites file %s: the collector would reject its measurements. Add it there first (then reload the collector), or pass -allow-unlisted", site, t.sitesFile)
}

// writeTemp writes data to a new temporary file, mode 0600, next to path.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write bundle: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write bundle: %w", err)
	}
	return f.Name(), nil // CreateTemp makes it 0600
}

// signalReload sends SIGHUP to the process that arg names: a pid, or a pid
// file. It returns the pid and the process's name.
func signalReload(arg string) (int, string, error) {
	pid, err := strconv.Atoi(arg)
	if err != nil {
		b, rerr := os.ReadFile(arg)
		if rerr != nil {
			return 0, "", fmt.Errorf("%q is neither a process id nor a readable pid file: %w", arg, rerr)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return 0, "", fmt.Errorf("pid file %s does not hold a process id", arg)
		}
	}
	if pid <= 1 {
		return 0, "", fmt.Errorf("%d is not a broker's process id", pid)
	}
	name := "unknown"
	// the program's name: /proc/PID/comm is cut to 15 bytes
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		arg0, _, _ := strings.Cut(string(b), "\x00")
		name = filepath.Base(arg0)
	} else if errors.Is(err, fs.ErrNotExist) {
		return 0, "", fmt.Errorf("no process %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return 0, "", fmt.Errorf("send SIGHUP to %d: %w", pid, err)
	}
	return pid, name, nil
}
