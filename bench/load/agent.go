package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hubmon/hubmon/bench/internal/rig"
)

const agentSite = "bench-hub"

// agent runs the real hubmon-agent against a real collector (its built-in
// speed-test server and echo responder on 127.0.0.1) through the bench
// Mosquitto, as the site's own user under the shipped per-site ACL, and
// samples its memory and CPU from /proc every 100 ms: idle (line quality
// running, before the first speed test) and during one speed test with the
// default settings (4 connections, 10 s per direction after a 2 s warm-up).
func (b *bench) agent(ctx context.Context) error {
	dir := filepath.Join(b.tmp, "agent")
	b.log.Info("agent footprint", "first_speedtest_after_seconds", b.agentFirstRun.Seconds(), "loadavg", loadavg())
	broker, err := rig.StartBroker(rig.BrokerOptions{RepoRoot: b.repo, Dir: filepath.Join(dir, "broker"), Password: password, Sites: []string{agentSite}})
	if err != nil {
		return err
	}
	defer broker.Stop(10 * time.Second)
	speedPort, err := rig.FreePort()
	if err != nil {
		return err
	}
	echoPort, err := rig.FreePort()
	if err != nil {
		return err
	}
	coll, err := rig.StartCollector(rig.CollectorOptions{Bin: filepath.Join(b.bin, "hubmon-collector"), Dir: filepath.Join(dir, "collector"),
		BrokerURL: broker.URL, Password: password, SpeedtestPort: speedPort, EchoPort: echoPort})
	if err != nil {
		return err
	}
	defer coll.Stop(30 * time.Second)

	conf := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`site: %s
data_dir: %s
broker:
  url: %s
  password: ${HUBMON_MQTT_PASSWORD}
probes:
  - name: local
    kind: speedtest
    interval: 1h
    splay: 0s
    first_run: %s
    speedtest:
      server_url: http://127.0.0.1:%d
      duration: %s
  - name: line
    kind: linequality
    linequality:
      udp_target: 127.0.0.1:%d
`, agentSite, filepath.Join(dir, "agent"), broker.URL, b.agentFirstRun, speedPort, b.agentTestTime, echoPort)), 0o600); err != nil {
		return err
	}
	started := time.Now()
	agent, err := rig.Start("hubmon-agent", filepath.Join(dir, "agent.log"), []string{"HUBMON_MQTT_PASSWORD=" + password},
		filepath.Join(b.bin, "hubmon-agent"), "run", "-config", conf)
	if err != nil {
		return err
	}
	defer agent.Stop(15 * time.Second)

	type sample struct {
		at time.Time
		u  rig.Usage
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if u, err := agent.Usage(); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Now(), u})
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	// the speed test is done when the collector has it
	var body []byte
	err = rig.WaitFor("the agent's speed test to reach the collector", b.agentFirstRun+2*time.Minute, func() (bool, error) {
		if !agent.Running() {
			return false, fmt.Errorf("hubmon-agent exited: %v\n%s", agent.Err(), agent.Tail(3000))
		}
		s, err := coll.Scrape()
		if err != nil {
			return false, err
		}
		body = s.Body
		return rig.Sum(body, "hubmon_speedtest_last_success_timestamp_seconds", "site="+agentSite) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, agent.Tail(3000))
	}
	end, err := agent.Usage()
	if err != nil {
		return err
	}
	stop()
	mu.Lock()
	defer mu.Unlock()

	// idle: from 5 s after the start (configuration read, outbox open,
	// connected) to just before the speed test
	idleFrom, testFrom := started.Add(5*time.Second), started.Add(b.agentFirstRun-300*time.Millisecond)
	var idle, test []sample
	for _, s := range samples {
		switch {
		case s.at.After(idleFrom) && s.at.Before(testFrom):
			idle = append(idle, s)
		case !s.at.Before(testFrom):
			test = append(test, s)
		}
	}
	if len(idle) < 2 || len(test) < 2 {
		return fmt.Errorf("too few samples: %d idle, %d during the test", len(idle), len(test))
	}
	var idleRSS, testRSS int64
	for _, s := range idle {
		idleRSS = max(idleRSS, s.u.RSSBytes)
	}
	for _, s := range test {
		testRSS = max(testRSS, s.u.RSSBytes)
	}
	first, last := idle[0], idle[len(idle)-1]
	idleSecs := last.at.Sub(first.at).Seconds()
	idleCPU := last.u.CPUSeconds - first.u.CPUSeconds
	b.emit("agent_idle_rss_bytes", 0, float64(idleRSS), map[string]any{"hwm_bytes": last.u.HWMBytes,
		"cpu_seconds": idleCPU, "seconds": idleSecs, "cpu_share": idleCPU / idleSecs,
		"note": "max VmRSS sampled every 100 ms, line-quality probe running, before the first speed test; amd64 build"})
	testSecs := time.Since(test[0].at).Seconds()
	testCPU := end.CPUSeconds - test[0].u.CPUSeconds
	b.emit("agent_speedtest_peak_rss_bytes", 0, float64(end.HWMBytes), map[string]any{"max_sampled_rss_bytes": testRSS,
		"cpu_seconds": testCPU, "seconds": testSecs,
		"download_bits_per_second": 8 * rig.Sum(body, "hubmon_speedtest_download_bytes_per_second", "site="+agentSite),
		"upload_bits_per_second":   8 * rig.Sum(body, "hubmon_speedtest_upload_bytes_per_second", "site="+agentSite),
		"note":                     fmt.Sprintf("VmHWM after one speed test (4 connections, %s per direction) over loopback to the collector's speed-test server; amd64 build", b.agentTestTime)})
	return nil
}
