package deploy

// The Debian packages of `make deb`: their control data, files, modes,
// conffiles and maintainer scripts; then the amd64 packages installed with
// dpkg in a throwaway root (an overlay on this machine's own root, in a
// mount namespace of its own, so nothing here changes), where the
// maintainer scripts create the user and enable the units, the agent is
// enrolled with a bundle from `hubmon-collector enrol` (as a hub's staff
// would, and from the boot partition), the services' commands run as that
// user with the environment systemd would give them, the agent reports to
// a collector on this machine, and purge cleans up.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// debPackage is what one package must hold.
type debPackage struct {
	name, arch string
	bin        string   // the dist binary in /usr/bin
	conffile   string   // deploy/nfpm/etc/...
	units      []string // deploy/systemd/...
}

var (
	agentUnits     = []string{"hubmon-agent.service", "hubmon-enrol.service"}
	collectorUnits = []string{"hubmon-collector.service"}
)

var debPackages = []debPackage{
	{"hubmon-agent", "amd64", "hubmon-agent-linux-amd64", "agent.yaml", agentUnits},
	{"hubmon-agent", "arm64", "hubmon-agent-linux-arm64", "agent.yaml", agentUnits},
	// Raspberry Pi OS's armhf runs on every Pi: the armv6 build does too
	{"hubmon-agent", "armhf", "hubmon-agent-linux-armv6", "agent.yaml", agentUnits},
	{"hubmon-collector", "amd64", "hubmon-collector-linux-amd64", "collector.yaml", collectorUnits},
	{"hubmon-collector", "arm64", "hubmon-collector-linux-arm64", "collector.yaml", collectorUnits},
}

func (p debPackage) file(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", p.name, testDebVersion, p.arch))
}

// short is the program's name without "hubmon-": agent or collector.
func (p debPackage) short() string { return strings.TrimPrefix(p.name, "hubmon-") }

func TestDebPackages(t *testing.T) {
	need(t, "dpkg-deb")
	dir := debs(t)
	for _, p := range debPackages {
		t.Run(p.name+"_"+p.arch, func(t *testing.T) {
			deb := p.file(dir)
			st, err := os.Stat(deb)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f MB", filepath.Base(deb), float64(st.Size())/1e6)

			fields := dpkgDeb(t, "-f", deb, "Package", "Version", "Architecture", "Depends")
			want := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nDepends: adduser\n", p.name, testDebVersion, p.arch)
			if fields != want {
				t.Errorf("control fields:\n%s\nwant:\n%s", fields, want)
			}

			// every file, with its mode and owner
			var files []string
			for _, l := range strings.Split(strings.TrimSpace(dpkgDeb(t, "-c", deb)), "\n") {
				f := strings.Fields(l)
				if len(f) < 6 || strings.HasPrefix(f[0], "d") {
					continue
				}
				files = append(files, f[0]+" "+f[1]+" "+f[len(f)-1])
			}
			slices.Sort(files)
			wantFiles := []string{"-rw-r--r-- root/root ./etc/hubmon/" + p.conffile}
			for _, u := range p.units {
				wantFiles = append(wantFiles, "-rw-r--r-- root/root ./lib/systemd/system/"+u)
			}
			wantFiles = append(wantFiles,
				"-rw-r--r-- root/root ./usr/share/doc/"+p.name+"/copyright",
				"-rwxr-xr-x root/root ./usr/bin/"+p.name)
			if !slices.Equal(files, wantFiles) {
				t.Errorf("files:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
			}

			// the files are the ones in the repository and dist
			root := t.TempDir()
			dpkgDeb(t, "-x", deb, root)
			sameFile(t, filepath.Join(root, "usr/bin", p.name), filepath.Join(dir, p.bin))
			for _, u := range p.units {
				sameFile(t, filepath.Join(root, "lib/systemd/system", u), filepath.Join("systemd", u))
			}
			sameFile(t, filepath.Join(root, "etc/hubmon", p.conffile), filepath.Join("nfpm/etc", p.conffile))

			// control: the conffile, and maintainer scripts that are shell
			control := t.TempDir()
			dpkgDeb(t, "-e", deb, control)
			if b, _ := os.ReadFile(filepath.Join(control, "conffiles")); string(b) != "/etc/hubmon/"+p.conffile+"\n" {
				t.Errorf("conffiles: %q", b)
			}
			for _, script := range []string{"postinst", "prerm", "postrm"} {
				path := filepath.Join(control, script)
				sameFile(t, path, filepath.Join("nfpm/scripts", p.short()+"-"+script))
				if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o755 {
					t.Errorf("%s: %v %v", script, st.Mode(), err)
				}
				if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
					t.Errorf("sh -n %s: %v\n%s", script, err, out)
				}
			}
		})
	}
}

func dpkgDeb(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		tb.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func sameFile(tb testing.TB, got, want string) {
	tb.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		tb.Errorf("%s differs from %s", got, want)
	}
}

// throwaway is a root file system made of this machine's own root, with
// every change written to a directory of the test (an overlay mount), entered
// with chroot in a mount namespace of its own: the test can install
// packages, create users and run their scripts there, and the machine is not
// changed.
type throwaway struct {
	dir    string // upper (the changes), work and the mount point
	debDir string // copied to /tmp/debs inside
}

// enter mounts the overlay (and /dev, /proc, an empty /run so that the
// maintainer scripts see no running systemd, an empty /tmp) in a new mount
// namespace and runs the shell script inside with chroot; the mounts go with
// the namespace.
const enter = `set -eu
ov=$1 debdir=$2 script=$3
m=$ov/m
mount -t overlay overlay -o lowerdir=/,upperdir=$ov/upper,workdir=$ov/work $m
mount --bind /dev $m/dev
mount -t proc proc $m/proc
mount -t tmpfs tmpfs $m/run
mount -t tmpfs tmpfs $m/tmp
mkdir $m/tmp/debs
cp "$debdir"/*.deb $m/tmp/debs/
exec chroot $m /bin/sh -euc "$script"
`

func newThrowaway(tb testing.TB, debDir string) *throwaway {
	tb.Helper()
	if os.Geteuid() != 0 {
		unavailable(tb, "installing packages in a throwaway root needs root (mount, chroot)")
	}
	need(tb, "unshare", "chroot", "mount", "dpkg", "setpriv")
	r := &throwaway{dir: tb.TempDir(), debDir: debDir}
	for _, d := range []string{"upper", "work", "m"} {
		if err := os.Mkdir(filepath.Join(r.dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if out, err := r.run("true"); err != nil {
		unavailable(tb, "cannot make a throwaway root with an overlay mount here: %v\n%s", err, out)
	}
	return r
}

// run runs script (sh -eu) in the throwaway root as root.
func (r *throwaway) run(script string) (string, error) {
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", enter, "enter", r.dir, r.debDir, script)
	cmd.Stdin = nil // dpkg must not need to ask anything
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs script and fails the test if it fails.
func (r *throwaway) must(tb testing.TB, what, script string) string {
	tb.Helper()
	out, err := r.run(script)
	if err != nil {
		tb.Fatalf("%s: %v\n%s", what, err, out)
	}
	return out
}

// path is a file of the throwaway root as changed so far (in the upper
// directory: only what the test changed is there).
func (r *throwaway) changed(path string) string { return filepath.Join(r.dir, "upper", path) }

// asHubmon runs a command as the hubmon user (and group), as systemd would.
const asHubmon = "setpriv --reuid=hubmon --regid=hubmon --init-groups "

func TestDebInstall(t *testing.T) {
	need(t, "dpkg-deb")
	dir := debs(t)
	pkgs := t.TempDir()
	for _, p := range debPackages {
		if p.arch == "amd64" {
			if err := os.Link(p.file(dir), filepath.Join(pkgs, filepath.Base(p.file(dir)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := newThrowaway(t, pkgs)

	out := r.must(t, "dpkg -i", "dpkg -i /tmp/debs/hubmon-agent_*.deb /tmp/debs/hubmon-collector_*.deb")
	if !strings.Contains(out, "hubmon-agent: not enrolled yet") {
		t.Errorf("postinst did not say the agent is not enrolled:\n%s", out)
	}

	t.Run("installed", func(t *testing.T) {
		out := r.must(t, "look", `getent passwd hubmon; getent group hubmon
stat -c '%n %U:%G %a' /usr/bin/hubmon-agent /usr/bin/hubmon-collector /etc/hubmon /etc/hubmon/agent.yaml \
	/etc/hubmon/collector.yaml /etc/hubmon/passwd /var/lib/hubmon /lib/systemd/system/hubmon-agent.service \
	/lib/systemd/system/hubmon-enrol.service
for u in hubmon-agent hubmon-collector; do echo "$u enabled: $(readlink /etc/systemd/system/multi-user.target.wants/$u.service)"; done
dpkg-query -W -f='${Package} ${Status}${Conffiles}\n' hubmon-agent hubmon-collector`)
		lines := strings.Split(out, "\n")
		// a system user, without a shell, at home in the state directory
		pw := strings.Split(lines[0], ":")
		if len(pw) != 7 || pw[0] != "hubmon" || pw[5] != "/var/lib/hubmon" || pw[6] != "/usr/sbin/nologin" || len(pw[2]) > 3 {
			t.Errorf("user: %q", lines[0])
		}
		if !strings.HasPrefix(lines[1], "hubmon:x:") {
			t.Errorf("group: %q", lines[1])
		}
		for _, want := range []string{
			"/usr/bin/hubmon-agent root:root 755",
			"/usr/bin/hubmon-collector root:root 755",
			"/etc/hubmon root:root 755",
			"/etc/hubmon/agent.yaml root:root 644",
			"/etc/hubmon/collector.yaml root:root 644",
			"/etc/hubmon/passwd root:hubmon 640", // the collector reads it, root writes it
			"/var/lib/hubmon hubmon:hubmon 750",
			"/lib/systemd/system/hubmon-agent.service root:root 644",
			"/lib/systemd/system/hubmon-enrol.service root:root 644",
			"hubmon-agent enabled: /lib/systemd/system/hubmon-agent.service",
			"hubmon-collector enabled: /lib/systemd/system/hubmon-collector.service",
			"hubmon-agent install ok installed /etc/hubmon/agent.yaml ", // a conffile
			"hubmon-collector install ok installed /etc/hubmon/collector.yaml ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		out := r.must(t, "look for systemd-analyze", "command -v systemd-analyze || true")
		if strings.TrimSpace(out) == "" {
			t.Skip("systemd-analyze is not installed")
		}
		out, err := r.run("systemd-analyze verify /lib/systemd/system/hubmon-agent.service /lib/systemd/system/hubmon-enrol.service /lib/systemd/system/hubmon-collector.service")
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("not enrolled", func(t *testing.T) {
		// what ExecStartPre would say if the unit's condition did not
		// keep it from starting
		out, err := r.run(asHubmon + "hubmon-agent run -config /etc/hubmon/agent.yaml -check-config")
		for _, v := range []string{"HUBMON_SITE", "HUBMON_BROKER_URL", "HUBMON_MQTT_PASSWORD", "HUBMON_ECHO_TARGET"} {
			if err == nil || !strings.Contains(out, "environment variable "+v+" is not set") {
				t.Errorf("an agent without agent.env: %v, want an error naming %s:\n%s", err, v, out)
			}
		}
		unit := r.must(t, "read the unit", "cat /lib/systemd/system/hubmon-agent.service")
		if !strings.Contains(unit, "\nConditionPathExists=/etc/hubmon/agent.env\n") {
			t.Errorf("the agent's unit does not wait for /etc/hubmon/agent.env:\n%s", unit)
		}
	})

	// The council enrols the hub (the real hubmon-collector enrol, against
	// a real collector with its embedded broker on this machine's
	// 127.0.0.1), the hub's staff install the bundle; then the agent runs
	// as its unit says, and reports.
	c := startCollector(t, dir)
	dnsAddr := startDNSServer(t, "hub.test.", net.IPv4(192, 0, 2, 7))
	brokerURL := strings.Replace(c.brokerURL, "tcp://", "mqtt://", 1)
	if err := os.Mkdir(r.changed("hubmon-test"), 0o755); err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(r.changed("hubmon-test"), "deb-hub.hubmon-enrol") // /hubmon-test/... inside
	if out, err := exec.Command(filepath.Join(dir, "hubmon-collector-linux-amd64"), "enrol", "deb-hub", "-config", c.conf,
		"-broker-url", brokerURL, "-out", bundlePath, "-reload-pid", strconv.Itoa(c.cmd.Process.Pid)).CombinedOutput(); err != nil {
		t.Fatalf("hubmon-collector enrol: %v\n%s", err, out)
	}
	bundleData, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := wire.DecodeBundle(bundleData)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{
		"HUBMON_SITE":          "deb-hub",
		"HUBMON_BROKER_URL":    brokerURL,
		"HUBMON_MQTT_PASSWORD": bundle.Password,
		// the broker's host, at the collector's echo_server port
		"HUBMON_ECHO_TARGET": "127.0.0.1:9471",
	}
	agentUnit := readUnit(t, r, "/lib/systemd/system/hubmon-agent.service")

	t.Run("enrol", func(t *testing.T) {
		out := r.must(t, "hubmon-agent enrol", `hubmon-agent enrol /hubmon-test/deb-hub.hubmon-enrol
stat -c '%n %U:%G %a' /etc/hubmon/agent.env
dpkg --verify hubmon-agent && echo "dpkg --verify: ok" || echo "dpkg --verify: failed"`)
		for _, want := range []string{
			"installed the enrolment for site deb-hub\n",
			"  env     /etc/hubmon/agent.env (new): HUBMON_SITE, HUBMON_BROKER_URL, HUBMON_MQTT_PASSWORD, HUBMON_ECHO_TARGET\n",
			"  config  /etc/hubmon/agent.yaml (not changed: it takes these from the environment; 4 probes)\n",
			// no systemd running here, so no restart
			"next: sudo systemctl restart hubmon-agent\n",
			"/etc/hubmon/agent.env root:root 600\n",
			// the conffile is as shipped: upgrades will not ask about it
			"dpkg --verify: ok\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
		if strings.Contains(out, bundle.Password) {
			t.Errorf("enrol printed the password:\n%s", out)
		}
		sameFile(t, r.changed("etc/hubmon/agent.yaml"), "nfpm/etc/agent.yaml")
		env, err := systemdEnvFile(r.changed("etc/hubmon/agent.env"))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(env, wantEnv) {
			t.Errorf("agent.env sets %v, want %v", env, wantEnv)
		}
	})

	t.Run("ExecStartPre passes", func(t *testing.T) {
		out := r.must(t, "ExecStartPre", serviceCommand(t, r, agentUnit, "ExecStartPre", ""))
		if !strings.Contains(out, "/etc/hubmon/agent.yaml: configuration is valid (site deb-hub, 4 probes)") {
			t.Errorf("ExecStartPre:\n%s", out)
		}
	})

	t.Run("enrolled agent reports", func(t *testing.T) {
		// ExecStart with the shipped config but for its probes, which would
		// go to the internet: a DNS lookup through the test's server instead
		shipped, err := os.ReadFile("nfpm/etc/agent.yaml")
		if err != nil {
			t.Fatal(err)
		}
		head, _, ok := strings.Cut(string(shipped), "\nprobes:\n")
		if !ok {
			t.Fatal("no probes: in nfpm/etc/agent.yaml")
		}
		local := head + fmt.Sprintf(`
probes:
  - name: dns
    kind: dns
    interval: 1h
    splay: 0s
    first_run: 0s
    dns: {names: [hub.test], resolvers: ["%s"]}
`, dnsAddr)
		if err := os.WriteFile(filepath.Join(r.changed("hubmon-test"), "agent-local.yaml"), []byte(local), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := serviceCommand(t, r, agentUnit, "ExecStart", "/hubmon-test/agent-local.yaml")
		t0 := time.Now()
		agent := start(t, "agent", nil, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", enter, "enter", r.dir, r.debDir, cmd)
		lbl := map[string]string{"site": "deb-hub", "probe": "dns"}
		waitFor(t, "the packaged agent's measurement on the collector's /metrics", time.Minute, func() bool {
			if !agent.running() {
				t.Fatalf("the agent exited: %v\n%s", agent.err, agent.output())
			}
			_, ok := sample(scrape(c.url("/metrics")), "hubmon_dns_success", lbl)
			return ok
		})
		if v, _ := sample(scrape(c.url("/metrics")), "hubmon_dns_success", map[string]string{"site": "deb-hub", "resolver": dnsAddr}); v != 1 {
			t.Errorf("the DNS lookup failed (hubmon_dns_success %v)", v)
		}
		t.Logf("the measurement was stored %s after the agent started", time.Since(t0).Round(10*time.Millisecond))
		agent.stop(30 * time.Second)
		out := r.must(t, "look", "stat -c '%n %U:%G %a' /var/lib/hubmon/outbox.db")
		if !strings.Contains(out, "/var/lib/hubmon/outbox.db hubmon:hubmon 600") {
			t.Errorf("outbox: %s", out)
		}
	})

	t.Run("enrolled agent starts with the shipped probes", func(t *testing.T) {
		// the whole shipped config, in a network namespace of its own
		// (nothing reaches the internet)
		env := serviceEnv(t, r, agentUnit)
		out := r.must(t, "run", runBriefly("hubmon-agent", "hubmon-agent started", env))
		if !strings.Contains(out, "hubmon-agent exited 0") {
			t.Errorf("want a clean start and stop:\n%s", out)
		}
	})

	t.Run("enrol from the boot partition", func(t *testing.T) {
		// what a unit's conditions find: ConditionPathExists and the
		// hubmon-enrol unit's ConditionPathExistsGlob=| (any one)
		enrolUnit := readUnit(t, r, "/lib/systemd/system/hubmon-enrol.service")
		conditions := fmt.Sprintf(`[ -e %s ] && echo "hubmon-agent.service: condition met" || echo "hubmon-agent.service: condition unmet"
met=unmet
for f in %s; do if [ -e "$f" ]; then met=met; fi; done
echo "hubmon-enrol.service: condition $met"
`, agentUnit["ConditionPathExists"][0], strings.Join(trimEach(enrolUnit["ConditionPathExistsGlob"], "|"), " "))
		before, _ := os.ReadFile(r.changed("etc/hubmon/agent.env"))
		out := r.must(t, "a bundle on the boot partition", `rm /etc/hubmon/agent.env
`+conditions+`mkdir -p /boot/firmware
cp /hubmon-test/deb-hub.hubmon-enrol /boot/firmware/hubmon-enrol.txt
`+conditions+`
`+strings.TrimPrefix(enrolUnit["ExecStart"][0], "-")+`
`+conditions+`
ls /boot/firmware; cat /boot/firmware/hubmon-enrol-result.txt; echo
stat -c '%n %U:%G %a' /etc/hubmon/agent.env`)
		for _, want := range []string{
			// no agent.env, no bundle: neither runs
			"hubmon-agent.service: condition unmet\nhubmon-enrol.service: condition unmet\n" +
				// the bundle: hubmon-enrol.service runs first
				"hubmon-agent.service: condition unmet\nhubmon-enrol.service: condition met\n",
			"  the enrolment file /boot/firmware/hubmon-enrol.txt was deleted from the boot partition\n",
			// then the agent's
			"hubmon-agent.service: condition met\n",
			"hubmon-enrol-result.txt\nhubmon: the enrolment for site deb-hub was installed",
			"/etc/hubmon/agent.env root:root 600",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
		if strings.Contains(out, "hubmon-enrol.txt\n") {
			t.Errorf("the bundle stayed on the boot partition:\n%s", out)
		}
		if after, _ := os.ReadFile(r.changed("etc/hubmon/agent.env")); !bytes.Equal(after, before) {
			t.Errorf("agent.env from the boot partition:\n%s\nwant, as from hubmon-agent enrol:\n%s", after, before)
		}
	})

	t.Run("collector runs as hubmon", func(t *testing.T) {
		out := r.must(t, "add a site and run", asHubmon+`hubmon-collector run -config /etc/hubmon/collector.yaml -check-config
echo secret | hubmon-collector passwd -file /etc/hubmon/passwd test-hub
`+asHubmon+`hubmon-collector run -config /etc/hubmon/collector.yaml -check-config
`+runBriefly("hubmon-collector", "hubmon-collector started", "")+`
stat -c '%n %U:%G %a' /etc/hubmon/passwd /var/lib/hubmon/hubmon.db`)
		for _, want := range []string{
			"/etc/hubmon/collector.yaml: configuration is valid",
			"added test-hub to /etc/hubmon/passwd",
			"hubmon-collector exited 0",
			// root's `hubmon-collector passwd` left it readable to the service
			"/etc/hubmon/passwd root:hubmon 640",
			"/var/lib/hubmon/hubmon.db hubmon:hubmon 600",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
		if n := strings.Count(out, "configuration is valid"); n != 2 {
			t.Errorf("the collector's config checked valid %d times, want 2:\n%s", n, out)
		}
	})

	t.Run("upgrade keeps local changes", func(t *testing.T) {
		r.must(t, "edit", "echo '# edited here' >>/etc/hubmon/agent.yaml")
		out := r.must(t, "dpkg -i again", "dpkg -i /tmp/debs/hubmon-agent_*.deb /tmp/debs/hubmon-collector_*.deb")
		if strings.Contains(out, "not enrolled") {
			t.Errorf("an enrolled agent was told it is not:\n%s", out)
		}
		for _, f := range []string{"etc/hubmon/agent.yaml", "etc/hubmon/agent.env", "etc/hubmon/passwd"} {
			b, err := os.ReadFile(r.changed(f))
			if err != nil {
				t.Errorf("%s after the upgrade: %v", f, err)
			}
			if f == "etc/hubmon/agent.yaml" && !bytes.HasSuffix(b, []byte("# edited here\n")) {
				t.Errorf("the upgrade replaced the edited agent.yaml")
			}
			if f == "etc/hubmon/passwd" && !bytes.Contains(b, []byte("\ntest-hub:$7$")) {
				t.Errorf("the upgrade lost the password file's site:\n%s", b)
			}
		}
	})

	t.Run("purge", func(t *testing.T) {
		out := r.must(t, "dpkg --purge", `dpkg --purge hubmon-agent hubmon-collector
for f in /usr/bin/hubmon-agent /usr/bin/hubmon-collector /etc/hubmon /var/lib/hubmon \
	/etc/systemd/system/multi-user.target.wants/hubmon-agent.service \
	/etc/systemd/system/multi-user.target.wants/hubmon-collector.service; do
	if [ -e "$f" ] || [ -L "$f" ]; then echo "left: $f"; fi
done
getent passwd hubmon >/dev/null && echo "user kept"`)
		if strings.Contains(out, "left: ") || !strings.Contains(out, "user kept") {
			t.Errorf("after purge:\n%s", out)
		}
	})
}

// runBriefly is a shell fragment that starts program (run -config
// /etc/hubmon/<name>.yaml) as hubmon with the units' umask, in a network
// namespace of its own, with env before it (serviceEnv, or ""),
// waits up to 30 s for started in its log, stops it with SIGTERM and prints
// "<program> exited <code>" (and its log, if it did not start).
func runBriefly(program, started, env string) string {
	conf := "/etc/hubmon/" + strings.TrimPrefix(program, "hubmon-") + ".yaml"
	return fmt.Sprintf(`(umask 077; exec unshare --net %[4]s `+asHubmon+`%[1]s run -config %[2]s >/tmp/%[1]s.log 2>&1) &
pid=$!
i=0
until grep -q '%[3]s' /tmp/%[1]s.log; do
	if ! kill -0 $pid 2>/dev/null || [ $i -ge 300 ]; then cat /tmp/%[1]s.log; break; fi
	sleep 0.1; i=$((i+1))
done
kill -TERM $pid; code=0; wait $pid || code=$?
echo "%[1]s exited $code"`, program, conf, started, env)
}

// readUnit reads a systemd unit file of the throwaway root: each setting's
// values, in order, from every section.
func readUnit(tb testing.TB, r *throwaway, path string) map[string][]string {
	tb.Helper()
	data := r.must(tb, "read "+path, "cat "+path)
	u := map[string][]string{}
	for _, l := range strings.Split(data, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			u[k] = append(u[k], v)
		}
	}
	return u
}

// systemdEnvFile reads an environment file as systemd reads
// EnvironmentFile=, for the lines enrol writes: comments, NAME=value with a
// value of letters, digits and _@%+=:,./- or in double quotes with \, ",
// ` and $ escaped by a backslash. Anything else is an error: systemd and a
// shell might read it differently.
func systemdEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	plain := regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]*$`)
	for i, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			return nil, fmt.Errorf("%s:%d: not NAME=value: %q", path, i+1, l)
		}
		if q, ok := strings.CutPrefix(v, `"`); ok && strings.HasSuffix(q, `"`) && len(q) > 0 {
			var b strings.Builder
			q = q[:len(q)-1]
			for j := 0; j < len(q); j++ {
				switch {
				case q[j] == '\\' && j+1 < len(q) && strings.IndexByte("\"\\`$", q[j+1]) >= 0:
					j++
				case strings.IndexByte("\"\\`$", q[j]) >= 0:
					return nil, fmt.Errorf("%s:%d: an unescaped %q in a quoted value", path, i+1, q[j])
				}
				b.WriteByte(q[j])
			}
			v = b.String()
		} else if !plain.MatchString(v) {
			return nil, fmt.Errorf("%s:%d: a value that needs quotes has none", path, i+1)
		}
		env[k] = v
	}
	return env, nil
}

// serviceEnv is `env -i` and the environment systemd would give the unit's
// commands (its Environment= and EnvironmentFile=, read from the
// throwaway root; PATH and the user's), as shell words.
func serviceEnv(tb testing.TB, r *throwaway, unit map[string][]string) string {
	tb.Helper()
	words := []string{"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/var/lib/hubmon", "USER=hubmon", "LOGNAME=hubmon"}
	for _, e := range unit["Environment"] {
		words = append(words, shellQuote(e))
	}
	for _, f := range unit["EnvironmentFile"] {
		env, err := systemdEnvFile(r.changed(strings.TrimPrefix(f, "-")))
		if err != nil && !(strings.HasPrefix(f, "-") && errors.Is(err, fs.ErrNotExist)) {
			tb.Fatal(err)
		}
		for _, k := range slices.Sorted(maps.Keys(env)) {
			words = append(words, shellQuote(k+"="+env[k]))
		}
	}
	return strings.Join(words, " ")
}

// serviceCommand is a shell script running the unit's command (ExecStart,
// ExecStartPre) as systemd would: as its user, with its umask and
// environment; config, if not "", in place of /etc/hubmon/agent.yaml.
func serviceCommand(tb testing.TB, r *throwaway, unit map[string][]string, key, config string) string {
	tb.Helper()
	if len(unit[key]) != 1 || unit["User"][0] != "hubmon" || unit["Group"][0] != "hubmon" || unit["UMask"][0] != "0077" {
		tb.Fatalf("the unit has %s %q, User %q, Group %q, UMask %q: not what this test knows", key, unit[key], unit["User"], unit["Group"], unit["UMask"])
	}
	cmd := strings.TrimLeft(unit[key][0], "-+!@:")
	if config != "" {
		cmd = strings.Replace(cmd, " -config /etc/hubmon/agent.yaml", " -config "+config, 1)
	}
	return "umask 0077\nexec " + serviceEnv(tb, r, unit) + " " + asHubmon + cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func trimEach(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		out = append(out, strings.TrimPrefix(s, prefix))
	}
	return out
}
