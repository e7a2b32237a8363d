package deploy

// The Debian packages of `make deb`: their control data, files, modes,
// conffiles and maintainer scripts; then the amd64 packages installed with
// dpkg in a throwaway root (an overlay on this machine's own root, in a
// mount namespace of its own, so nothing here changes), where the
// maintainer scripts create the user and enable the units, the services'
// commands run as that user, and purge cleans up.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debPackage is what one package must hold.
type debPackage struct {
	name, arch string
	bin        string // the dist binary in /usr/bin
	conffile   string // deploy/nfpm/etc/...
}

var debPackages = []debPackage{
	{"hubmon-agent", "amd64", "hubmon-agent-linux-amd64", "agent.yaml"},
	{"hubmon-agent", "arm64", "hubmon-agent-linux-arm64", "agent.yaml"},
	// Raspberry Pi OS's armhf runs on every Pi: the armv6 build does too
	{"hubmon-agent", "armhf", "hubmon-agent-linux-armv6", "agent.yaml"},
	{"hubmon-collector", "amd64", "hubmon-collector-linux-amd64", "collector.yaml"},
	{"hubmon-collector", "arm64", "hubmon-collector-linux-arm64", "collector.yaml"},
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
			wantFiles := []string{
				"-rw-r--r-- root/root ./etc/hubmon/" + p.conffile,
				"-rw-r--r-- root/root ./lib/systemd/system/" + p.name + ".service",
				"-rw-r--r-- root/root ./usr/share/doc/" + p.name + "/copyright",
				"-rwxr-xr-x root/root ./usr/bin/" + p.name,
			}
			if !slices.Equal(files, wantFiles) {
				t.Errorf("files:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
			}

			// the files are the ones in the repository and dist
			root := t.TempDir()
			dpkgDeb(t, "-x", deb, root)
			sameFile(t, filepath.Join(root, "usr/bin", p.name), filepath.Join(dir, p.bin))
			sameFile(t, filepath.Join(root, "lib/systemd/system", p.name+".service"), filepath.Join("systemd", p.name+".service"))
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
	/etc/hubmon/collector.yaml /etc/hubmon/passwd /var/lib/hubmon /lib/systemd/system/hubmon-agent.service
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
		out, err := r.run("systemd-analyze verify /lib/systemd/system/hubmon-agent.service /lib/systemd/system/hubmon-collector.service")
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

	t.Run("enrolled agent runs as hubmon", func(t *testing.T) {
		// enrolment's file, read as systemd reads EnvironmentFile; the
		// agent in a network namespace of its own, with no broker
		out := r.must(t, "enrol and run", `umask 077
cat >/etc/hubmon/agent.env <<'ENV'
HUBMON_SITE=test-hub
HUBMON_BROKER_URL=tcp://127.0.0.1:1883
HUBMON_MQTT_PASSWORD=secret
HUBMON_ECHO_TARGET=127.0.0.1:9471
ENV
set -a; . /etc/hubmon/agent.env; set +a
`+asHubmon+`hubmon-agent run -config /etc/hubmon/agent.yaml -check-config
`+runBriefly("hubmon-agent", "hubmon-agent started")+`
stat -c '%n %U:%G %a' /etc/hubmon/agent.env /var/lib/hubmon/outbox.db`)
		for _, want := range []string{
			"configuration is valid (site test-hub, 4 probes)",
			"hubmon-agent exited 0",
			"/etc/hubmon/agent.env root:root 600",
			"/var/lib/hubmon/outbox.db hubmon:hubmon 600",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		}
	})

	t.Run("collector runs as hubmon", func(t *testing.T) {
		out := r.must(t, "add a site and run", asHubmon+`hubmon-collector run -config /etc/hubmon/collector.yaml -check-config
echo secret | hubmon-collector passwd -file /etc/hubmon/passwd test-hub
`+asHubmon+`hubmon-collector run -config /etc/hubmon/collector.yaml -check-config
`+runBriefly("hubmon-collector", "hubmon-collector started")+`
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
// namespace of its own,
// waits up to 30 s for started in its log, stops it with SIGTERM and prints
// "<program> exited <code>" (and its log, if it did not start).
func runBriefly(program, started string) string {
	conf := "/etc/hubmon/" + strings.TrimPrefix(program, "hubmon-") + ".yaml"
	return fmt.Sprintf(`(umask 077; exec unshare --net `+asHubmon+`%[1]s run -config %[2]s >/tmp/%[1]s.log 2>&1) &
pid=$!
i=0
until grep -q '%[3]s' /tmp/%[1]s.log; do
	if ! kill -0 $pid 2>/dev/null || [ $i -ge 300 ]; then cat /tmp/%[1]s.log; break; fi
	sleep 0.1; i=$((i+1))
done
kill -TERM $pid; code=0; wait $pid || code=$?
echo "%[1]s exited $code"`, program, conf, started)
}
