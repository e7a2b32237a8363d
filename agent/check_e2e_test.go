package main

// End-to-end tests of hubmon-agent check: the real hubmon-collector binary
// (its embedded broker and speed-test server), a real Mosquitto with the
// shipped configuration, and the real agent binary as the running service.
// Everything listens on 127.0.0.1, on random ports.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/outbox"
)

var (
	e2eBuild  sync.Once
	e2eBinDir string
	e2eErr    error
)

// e2eBinaries builds hubmon-agent and hubmon-collector once per test run.
func e2eBinaries(tb testing.TB) (agent, collector string) {
	tb.Helper()
	e2eBuild.Do(func() {
		if e2eBinDir, e2eErr = os.MkdirTemp("", "hubmon-check-bin-"); e2eErr != nil {
			return
		}
		for name, pkg := range map[string]string{"hubmon-agent": ".", "hubmon-collector": "../collector"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(e2eBinDir, name), pkg).CombinedOutput()
			if err != nil {
				e2eErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if e2eErr != nil {
		tb.Fatal(e2eErr)
	}
	return filepath.Join(e2eBinDir, "hubmon-agent"), filepath.Join(e2eBinDir, "hubmon-collector")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBinDir != "" {
		os.RemoveAll(e2eBinDir)
	}
	os.Exit(code)
}

func freeE2EPort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// the speed-test server takes UDP on its port too
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			pc.Close()
			return port
		}
	}
	tb.Fatal("no free port")
	return 0
}

// e2eProc is a running binary; its output is shown when the test fails.
type e2eProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startE2E(tb testing.TB, name string, env []string, bin string, args ...string) *e2eProc {
	tb.Helper()
	p := &e2eProc{cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if tb.Failed() {
			tb.Logf("---- %s output ----\n%s", name, p.out.String())
		}
	})
	return p
}

func waitUntil(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addSiteUser adds a user to a Mosquitto-format password file with
// `hubmon-collector passwd`.
func addSiteUser(tb testing.TB, collector, file, name, password string) {
	tb.Helper()
	cmd := exec.Command(collector, "passwd", "-file", file, name)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("hubmon-collector passwd: %v\n%s", err, out)
	}
}

// e2eCollector is a running hubmon-collector.
type e2eCollector struct {
	brokerURL, speedURL, db string
}

// startCollector runs the collector with its speed-test server and either
// its embedded broker (mqttURL "") or the collector account on mqttURL.
func startCollector(tb testing.TB, dir, passwd, mqttURL string) e2eCollector {
	tb.Helper()
	_, bin := e2eBinaries(tb)
	httpPort, speedPort := freeE2EPort(tb), freeE2EPort(tb)
	c := e2eCollector{speedURL: fmt.Sprintf("http://127.0.0.1:%d", speedPort), db: filepath.Join(dir, "hubmon.db")}
	conf := fmt.Sprintf("database: %s\nhttp:\n  listen: \"127.0.0.1:%d\"\nspeedtest_server:\n  enabled: true\n  listen: \"127.0.0.1:%d\"\n",
		c.db, httpPort, speedPort)
	if mqttURL == "" {
		brokerPort := freeE2EPort(tb)
		c.brokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", brokerPort)
		conf += fmt.Sprintf("embedded_broker:\n  listen: \"127.0.0.1:%d\"\n  password_file: %s\n", brokerPort, passwd)
	} else {
		c.brokerURL = mqttURL
		conf += fmt.Sprintf("mqtt:\n  url: %s\n  client_id: hubmon-collector\n  username: hubmon-collector\n  password: collector-secret\n", mqttURL)
	}
	path := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	p := startE2E(tb, "collector", nil, bin, "run", "-config", path)
	client := &http.Client{Timeout: 2 * time.Second}
	waitUntil(tb, "the collector to be ready", 20*time.Second, func() bool {
		select {
		case <-p.done:
			tb.Fatalf("the collector exited:\n%s", p.out.String())
		default:
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", httpPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return c
}

// storedProbes lists the probe names of the measurements in the
// collector's history, in order.
func storedProbes(tb testing.TB, db string) []string {
	tb.Helper()
	h, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	rows, err := h.Query(`SELECT probe FROM measurements ORDER BY rowid`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		rows.Scan(&p)
		out = append(out, p)
	}
	return out
}

// startMosquitto runs Mosquitto from the shipped configuration
// (deploy/mosquitto), with this test's port, password file and paths.
func startMosquitto(tb testing.TB, dir, passwd string) string {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		tb.Fatal("mosquitto not found: install Debian's mosquitto package (.ci/run does)")
	}
	conf, err := os.ReadFile("../deploy/mosquitto/hubmon.conf")
	if err != nil {
		tb.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	acl, _ := filepath.Abs("../deploy/mosquitto/hubmon.acl")
	port := freeE2EPort(tb)
	text := strings.NewReplacer(
		"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1\nuser %s", port, me.Username),
		"/etc/mosquitto/hubmon.passwd", passwd,
		"/etc/mosquitto/hubmon.acl", acl,
		"/var/lib/mosquitto/", dir+"/",
	).Replace(string(conf))
	// the hubs' TLS listener needs the council's certificates; this test is
	// about passwords on the plain one (collector/enrol_e2e_test.go runs the
	// whole file with a generated CA)
	tlsListener := strings.Index(text, "\n# MQTT over TLS for the hubs")
	if tlsListener < 0 {
		tb.Fatal("deploy/mosquitto/hubmon.conf changed: no TLS listener section to leave out")
	}
	// Debian's main config, which sets where the broker saves, is not used here
	text = text[:tlsListener+1] + "persistence_location " + dir + "/\n"
	for _, want := range []string{passwd, acl, fmt.Sprint(port)} {
		if !strings.Contains(text, want) {
			tb.Fatalf("deploy/mosquitto/hubmon.conf changed: could not set %q", want)
		}
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	startE2E(tb, "mosquitto", nil, bin, "-c", path)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitUntil(tb, "mosquitto to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "tcp://" + addr
}

// runCheckText runs the check as a person would see it in a log (not a
// terminal) and returns the exit code and the output.
func runCheckText(tb testing.TB, env checkEnv, configPath string, skipSpeed bool) (int, string) {
	tb.Helper()
	var out bytes.Buffer
	env.display = checkDisplay{}
	code := runCheck(context.Background(), env, configPath, skipSpeed, &out)
	return code, out.String()
}

// TestCheckAgainstCollector: against the real collector (embedded broker,
// built-in speed-test server), every step passes; the speed test is stored
// as probe "check"; with -skip-speedtest the name lookup is sent instead;
// and a running agent service is left alone: check sends through it.
func TestCheckAgainstCollector(t *testing.T) {
	agentBin, collectorBin := e2eBinaries(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	addSiteUser(t, collectorBin, passwd, "hub-1", testPassword)
	col := startCollector(t, dir, passwd, "")

	t.Run("whole pass", func(t *testing.T) {
		hub := t.TempDir()
		path := writeCheckConfig(t, hub, col.brokerURL, col.speedURL, "")
		code, out := runCheckText(t, testCheckEnv(), path, false)
		if code != 0 {
			t.Errorf("exit code %d:\n%s", code, out)
		}
		golden(t, "check-pass.golden", normalise(out, hub))
		if got := storedProbes(t, col.db); len(got) != 1 || got[0] != checkProbe {
			t.Errorf("history holds %v, want the check's speed test", got)
		}
		ob, err := outbox.Open(filepath.Join(hub, "state", "outbox.db"), "hub-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		defer ob.Close()
		if st, _ := ob.Stats(context.Background()); st.Backlog != 0 {
			t.Errorf("the outbox holds %d entries after the ack", st.Backlog)
		}
	})

	t.Run("skip speed test, JSON", func(t *testing.T) {
		hub := t.TempDir()
		path := writeCheckConfig(t, hub, col.brokerURL, col.speedURL, "")
		code, _, steps := runCheckTest(t, testCheckEnv(), path, true)
		if code != 0 {
			t.Errorf("exit code %d: %+v", code, steps)
		}
		wantStep(t, steps, "speedtest", checkSkip, "Left out (-skip-speedtest)")
		wantStep(t, steps, "tls", checkSkip, "without encryption")
		wantStep(t, steps, "collector", checkPass, `the name lookup of step 4, probe "check-dns", sent by this check`)
		got := storedProbes(t, col.db)
		if len(got) != 2 || got[1] != checkDNSProbe {
			t.Errorf("history holds %v, want the check's name lookup last", got)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		env := testCheckEnv()
		env.getenv = func(k string) string { return map[string]string{"HUBMON_MQTT_PASSWORD": "not-the-password"}[k] }
		_, _, steps := runCheckTest(t, env, writeCheckConfig(t, t.TempDir(), col.brokerURL, col.speedURL, ""), true)
		wantStep(t, steps, "login", checkFail, "The broker refused the password")
		wantStep(t, steps, "login", checkFail, "Ask your council contact for a new enrolment code.")
		wantStep(t, steps, "collector", checkSkip, "Skipped: needs the login")
	})

	t.Run("service running", func(t *testing.T) {
		hub := t.TempDir()
		path := writeCheckConfig(t, hub, col.brokerURL, col.speedURL, "  status_interval: 10s\n")
		// the service's own speed test must not run during the test
		text, _ := os.ReadFile(path)
		os.WriteFile(path, bytes.Replace(text, []byte("interval: 1h,"), []byte("interval: 1h, first_run: 1h, splay: 0s,"), 1), 0o600)
		svc := startE2E(t, "agent", []string{"HUBMON_MQTT_PASSWORD=" + testPassword}, agentBin, "run", "-config", path)
		waitUntil(t, "the agent service to connect", 20*time.Second, func() bool {
			return strings.Contains(svc.out.String(), "connected to broker")
		})
		before := strings.Count(svc.out.String(), "connected to broker")
		code, out := runCheckText(t, testCheckEnv(), path, true)
		if code != 0 {
			t.Errorf("exit code %d:\n%s", code, out)
		}
		out = normalise(out, hub)
		for _, want := range []string{
			"the hubmon service is running on this Pi",
			"Not tried on its own: the hubmon service is logged in as this hub",
			`probe "check-dns", sent by the hubmon service`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// the service kept its one session: nobody logged in as it
		if log := svc.out.String(); strings.Count(log, "connected to broker") != before || strings.Contains(log, "session ended") {
			t.Errorf("the service was disturbed:\n%s", log)
		}
	})
}

// TestCheckBrokerUnreachable: nothing listens where the broker and the
// speed-test server should be.
func TestCheckBrokerUnreachable(t *testing.T) {
	hub := t.TempDir()
	path := writeCheckConfig(t, hub, "tcp://"+closedAddr(t), "http://"+closedAddr(t), "")
	code, out := runCheckText(t, testCheckEnv(), path, false)
	if code != 1 {
		t.Errorf("exit code %d", code)
	}
	golden(t, "check-broker-unreachable.golden", normalise(out, hub))
}

// TestCheckMosquitto: against a real Mosquitto with the shipped
// configuration, a wrong password is refused in plain words; with the right
// one the login passes, and until a collector reads the site's messages the
// test result is not confirmed; then it is.
func TestCheckMosquitto(t *testing.T) {
	_, collectorBin := e2eBinaries(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	addSiteUser(t, collectorBin, passwd, "hub-1", testPassword)
	addSiteUser(t, collectorBin, passwd, "hubmon-collector", "collector-secret")
	mq := startMosquitto(t, dir, passwd)

	hub := t.TempDir()
	path := writeCheckConfig(t, hub, mq, "", "")
	env := testCheckEnv()
	env.getenv = func(k string) string { return map[string]string{"HUBMON_MQTT_PASSWORD": "not-the-password"}[k] }
	code, out := runCheckText(t, env, path, true)
	if code != 1 {
		t.Errorf("exit code %d", code)
	}
	golden(t, "check-wrong-password.golden", normalise(out, hub))

	env = testCheckEnv()
	env.ackWait = 2 * time.Second
	_, _, steps := runCheckTest(t, env, path, true)
	wantStep(t, steps, "login", checkPass, "accepted this hub's password")
	wantStep(t, steps, "collector", checkFail, "the collector did not confirm it within 2s")
	wantStep(t, steps, "collector", checkFail, `hub "hub-1" is not getting through`)

	col := startCollector(t, dir, passwd, mq)
	code, _, steps = runCheckTest(t, testCheckEnv(), path, true)
	if code != 0 {
		t.Errorf("exit code %d", code)
	}
	// the result left waiting by the run before went too
	wantStep(t, steps, "collector", checkPass, "stored this hub's test result")
	if got := storedProbes(t, col.db); len(got) != 2 || got[0] != checkDNSProbe || got[1] != checkDNSProbe {
		t.Errorf("history holds %v, want both runs' name lookups", got)
	}
}

// TestCheckJSONShape: -json prints one object with every step.
func TestCheckJSONShape(t *testing.T) {
	var out bytes.Buffer
	code := runCheck(context.Background(), checkEnv{display: checkDisplay{json: true}, getenv: func(string) string { return "" },
		interfaces: func() ([]checkInterface, error) { return nil, nil }, clockSynced: func() (bool, bool) { return false, false },
		now: time.Now}, filepath.Join(t.TempDir(), "none.yaml"), false, &out)
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != 1 {
		t.Fatalf("code %d, %v:\n%s", code, err, out.String())
	}
	steps, _ := rep["steps"].([]any)
	if len(steps) != 11 || rep["passed"] != false || rep["config"] == nil {
		t.Errorf("report %v", rep)
	}
	first, _ := steps[0].(map[string]any)
	for _, k := range []string{"step", "id", "title", "status", "summary", "advice", "detail", "duration_seconds"} {
		if _, ok := first[k]; !ok {
			t.Errorf("step 1 lacks %q: %v", k, first)
		}
	}
}
