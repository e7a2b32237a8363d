package main_test

// End-to-end tests: the real hubmon-agent measures against the real
// collector's built-in speed-test server and publishes over MQTT (the
// embedded broker, or a real Mosquitto with production-like ACLs) to the real
// hubmon-collector, which stores the measurement once and exposes it on
// /metrics. Only 127.0.0.1 is used.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	site          = "e2e-hub"
	agentPassword = "agent-secret-e2e"
)

type system struct {
	tb            testing.TB
	dir           string
	agentBin      string
	collectorBin  string
	httpPort      int
	brokerURL     string
	speedURL      string
	db            string
	outbox        string
	collectorConf string
	agentConf     string
	collector     *proc
	agent         *proc
	mq            *mosquitto
}

// newSystem writes configs for a collector (embedded broker unless mq) and
// one agent.
func newSystem(tb testing.TB, withMosquitto bool) *system {
	tb.Helper()
	agentBin, collectorBin := binaries(tb)
	s := &system{tb: tb, dir: tb.TempDir(), agentBin: agentBin, collectorBin: collectorBin, httpPort: freePort(tb)}
	speedPort := freeTCPUDPPort(tb)
	s.speedURL = fmt.Sprintf("http://127.0.0.1:%d", speedPort)
	s.db = filepath.Join(s.dir, "hubmon.db")
	s.outbox = filepath.Join(s.dir, "agent", "outbox.db")
	passwd := filepath.Join(s.dir, "passwd")
	addUser(tb, collectorBin, passwd, site, agentPassword)

	collectorConf := fmt.Sprintf(`database: %s
http:
  listen: "127.0.0.1:%d"
speedtest_server:
  enabled: true
  listen: "127.0.0.1:%d"
`, s.db, s.httpPort, speedPort)
	if withMosquitto {
		addUser(tb, collectorBin, passwd, "hubmon-collector", "collector-secret")
		s.mq = startMosquitto(tb, passwd)
		s.brokerURL = s.mq.url()
		collectorConf += fmt.Sprintf(`mqtt:
  url: %s
  client_id: hubmon-collector
  username: hubmon-collector
  password: ${COLLECTOR_PASSWORD}
`, s.brokerURL)
	} else {
		brokerPort := freePort(tb)
		s.brokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", brokerPort)
		collectorConf += fmt.Sprintf(`embedded_broker:
  listen: "127.0.0.1:%d"
  password_file: %s
`, brokerPort, passwd)
	}
	s.collectorConf = filepath.Join(s.dir, "collector.yaml")
	writeFile(tb, s.collectorConf, collectorConf)
	s.agentConf = filepath.Join(s.dir, "agent.yaml")
	writeFile(tb, s.agentConf, fmt.Sprintf(`site: %s
data_dir: %s
broker:
  url: %s
  password: ${HUBMON_MQTT_PASSWORD}
  ack_timeout: 5s
  status_interval: 10s
  connect_timeout: 3s
probes:
  - name: local
    kind: speedtest
    interval: 1m
    splay: 0s
    first_run: 0s
    timeout: 1m
    speedtest:
      server_url: %s
      duration: 2s
      connections: 2
`, site, filepath.Join(s.dir, "agent"), s.brokerURL, s.speedURL))
	return s
}

func (s *system) startCollector() {
	s.tb.Helper()
	s.collector = start(s.tb, "collector", []string{"COLLECTOR_PASSWORD=collector-secret"}, s.collectorBin, "run", "-config", s.collectorConf)
	waitFor(s.tb, "collector ready", 15*time.Second, func() bool {
		if !s.collector.running() {
			s.tb.Fatalf("collector exited: %v\n%s", s.collector.err, s.collector.output())
		}
		code, _, err := get(s.metricsURL("/-/ready"))
		return err == nil && code == 200
	})
}

func (s *system) startAgent() {
	s.tb.Helper()
	s.agent = start(s.tb, "agent", []string{"HUBMON_MQTT_PASSWORD=" + agentPassword}, s.agentBin, "run", "-config", s.agentConf)
}

func (s *system) metricsURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path)
}

// checkDelivered waits until the agent's first speed test is on /metrics,
// then checks the values, the history and the outbox.
func (s *system) checkDelivered() {
	t := s.tb
	t.Helper()
	lbl := map[string]string{"site": site, "probe": "local"}
	waitFor(t, "the speed test on /metrics", 60*time.Second, func() bool {
		mfs, _ := scrape(t, s.metricsURL("/metrics"))
		_, ok := sample(mfs, "hubmon_speedtest_success", lbl)
		return ok
	})
	mfs, body := scrape(t, s.metricsURL("/metrics"))
	if v, _ := sample(mfs, "hubmon_speedtest_success", lbl); v != 1 {
		t.Fatalf("speed test against the built-in server failed:\n%s", grep(body, "hubmon_speedtest"))
	}
	for _, name := range []string{"hubmon_speedtest_download_bytes_per_second", "hubmon_speedtest_upload_bytes_per_second", "hubmon_speedtest_latency_seconds"} {
		if v, ok := sample(mfs, name, lbl); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", name, v, ok)
		}
	}
	at, _ := sample(mfs, "hubmon_speedtest_last_success_timestamp_seconds", lbl)
	if age := time.Since(time.Unix(int64(at), 0)); age < 0 || age > 2*time.Minute {
		t.Errorf("last success timestamp %v is %s old", at, age)
	}
	for _, name := range []string{"hubmon_build_info", "hubmon_collector_store_size_bytes"} {
		if _, ok := sample(mfs, name, nil); !ok {
			t.Errorf("%s missing", name)
		}
	}
	if v, _ := sample(mfs, "hubmon_collector_messages_total", map[string]string{"kind": "measurement", "result": "stored"}); v < 1 {
		t.Errorf("stored counter %v", v)
	}
	promtoolCheck(t, body)

	// the history holds it once, with the same figure as /metrics
	rows := history(t, s.db)
	if len(rows) != 1 {
		t.Fatalf("history has %d rows, want exactly 1: %+v", len(rows), rows)
	}
	r := rows[0]
	dl, _ := sample(mfs, "hubmon_speedtest_download_bytes_per_second", lbl)
	if r.site != site || r.seq != 1 || !r.success || !r.download.Valid || r.download.Float64/8 != dl {
		t.Errorf("history row %+v does not match /metrics download %v B/s", r, dl)
	}
	// acknowledged, so the agent deleted it
	waitFor(t, "the agent's outbox to empty", 30*time.Second, func() bool { return outboxBacklog(t, s.outbox) == 0 })
	waitFor(t, "agent online", 30*time.Second, func() bool {
		mfs, _ := scrape(t, s.metricsURL("/metrics"))
		v, ok := sample(mfs, "hubmon_agent_up", map[string]string{"site": site})
		return ok && v == 1
	})
	// the page hub staff open after plugging the box in
	code, page, err := get(s.metricsURL("/hub/" + site))
	if err != nil || code != 200 || !strings.Contains(string(page), `<span class="badge ok">Reporting</span>`) || !strings.Contains(string(page), "Mbit/s") {
		t.Errorf("GET /hub/%s = %d %v:\n%s", site, code, err, page)
	}
}

func grep(body []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkCleanStop stops the agent with SIGTERM, in the middle of its next speed
// test if one is running, and checks that the collector sees it offline.
func (s *system) checkCleanStop() {
	t := s.tb
	t.Helper()
	if d := s.agent.stop(10 * time.Second); d > 5*time.Second {
		t.Errorf("agent took %s to stop after SIGTERM", d)
	}
	waitFor(t, "agent offline on /metrics", 15*time.Second, func() bool {
		mfs, _ := scrape(t, s.metricsURL("/metrics"))
		v, ok := sample(mfs, "hubmon_agent_up", map[string]string{"site": site})
		return ok && v == 0
	})
	s.collector.stop(15 * time.Second)
}

func TestEndToEndEmbeddedBroker(t *testing.T) {
	s := newSystem(t, false)
	s.startCollector()
	s.startAgent()
	s.checkDelivered()
	s.checkBackup()
	s.checkCleanStop()
}

// checkBackup runs `hubmon-collector backup` while the collector runs: the
// copy holds the same history, and a second backup to the same file is
// refused.
func (s *system) checkBackup() {
	t := s.tb
	t.Helper()
	dest := filepath.Join(s.dir, "backup.db")
	out, err := exec.Command(s.collectorBin, "backup", "-config", s.collectorConf, dest).CombinedOutput()
	if err != nil {
		t.Fatalf("hubmon-collector backup: %v\n%s", err, out)
	}
	want, got := history(t, s.db), history(t, dest)
	if len(got) == 0 || len(got) > len(want) || got[0] != want[0] {
		t.Errorf("backup history %+v, collector's %+v", got, want)
	}
	if !strings.Contains(string(out), "integrity checked") {
		t.Errorf("backup said %q", out)
	}
	out, err = exec.Command(s.collectorBin, "backup", "-config", s.collectorConf, dest).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exists") {
		t.Errorf("a backup over an existing file: %v %s", err, out)
	}
}

func TestEndToEndMosquitto(t *testing.T) {
	s := newSystem(t, true)
	s.startCollector()
	s.startAgent()
	s.checkDelivered()
	s.checkCleanStop()
}

// TestSIGTERMDuringSpeedTest stops the agent in the middle of a speed test:
// it must exit cleanly within a few seconds and record no half test.
func TestSIGTERMDuringSpeedTest(t *testing.T) {
	s := newSystem(t, false)
	// a long test, so SIGTERM lands inside it
	writeFile(t, s.agentConf, strings.NewReplacer("duration: 2s", "duration: 30s", "timeout: 1m", "timeout: 2m").Replace(readFile(t, s.agentConf)))
	s.startCollector()
	s.startAgent()
	waitFor(t, "the speed test to start", 20*time.Second, func() bool {
		mfs, _ := scrape(t, s.metricsURL("/metrics"))
		v, _ := sample(mfs, "hubmon_collector_speedtest_server_sent_bytes_total", nil)
		return v > 0
	})
	if d := s.agent.stop(10 * time.Second); d > 5*time.Second {
		t.Errorf("agent took %s to stop during a speed test", d)
	}
	if rows := history(t, s.db); len(rows) != 0 {
		t.Errorf("an interrupted test was recorded: %+v", rows)
	}
}

// TestNothingLostAcrossKills takes measurements while the collector and
// Mosquitto are SIGKILLed and the agent is SIGKILLed and restarted (a power
// cut: it takes a new measurement at each start). Every measurement must end
// in the history exactly once: seq 1..N with no gap and no duplicate.
func TestNothingLostAcrossKills(t *testing.T) {
	s := newSystem(t, true)
	s.startCollector()
	s.startAgent()
	waitFor(t, "measurement 1 stored", 60*time.Second, func() bool { return len(history(t, s.db)) == 1 })

	// The collector crashes (its speed-test server with it, so the next tests
	// fail: a failed test is a measurement too, and must arrive); the agent
	// measures again at each restart after a power cut.
	s.collector.kill()
	s.agent.kill()
	s.startAgent()
	waitFor(t, "measurement 2 taken", 60*time.Second, func() bool {
		return strings.Contains(s.agent.output(), " seq=") // succeeded or failed, it is a measurement
	})
	// the broker crashes too, with measurement 2 maybe queued for the collector
	s.mq.kill()
	s.agent.kill() // and another power cut while nothing is reachable
	s.startAgent()
	waitFor(t, "measurement 3 taken", 60*time.Second, func() bool {
		return strings.Contains(s.agent.output(), " seq=") // succeeded or failed, it is a measurement
	})
	if n := outboxBacklog(t, s.outbox); n < 2 {
		t.Fatalf("outbox holds %d during the outage, want at least 2", n)
	}
	s.mq.start(t)
	s.startCollector()
	waitFor(t, "all delivered", 90*time.Second, func() bool {
		return len(history(t, s.db)) >= 3 && outboxBacklog(t, s.outbox) == 0
	})
	rows := history(t, s.db)
	seen := map[int64]int{}
	for _, r := range rows {
		seen[r.seq]++
	}
	for seq := int64(1); seq <= int64(len(rows)); seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d stored %d times; history %+v", seq, seen[seq], rows)
		}
	}
	t.Logf("taken %d, stored %d, lost 0, duplicated 0", len(rows), len(rows))
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
