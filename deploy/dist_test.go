package deploy

// The binaries of `make dist`: static ELF files for the right machine, and the
// ARM agents run under qemu-user (invoked explicitly, not through binfmt),
// emulating the CPUs of the Raspberry Pis they are for: they print their
// version, check a good and a broken config, and publish measurements to the
// real (x86) collector's embedded broker.

import (
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// armAgents are the ARM agent builds and the CPU each is emulated on: the
// oldest Pi it is for.
var armAgents = []struct {
	target, qemu, cpu, goarch string
}{
	{"arm64", "qemu-aarch64-static", "cortex-a53", "arm64"}, // Pi 3, Zero 2 W (Pi 4, 5: A72, A76)
	{"armv7", "qemu-arm-static", "cortex-a7", "arm"},        // Pi 2
	{"armv6", "qemu-arm-static", "arm1176", "arm"},          // Pi 1, Zero, Zero W
}

func TestDistBinaries(t *testing.T) {
	dir := dist(t)
	for _, b := range []struct {
		name    string
		machine elf.Machine
		class   elf.Class
	}{
		{"hubmon-agent-linux-amd64", elf.EM_X86_64, elf.ELFCLASS64},
		{"hubmon-agent-linux-arm64", elf.EM_AARCH64, elf.ELFCLASS64},
		{"hubmon-agent-linux-armv7", elf.EM_ARM, elf.ELFCLASS32},
		{"hubmon-agent-linux-armv6", elf.EM_ARM, elf.ELFCLASS32},
		{"hubmon-collector-linux-amd64", elf.EM_X86_64, elf.ELFCLASS64},
		{"hubmon-collector-linux-arm64", elf.EM_AARCH64, elf.ELFCLASS64},
	} {
		t.Run(b.name, func(t *testing.T) {
			path := filepath.Join(dir, b.name)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o111 == 0 {
				t.Errorf("not executable: %v", st.Mode())
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != b.machine || f.Class != b.class || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX || f.Type != elf.ET_EXEC {
				t.Errorf("%v %v %v %v, want %v %v, a Linux executable", f.Machine, f.Class, f.OSABI, f.Type, b.machine, b.class)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has a %v program header: not statically linked", p.Type)
				}
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("needs shared libraries %v (%v)", libs, err)
			}
			t.Logf("%s: %.1f MB", b.name, float64(st.Size())/1e6)
		})
	}
}

// qemu runs an ARM binary under qemu-user with the given CPU.
func qemu(qemuProg, cpu, bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(qemuProg, append([]string{"-cpu", cpu, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func TestDistAgentQEMU(t *testing.T) {
	need(t, "qemu-aarch64-static", "qemu-arm-static")
	dir := dist(t)
	c := startCollector(t, dir)
	dnsAddr := startDNSServer(t, "hub.test.", net.IPv4(192, 0, 2, 7))

	for _, a := range armAgents {
		t.Run(a.target, func(t *testing.T) {
			bin := filepath.Join(dir, "hubmon-agent-linux-"+a.target)
			run := func(env []string, args ...string) (string, int) {
				t.Helper()
				out, err := qemu(a.qemu, a.cpu, bin, env, args...).CombinedOutput()
				code := 0
				if err != nil {
					ee, ok := err.(*exec.ExitError)
					if !ok {
						t.Fatalf("%s %v: %v", a.qemu, args, err)
					}
					code = ee.ExitCode()
				}
				return string(out), code
			}

			out, code := run(nil, "version")
			if want := fmt.Sprintf("hubmon-agent %s (revision %s, ", testVersion, testRevision); code != 0 || !strings.HasPrefix(out, want) ||
				!strings.HasSuffix(out, ", linux/"+a.goarch+")\n") {
				t.Fatalf("version: exit %d, %q; want %q...linux/%s", code, out, want, a.goarch)
			}

			// the dev config, and the packaged one with an enrolment's variables
			out, code = run([]string{"HUBMON_MQTT_PASSWORD=pw"}, "run", "-config", "../deploy/dev/agent.yaml", "-check-config")
			if code != 0 || !strings.Contains(out, "configuration is valid (site dev-hub, 5 probes)") {
				t.Errorf("-check-config of deploy/dev/agent.yaml: exit %d\n%s", code, out)
			}
			out, code = run(enrolment, "run", "-config", "nfpm/etc/agent.yaml", "-check-config")
			if code != 0 || !strings.Contains(out, "configuration is valid (site qemu-hub, 4 probes)") {
				t.Errorf("-check-config of deploy/nfpm/etc/agent.yaml: exit %d\n%s", code, out)
			}

			// a broken config: every problem, with the line, field and value
			broken := filepath.Join(t.TempDir(), "broken.yaml")
			writeFile(t, broken, "site: Leeds_Library\ndata_dir: state\nbroker: {url: \"tcp://127.0.0.1:1883\", password: pw}\nprobes:\n  - {name: internet, kind: speedtest, interval: 1s}\n")
			out, code = run(nil, "run", "-config", broken, "-check-config")
			for _, want := range []string{
				broken + `:1: site: must be lower-case letters, digits and inner hyphens, at most 63 characters (got "Leeds_Library")`,
				broken + ":5: probes[0].interval: must be at least 1m0s (got 1s)",
			} {
				if code != 1 || !strings.Contains(out, want) {
					t.Errorf("-check-config of a broken config: exit %d, want 1 and %q in:\n%s", code, want, out)
				}
			}

			// measure and publish, to the x86 collector
			site := "qemu-" + a.target
			agentConf := filepath.Join(t.TempDir(), "agent.yaml")
			writeFile(t, agentConf, fmt.Sprintf(`site: %s
data_dir: %s
broker:
  url: %s
  password: ${HUBMON_MQTT_PASSWORD}
  ack_timeout: 5s
  status_interval: 10s
  connect_timeout: 5s
probes:
  - name: local
    kind: speedtest
    interval: 1h
    splay: 0s
    first_run: 0s
    timeout: 2m
    speedtest: {server_url: "%s", duration: 2s, connections: 1}
  - name: dns
    kind: dns
    interval: 1h
    splay: 0s
    first_run: 0s
    dns: {names: [hub.test], resolvers: ["%s"]}
`, site, filepath.Join(filepath.Dir(agentConf), "state"), c.brokerURL, c.speedURL, dnsAddr))
			t0 := time.Now()
			agent := start(t, "agent-"+a.target, []string{"HUBMON_MQTT_PASSWORD=" + c.password}, a.qemu, "-cpu", a.cpu, bin, "run", "-config", agentConf)
			lbl := func(kv ...string) map[string]string {
				m := map[string]string{"site": site}
				for i := 0; i < len(kv); i += 2 {
					m[kv[i]] = kv[i+1]
				}
				return m
			}
			waitFor(t, "the ARM agent's measurements on the collector's /metrics", 3*time.Minute, func() bool {
				if !agent.running() {
					t.Fatalf("agent exited: %v\n%s", agent.err, agent.output())
				}
				mfs := scrape(c.url("/metrics"))
				_, st := sample(mfs, "hubmon_speedtest_success", lbl("probe", "local"))
				_, dns := sample(mfs, "hubmon_dns_success", lbl("probe", "dns"))
				_, info := sample(mfs, "hubmon_agent_info", lbl("version", testVersion, "arch", a.goarch))
				return st && dns && info
			})
			mfs := scrape(c.url("/metrics"))
			if v, _ := sample(mfs, "hubmon_speedtest_success", lbl("probe", "local")); v != 1 {
				t.Errorf("the speed test failed (hubmon_speedtest_success %v)", v)
			}
			if v, _ := sample(mfs, "hubmon_speedtest_download_bytes_per_second", lbl("probe", "local")); v <= 0 {
				t.Errorf("download %v B/s", v)
			}
			// resolved by Go's own resolver (netgo), through the test's server
			if v, _ := sample(mfs, "hubmon_dns_success", lbl("probe", "dns", "resolver", dnsAddr)); v != 1 {
				t.Errorf("the DNS lookup failed (hubmon_dns_success %v)", v)
			}
			t.Logf("%s: first measurements stored %s after start", a.target, time.Since(t0).Round(100*time.Millisecond))
			agent.stop(30 * time.Second)
		})
	}
	c.stop(15 * time.Second)
}

// TestDistCollectorARM64 starts the arm64 collector under qemu: it opens its
// SQLite history, starts its broker and answers /-/ready.
func TestDistCollectorARM64(t *testing.T) {
	need(t, "qemu-aarch64-static")
	dir := dist(t)
	tmp := t.TempDir()
	httpPort, brokerPort := freePort(t), freePort(t)
	writeFile(t, filepath.Join(tmp, "passwd"), "")
	conf := filepath.Join(tmp, "collector.yaml")
	writeFile(t, conf, fmt.Sprintf("database: %s\nhttp: {listen: \"127.0.0.1:%d\"}\nembedded_broker: {listen: \"127.0.0.1:%d\", password_file: %s}\n",
		filepath.Join(tmp, "hubmon.db"), httpPort, brokerPort, filepath.Join(tmp, "passwd")))
	p := start(t, "collector-arm64", nil, "qemu-aarch64-static", "-cpu", "cortex-a53", filepath.Join(dir, "hubmon-collector-linux-arm64"), "run", "-config", conf)
	ready := fmt.Sprintf("http://127.0.0.1:%d/-/ready", httpPort)
	waitFor(t, "the arm64 collector to be ready", time.Minute, func() bool {
		if !p.running() {
			t.Fatalf("collector exited: %v\n%s", p.err, p.output())
		}
		resp, err := httpClient.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if mfs := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)); mfs["hubmon_build_info"] == nil {
		t.Error("no hubmon_build_info on /metrics")
	}
	p.stop(15 * time.Second)
	if _, err := os.Stat(filepath.Join(tmp, "hubmon.db")); err != nil {
		t.Errorf("no history database: %v", err)
	}
}

// enrolment is what /etc/hubmon/agent.env sets for the packaged agent.yaml.
var enrolment = []string{
	"HUBMON_SITE=qemu-hub",
	"HUBMON_BROKER_URL=tcp://127.0.0.1:1883",
	"HUBMON_MQTT_PASSWORD=pw",
	"HUBMON_ECHO_TARGET=127.0.0.1:9471",
}

// collector is the x86 collector (the static amd64 build) with its embedded
// broker and speed-test server, and one password for every site.
type collector struct {
	*proc
	httpPort  int
	brokerURL string
	speedURL  string
	password  string
	conf      string // its config file
}

func (c *collector) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.httpPort, path)
}

func startCollector(tb testing.TB, dir string) *collector {
	tb.Helper()
	bin := filepath.Join(dir, "hubmon-collector-linux-amd64")
	tmp := tb.TempDir()
	c := &collector{httpPort: freePort(tb), password: "qemu-secret"}
	brokerPort, speedPort := freePort(tb), freePort(tb)
	c.brokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", brokerPort)
	c.speedURL = fmt.Sprintf("http://127.0.0.1:%d", speedPort)
	passwd := filepath.Join(tmp, "passwd")
	for _, a := range armAgents {
		cmd := exec.Command(bin, "passwd", "-file", passwd, "qemu-"+a.target)
		cmd.Stdin = strings.NewReader(c.password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("hubmon-collector passwd: %v\n%s", err, out)
		}
	}
	c.conf = filepath.Join(tmp, "collector.yaml")
	writeFile(tb, c.conf, fmt.Sprintf(`database: %s
http: {listen: "127.0.0.1:%d"}
embedded_broker: {listen: "127.0.0.1:%d", password_file: %s}
speedtest_server: {enabled: true, listen: "127.0.0.1:%d"}
`, filepath.Join(tmp, "hubmon.db"), c.httpPort, brokerPort, passwd, speedPort))
	c.proc = start(tb, "collector", nil, bin, "run", "-config", c.conf)
	waitFor(tb, "the collector to be ready", 30*time.Second, func() bool {
		if !c.running() {
			tb.Fatalf("collector exited: %v\n%s", c.err, c.output())
		}
		resp, err := httpClient.Get(c.url("/-/ready"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return c
}

// startDNSServer answers A queries for name with ip (and nothing else, for
// other types) on a UDP port of 127.0.0.1, and returns its address.
func startDNSServer(tb testing.TB, name string, ip net.IP) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if reply := dnsAnswer(buf[:n], name, ip); reply != nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	})
	tb.Cleanup(func() {
		_ = pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

func dnsAnswer(req []byte, name string, ip net.IP) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	known := strings.EqualFold(q.Name.String(), name)
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if known && q.Type == dnsmessage.TypeA {
		var a dnsmessage.AResource
		copy(a.A[:], ip.To4())
		if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, a) != nil {
			return nil
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}
