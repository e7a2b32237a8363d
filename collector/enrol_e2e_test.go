package main_test

// Enrolment end to end, with the real binaries and a real Mosquitto started
// from the shipped config (TLS listener with a generated council CA, the
// shipped ACL): `hubmon-collector enrol` makes each site's credentials and
// bundle, `hubmon-agent enrol` (or the boot partition) installs them, and
// the agents publish over TLS to the collector. A site cannot publish as
// another, a wrong password and a wrong CA are refused in plain words.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const enrolSites = `sites:
  - {id: site-a, name: Hub A, hub_type: library}
  - {id: site-b, name: Hub B, hub_type: care_home}
`

// enrolled is one site's bundle as hubmon-collector enrol wrote it.
type enrolled struct {
	file, password, code string
}

func readBundleFile(t *testing.T, path string) enrolled {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Password, Code string }
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want 0600 (it holds a password)", path, st.Mode().Perm())
	}
	return enrolled{file: path, password: b.Password, code: b.Code}
}

// agentConf writes an agent config with a speed test against the
// collector's server and a broker still to be enrolled.
func agentConf(t *testing.T, dir, speedURL string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yaml")
	writeFile(t, path, fmt.Sprintf(`# a hub not enrolled yet
site: not-enrolled
data_dir: %s
broker:
  url: tcp://127.0.0.1:1
  password: none-yet
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
    speedtest: {server_url: "%s", duration: 2s, connections: 2}
`, filepath.Join(dir, "state"), speedURL))
	return path
}

// rowsOf counts the history's measurements of site.
func rowsOf(t *testing.T, db, site string) int {
	n := 0
	for _, r := range history(t, db) {
		if r.site == site {
			n++
		}
	}
	return n
}

func TestEnrolMosquittoTLS(t *testing.T) {
	agentBin, collectorBin := binaries(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	addUser(t, collectorBin, passwd, "hubmon-collector", "collector-secret")
	mq := startMosquitto(t, passwd)
	mqConf := filepath.Join(filepath.Dir(mq.conf), "conf.d", "hubmon.conf") // names password_file and acl_file
	brokerURL := fmt.Sprintf("mqtts://127.0.0.1:%d", mq.tlsPort)

	speedPort, httpPort := freeTCPUDPPort(t), freePort(t)
	speedURL := fmt.Sprintf("http://127.0.0.1:%d", speedPort)
	db := filepath.Join(dir, "hubmon.db")
	sites := filepath.Join(dir, "sites.yml")
	writeFile(t, sites, enrolSites)
	collectorConf := filepath.Join(dir, "collector.yaml")
	writeFile(t, collectorConf, fmt.Sprintf(`database: %s
http: {listen: "127.0.0.1:%d"}
speedtest_server: {enabled: true, listen: "127.0.0.1:%d"}
sites_file: %s
mqtt:
  url: tcp://127.0.0.1:%d
  password: ${COLLECTOR_PASSWORD}
`, db, httpPort, speedPort, sites, mq.port))
	collector := start(t, "collector", []string{"COLLECTOR_PASSWORD=collector-secret"}, collectorBin, "run", "-config", collectorConf)
	waitFor(t, "collector ready", 15*time.Second, func() bool {
		code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", httpPort))
		return err == nil && code == 200
	})

	enrol := func(site string, extra ...string) (string, int) {
		t.Helper()
		args := append([]string{"enrol", site, "-config", collectorConf, "-mosquitto-conf", mqConf, "-broker-url", brokerURL,
			"-ca", mq.certs.caFile, "-out", filepath.Join(dir, site+".hubmon-enrol")}, extra...)
		return runBin(t, nil, collectorBin, args...) // no COLLECTOR_PASSWORD: enrol must not need it
	}

	// council side: two sites, Mosquitto told to reload (by pid file, by pid)
	out, code := enrol("site-a", "-reload-pid", mq.pidFile)
	if code != 0 {
		t.Fatalf("enrol site-a: exit %d\n%s", code, out)
	}
	a := readBundleFile(t, filepath.Join(dir, "site-a.hubmon-enrol"))
	for _, want := range []string{
		"ACL            " + mq.acl + " already lets site-a publish its own topics (pattern lines for %u): nothing added",
		"sites file     " + sites + ` lists site-a ("Hub A")`,
		"password file  " + passwd + ": site-a added",
		"sent SIGHUP to process",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("enrol output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, a.password) || strings.Contains(out, a.code) {
		t.Fatalf("enrol printed the password or the code without -print-code:\n%s", out)
	}
	pid, _ := os.ReadFile(mq.pidFile)
	out, code = enrol("site-b", "-print-code", "-reload-pid", strings.TrimSpace(string(pid)))
	if code != 0 {
		t.Fatalf("enrol site-b: exit %d\n%s", code, out)
	}
	b := readBundleFile(t, filepath.Join(dir, "site-b.hubmon-enrol"))
	if m := regexp.MustCompile(`short code +(HM-\S+)`).FindStringSubmatch(out); m == nil || m[1] != b.code {
		t.Fatalf("enrol -print-code did not print the bundle's code:\n%s", out)
	}
	t.Logf("short code for site-b (%d characters): %s", len(b.code), b.code)

	for _, tt := range []struct {
		site string
		args []string
		want string
	}{
		{"site-a", nil, "bundle file " + filepath.Join(dir, "site-a.hubmon-enrol") + " exists already"},
		{"site-a", []string{"-out", filepath.Join(dir, "again.hubmon-enrol")}, `site "site-a" is enrolled already`},
		{"site-z", nil, `site "site-z" is not in the sites file`},
		{"hubmon-collector", []string{"-allow-unlisted"}, "is the collector's own MQTT user"},
	} {
		if out, code := enrol(tt.site, tt.args...); code != 1 || !strings.Contains(out, tt.want) {
			t.Errorf("enrol %s %q: exit %d, want an error with %q:\n%s", tt.site, tt.args, code, tt.want, out)
		}
	}

	// hub A: the bundle file dropped on the SD card's boot partition
	confA := agentConf(t, filepath.Join(dir, "hub-a"), speedURL)
	boot := filepath.Join(dir, "boot")
	os.Mkdir(boot, 0o755)
	data, _ := os.ReadFile(a.file)
	writeFile(t, filepath.Join(boot, "site-a.hubmon-enrol"), string(data))
	bootEnv := []string{"HUBMON_ENROL_PATHS=" + filepath.Join(boot, "*.hubmon-enrol*")}
	// hub B: the short code, typed in lower case with spaces for dashes
	confB := agentConf(t, filepath.Join(dir, "hub-b"), speedURL)
	typed := strings.Fields(strings.ToLower(strings.ReplaceAll(b.code, "-", " ")))
	out, code = runBin(t, nil, agentBin, append([]string{"enrol", "-config", confB}, typed...)...)
	if code != 0 || !strings.Contains(out, "taken from the broker, its fingerprint matches the code") {
		t.Fatalf("hubmon-agent enrol CODE: exit %d\n%s", code, out)
	}

	t0 := time.Now()
	agentA := start(t, "agent-a", bootEnv, agentBin, "run", "-config", confA)
	agentB := start(t, "agent-b", []string{"HUBMON_ENROL_PATHS=off"}, agentBin, "run", "-config", confB)
	waitFor(t, "both sites' measurements over TLS", 60*time.Second, func() bool {
		return rowsOf(t, db, "site-a") > 0 && rowsOf(t, db, "site-b") > 0
	})
	t.Logf("first measurements of both sites stored %.1fs after the agents started", time.Since(t0).Seconds())
	if _, err := os.Stat(filepath.Join(boot, "site-a.hubmon-enrol")); !os.IsNotExist(err) {
		t.Fatalf("the bundle is still on the boot partition: %v", err)
	}
	if !strings.Contains(agentA.output(), "installed the enrolment file from the boot partition") {
		t.Fatalf("agent A's log does not say it installed the bundle:\n%s", agentA.output())
	}
	agentA.stop(15 * time.Second)
	agentB.stop(15 * time.Second)

	// site A's credentials cannot publish as site B: Mosquitto acknowledges
	// the publish (QoS 1) and drops it, so the test is what the collector
	// stores. A message on A's own topic, sent after it, shows the collector
	// has taken everything before.
	pub := func(topic, id, site string) string {
		t.Helper()
		payload, _ := os.ReadFile("../agent/wire/testdata/measurement-v1-dns.json")
		var m map[string]any
		json.Unmarshal(payload, &m)
		m["message_id"], m["site"], m["agent_id"], m["measured_at"] = id, site, "FORGERYTEST0000000000000", time.Now().UTC().Format(time.RFC3339)
		payload, _ = json.Marshal(m)
		out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(mq.tlsPort), "--cafile", mq.certs.caFile,
			"-u", "site-a", "-P", a.password, "-i", "site-a", "-q", "1", "-t", topic, "-m", string(payload)).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("refused: %v %s", err, out)
		}
		return "acknowledged"
	}
	forged := pub("hubmon/v1/site-b/measurement", "FORGEDBYSITEA000000000000", "site-b")
	t.Logf("site A publishing as site B at QoS 1: %s by Mosquitto", forged)
	pub("hubmon/v1/site-a/measurement", "CONTROLFROMSITEA000000000", "site-a")
	waitFor(t, "site A's own message", 20*time.Second, func() bool {
		for _, r := range history(t, db) {
			if r.messageID == "CONTROLFROMSITEA000000000" {
				return true
			}
		}
		return false
	})
	for _, r := range history(t, db) {
		if r.messageID == "FORGEDBYSITEA000000000000" {
			t.Fatalf("the collector stored a message site A published as site B: %+v", r)
		}
	}

	// a new password for site A: the old one is refused, in plain words
	out, code = enrol("site-a", "-rotate", "-reload-pid", mq.pidFile)
	if code != 0 || !strings.Contains(out, "site-a replaced") {
		t.Fatalf("enrol -rotate: exit %d\n%s", code, out)
	}
	rotated := readBundleFile(t, a.file)
	if rotated.password == a.password {
		t.Fatal("-rotate kept the password")
	}
	stale := start(t, "agent-a-old-password", []string{"HUBMON_ENROL_PATHS=off"}, agentBin, "run", "-config", confA)
	waitFor(t, "the refusal in the agent's log", 20*time.Second, func() bool {
		return strings.Contains(stale.output(), "the broker refused the user name or password")
	})
	stale.stop(15 * time.Second)
	t.Logf("agent log with the old password: %s", firstLine(stale.output(), "refused"))
	// the new bundle, installed by hand with hubmon-agent enrol FILE
	before := rowsOf(t, db, "site-a")
	out, code = runBin(t, nil, agentBin, "enrol", "-config", confA, a.file)
	if code != 0 || !strings.Contains(out, "site and broker replaced; 1 probes and every other setting kept") {
		t.Fatalf("hubmon-agent enrol FILE: exit %d\n%s", code, out)
	}
	start(t, "agent-a-new-password", []string{"HUBMON_ENROL_PATHS=off"}, agentBin, "run", "-config", confA)
	waitFor(t, "a measurement with the new password", 60*time.Second, func() bool { return rowsOf(t, db, "site-a") > before })

	// another CA: a code pinning it is refused when installing, and an
	// agent trusting it refuses the broker's certificate
	_, otherDER := newCACert(t, "not the council")
	otherCA := filepath.Join(dir, "other-ca.pem")
	writePEM(t, otherCA, "CERTIFICATE", otherDER)
	out, code = runBin(t, nil, collectorBin, "enrol", "site-c", "-allow-unlisted", "-config", collectorConf, "-mosquitto-conf", mqConf,
		"-broker-url", brokerURL, "-ca", otherCA, "-out", filepath.Join(dir, "site-c.hubmon-enrol"))
	if code != 0 {
		t.Fatalf("enrol site-c: exit %d\n%s", code, out)
	}
	c := readBundleFile(t, filepath.Join(dir, "site-c.hubmon-enrol"))
	confC := agentConf(t, filepath.Join(dir, "hub-c"), speedURL)
	out, code = runBin(t, nil, agentBin, "enrol", "-config", confC, c.code)
	if code != 1 || !strings.Contains(out, "did not send the council CA certificate the code names") {
		t.Fatalf("enrol a code pinning another CA: exit %d\n%s", code, out)
	}
	if out, code = runBin(t, nil, agentBin, "enrol", "-config", confC, c.file); code != 0 {
		t.Fatalf("enrol site-c's file: exit %d\n%s", code, out)
	}
	wrongCA := start(t, "agent-c-wrong-ca", []string{"HUBMON_ENROL_PATHS=off"}, agentBin, "run", "-config", confC)
	waitFor(t, "the certificate error in the agent's log", 20*time.Second, func() bool {
		return strings.Contains(wrongCA.output(), "the broker's TLS certificate is not signed by a CA this agent trusts")
	})
	wrongCA.stop(15 * time.Second)
	collector.stop(15 * time.Second)
}

// TestEnrolEmbeddedBroker enrols a site with the collector's own broker:
// its password file, its built-in ACL, SIGHUP to the collector, and a code
// for a plain broker (no CA to fetch).
func TestEnrolEmbeddedBroker(t *testing.T) {
	s := newSystem(t, false)
	s.startCollector()
	brokerURL := strings.Replace(s.brokerURL, "tcp://", "mqtt://", 1)
	out, code := runBin(t, nil, s.collectorBin, "enrol", "new-hub", "-config", s.collectorConf, "-broker-url", brokerURL,
		"-out", filepath.Join(s.dir, "new-hub.hubmon-enrol"), "-print-code", "-reload-pid", strconv.Itoa(s.collector.cmd.Process.Pid))
	if code != 0 {
		t.Fatalf("enrol: exit %d\n%s", code, out)
	}
	for _, want := range []string{"built into the embedded broker", "sent SIGHUP to process", "hubmon-collector)"} {
		if !strings.Contains(out, want) {
			t.Errorf("enrol output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`short code +(HM-\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no code:\n%s", out)
	}
	waitFor(t, "the collector to reload its password file", 10*time.Second, func() bool {
		return strings.Contains(s.collector.output(), "password file reloaded")
	})
	conf := agentConf(t, filepath.Join(s.dir, "new-hub"), s.speedURL)
	if out, code := runBin(t, nil, s.agentBin, "enrol", "-config", conf, m[1]); code != 0 {
		t.Fatalf("hubmon-agent enrol CODE: exit %d\n%s", code, out)
	}
	start(t, "agent", []string{"HUBMON_ENROL_PATHS=off"}, s.agentBin, "run", "-config", conf)
	waitFor(t, "the new hub's measurement", 60*time.Second, func() bool { return rowsOf(t, s.db, "new-hub") > 0 })
}

func firstLine(text, with string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, with) {
			return l
		}
	}
	return ""
}
