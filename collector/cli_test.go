package main_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runBin(t *testing.T, env []string, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestAgentOnce is what an installer does first: run the probes now and read
// the result, without publishing.
func TestAgentOnce(t *testing.T) {
	s := newSystem(t, false)
	s.startCollector()
	env := []string{"HUBMON_MQTT_PASSWORD=x"}

	out, code := runBin(t, env, s.agentBin, "once", "-config", s.agentConf, "-json")
	if code != 0 {
		t.Fatalf("once -json exit %d:\n%s", code, out)
	}
	var ms []struct {
		Probe     string `json:"probe"`
		Success   bool   `json:"success"`
		Speedtest struct {
			Download *float64 `json:"download_bits_per_second"`
			Upload   *float64 `json:"upload_bits_per_second"`
		} `json:"speedtest"`
	}
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("once -json is not JSON: %v\n%s", err, out)
	}
	if len(ms) != 1 || !ms[0].Success || ms[0].Speedtest.Download == nil || *ms[0].Speedtest.Download <= 0 || ms[0].Speedtest.Upload == nil {
		t.Fatalf("once -json: %s", out)
	}

	out, code = runBin(t, env, s.agentBin, "once", "-config", s.agentConf)
	if code != 0 || !strings.Contains(out, "DOWN Mbit/s") || !strings.Contains(out, "local") || !strings.Contains(out, " ok ") {
		t.Fatalf("once table (exit %d):\n%s", code, out)
	}
	if rows := history(t, s.db); len(rows) != 0 {
		t.Fatalf("once published %d measurements", len(rows))
	}

	// a server that is not there: a failure with its reason, exit 1
	s.collector.stop(15e9)
	out, code = runBin(t, env, s.agentBin, "once", "-config", s.agentConf)
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "connection refused") {
		t.Fatalf("once against a stopped server (exit %d):\n%s", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	agent, collector := binaries(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "agent.yaml")
	writeFile(t, bad, `site: Leeds Library
data_dir: /tmp
broker:
  url: tcp://127.0.0.1:1883
  pasword: x
probes:
  - name: local
    kind: speedtest
    interval: 1s
`)
	out, code := runBin(t, nil, agent, "run", "-config", bad, "-check-config")
	if code != 1 {
		t.Fatalf("bad agent config: exit %d\n%s", code, out)
	}
	for _, want := range []string{`site: `, `"Leeds Library"`, `pasword`, `probes[0].interval: must be at least 1m0s (got 1s)`} {
		if !strings.Contains(out, want) {
			t.Errorf("agent -check-config output lacks %q:\n%s", want, out)
		}
	}
	badC := filepath.Join(dir, "collector.yaml")
	writeFile(t, badC, "database: "+filepath.Join(dir, "h.db")+"\nhttp:\n  listen: nowhere\n")
	out, code = runBin(t, nil, collector, "run", "-config", badC, "-check-config")
	if code != 1 || !strings.Contains(out, "http.listen") || !strings.Contains(out, "nowhere") || !strings.Contains(out, "embedded_broker.password_file") {
		t.Fatalf("bad collector config: exit %d\n%s", code, out)
	}
	good := newSystem(t, false)
	if out, code := runBin(t, []string{"HUBMON_MQTT_PASSWORD=x"}, agent, "run", "-config", good.agentConf, "-check-config"); code != 0 {
		t.Fatalf("good agent config refused: %s", out)
	}
	if out, code := runBin(t, nil, collector, "run", "-config", good.collectorConf, "-check-config"); code != 0 {
		t.Fatalf("good collector config refused: %s", out)
	}
	for _, bin := range []string{agent, collector} {
		if out, code := runBin(t, nil, bin, "version"); code != 0 || !strings.Contains(out, filepath.Base(bin)) {
			t.Fatalf("%s version: %d %s", bin, code, out)
		}
	}
}
