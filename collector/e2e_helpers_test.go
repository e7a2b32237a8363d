package main_test

// Helpers for the end-to-end tests: they build and run the real binaries, a
// real Mosquitto and read the real SQLite files. Everything listens on
// 127.0.0.1 and random ports.

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds hubmon-agent and hubmon-collector once per test run.
func binaries(tb testing.TB) (agent, collector string) {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "hubmon-e2e-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"agent", "collector"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "hubmon-"+pkg), "../"+pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(binDir, "hubmon-agent"), filepath.Join(binDir, "hubmon-collector")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeTCPUDPPort finds a port free for both TCP and UDP (the speed-test
// server listens on both).
func freeTCPUDPPort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		p := freePort(tb)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			pc.Close()
			return p
		}
	}
	tb.Fatal("no free TCP+UDP port")
	return 0
}

// proc is a running binary whose output goes to a log file, shown when the
// test fails.
type proc struct {
	tb   testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(tb testing.TB, name string, env []string, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{tb: tb, name: name, log: filepath.Join(tb.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() {
			b, _ := os.ReadFile(p.log)
			tb.Logf("---- %s log ----\n%s", name, tail(string(b), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and waits up to d; it fails the test if the process
// does not exit cleanly in time.
func (p *proc) stop(d time.Duration) time.Duration {
	p.tb.Helper()
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.kill()
		p.tb.Fatalf("%s did not stop within %s of SIGTERM", p.name, d)
	}
	if p.err != nil {
		p.tb.Fatalf("%s exited with %v after SIGTERM", p.name, p.err)
	}
	return time.Since(t0)
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func get(url string) (int, []byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// scrape reads /metrics into families.
func scrape(tb testing.TB, url string) (map[string]*dto.MetricFamily, []byte) {
	tb.Helper()
	code, body, err := get(url)
	if err != nil || code != 200 {
		tb.Fatalf("GET %s: %d %v", url, code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return mfs, body
}

// scrapeAll reads both of the collector's expositions, /metrics and
// /metrics/gaps (no family is on both), into families, and checks each with
// promtool.
func scrapeAll(tb testing.TB, base string) map[string]*dto.MetricFamily {
	tb.Helper()
	all := map[string]*dto.MetricFamily{}
	for _, path := range []string{"/metrics", "/metrics/gaps"} {
		mfs, _ := scrape(tb, base+path)
		for name, mf := range mfs {
			if all[name] != nil {
				tb.Fatalf("%s is on /metrics and on /metrics/gaps", name)
			}
			all[name] = mf
		}
	}
	return all
}

// sample returns the value of the series of family name whose labels include
// want, and whether it exists.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func promtoolCheck(tb testing.TB, body []byte) {
	tb.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		tb.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		tb.Fatalf("promtool check metrics on the collector's /metrics: %v\n%s", err, out)
	}
}

// history reads the collector's SQLite history.
type historyRow struct {
	messageID, site, probe string
	seq                    int64
	success                bool
	download, upload       sql.NullFloat64
}

func history(tb testing.TB, path string) []historyRow {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT message_id, site, probe, seq, success, download_bits_per_second, upload_bits_per_second FROM measurements ORDER BY site, seq`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil
		}
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []historyRow
	for rows.Next() {
		var r historyRow
		if err := rows.Scan(&r.messageID, &r.site, &r.probe, &r.seq, &r.success, &r.download, &r.upload); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// outboxBacklog counts what waits in an agent's outbox.
func outboxBacklog(tb testing.TB, path string) int {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return -1
	}
	return n
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// addUser runs `hubmon-collector passwd`.
func addUser(tb testing.TB, collector, file, user, password string) {
	tb.Helper()
	cmd := exec.Command(collector, "passwd", "-file", file, user)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("hubmon-collector passwd: %v\n%s", err, out)
	}
}

// mosquitto runs the real broker with per-site credentials and ACLs as in
// production: sites write only their own topics, the collector reads all;
// the collector on a plain localhost listener, the hubs over TLS.
type mosquitto struct {
	*proc
	port    int // plain, for the collector
	tlsPort int // for the agents
	conf    string
	acl     string // a copy of the shipped ACL, and any extra lines
	pidFile string
	certs   *brokerCerts
	bin     string
}

// debianMain is Debian's /etc/mosquitto/mosquitto.conf, which includes the
// shipped file from conf.d, with this test's paths.
const debianMain = `pid_file %[1]s/mosquitto.pid
persistence true
persistence_location %[1]s/
log_dest stderr
include_dir %[1]s/conf.d
`

func startMosquitto(tb testing.TB, passwdFile string) *mosquitto {
	tb.Helper()
	return startMosquittoACL(tb, passwdFile, "")
}

// startMosquittoACL is startMosquitto with extraACL appended to a copy of
// the shipped ACL (say, a second collector's account).
func startMosquittoACL(tb testing.TB, passwdFile, extraACL string) *mosquitto {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		tb.Fatal("mosquitto not found: install Debian's mosquitto package (.ci/run does)")
	}
	dir := tb.TempDir()
	m := &mosquitto{port: freePort(tb), tlsPort: freePort(tb), conf: filepath.Join(dir, "mosquitto.conf"), bin: bin,
		acl: filepath.Join(dir, "hubmon.acl"), pidFile: filepath.Join(dir, "mosquitto.pid")}
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o700); err != nil {
		tb.Fatal(err)
	}
	m.certs = writeBrokerCerts(tb, filepath.Join(dir, "certs"))
	acl, err := os.ReadFile("../deploy/mosquitto/hubmon.acl")
	if err != nil {
		tb.Fatal(err)
	}
	if extraACL != "" {
		acl = append(append(acl, '\n'), extraACL...)
	}
	writeFile(tb, m.acl, string(acl))
	// the shipped configuration, with this test's ports and paths
	conf, err := os.ReadFile("../deploy/mosquitto/hubmon.conf")
	if err != nil {
		tb.Fatal(err)
	}
	// as root, Mosquitto switches to the user named in "user" (default
	// "mosquitto"), which could not read the test's private files
	me, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	text := strings.NewReplacer(
		"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", m.port),
		"listener 8883\n", fmt.Sprintf("listener %d 127.0.0.1\n", m.tlsPort),
		"/etc/mosquitto/hubmon.passwd", passwdFile,
		"/etc/mosquitto/hubmon.acl", m.acl,
		"/etc/mosquitto/certs/", m.certs.dir+"/",
		"autosave_interval 10", "autosave_interval 1",
	).Replace(string(conf))
	for _, want := range []string{passwdFile, m.acl, m.certs.dir + "/hubmon-server-chain.pem", m.certs.dir + "/hubmon-server.key",
		fmt.Sprintf("listener %d ", m.port), fmt.Sprintf("listener %d ", m.tlsPort)} {
		if !strings.Contains(text, want) {
			tb.Fatalf("deploy/mosquitto/hubmon.conf changed: could not set %q", want)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o700); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "conf.d", "hubmon.conf"), text)
	writeFile(tb, m.conf, fmt.Sprintf("user %s\n", me.Username)+fmt.Sprintf(debianMain, dir)+"log_type error\nlog_type warning\nlog_type notice\n")
	m.start(tb)
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

func (m *mosquitto) start(tb testing.TB) {
	tb.Helper()
	m.proc = start(tb, "mosquitto", nil, m.bin, "-c", m.conf)
	for _, port := range []int{m.port, m.tlsPort} {
		waitFor(tb, "mosquitto to listen", 10*time.Second, func() bool {
			if !m.running() {
				tb.Fatalf("mosquitto exited: %v\n%s", m.err, m.output())
			}
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}

// must drops the second result: must(scrape(t, url)) is the families.
func must[T, U any](v T, _ U) T { return v }
