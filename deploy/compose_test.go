package deploy

// TestComposeStack checks deploy/compose/compose.yaml without Docker (none
// runs on the test machines): it reads the compose file, runs setup.sh, and
// starts the real Mosquitto and the real hubmon-collector on this machine
// with exactly the files the compose file mounts, each container path mapped
// to the host file it mounts (ports moved to free ones). A hub then logs in
// over TLS with the council CA setup.sh made, publishes a measurement and
// gets the collector's ack; promtool checks the Prometheus config with the
// rules it mounts; the Grafana provider's path is where the dashboards are
// mounted. Not checked: the images themselves (eclipse-mosquitto,
// prom/prometheus, grafana/grafana, debian), Docker's networking and
// volume permissions inside the containers.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/hubmon/hubmon/agent/wire"
)

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string   `yaml:"image"`
	NetworkMode string   `yaml:"network_mode"`
	Command     []string `yaml:"command"`
	EnvFile     string   `yaml:"env_file"`
	Ports       []string `yaml:"ports"`
	Volumes     []string `yaml:"volumes"`
	Configs     []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
}

// mounts maps a service's container paths to host paths: bind mounts
// relative to deploy/compose, named volumes to fresh directories.
func (s composeService) mounts(tb testing.TB, volumes map[string]string) map[string]string {
	tb.Helper()
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			tb.Fatalf("volume %q: want source:target[:ro]", v)
		}
		src, dst := parts[0], parts[1]
		if strings.HasPrefix(src, ".") {
			m[dst] = filepath.Join("compose", src)
			continue
		}
		dir, ok := volumes[src]
		if !ok {
			tb.Fatalf("volume %q: %q is not a bind mount nor a named volume of the compose file", v, src)
		}
		m[dst] = dir
	}
	return m
}

// rewrite replaces container paths in text with the host paths they mount,
// longest first.
func rewrite(text string, mounts map[string]string) string {
	keys := make([]string, 0, len(mounts))
	for k := range mounts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var pairs []string
	for _, k := range keys {
		abs, _ := filepath.Abs(mounts[k])
		pairs = append(pairs, k, abs)
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

func TestComposeStack(t *testing.T) {
	for _, p := range []string{"mosquitto", "promtool", "openssl"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not installed (Debian: see .ci/run)", p)
		}
	}
	raw, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("compose/compose.yaml: %v", err)
	}
	for _, name := range []string{"mosquitto", "collector", "prometheus", "grafana"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("compose.yaml: no %s service", name)
		}
		if name != "mosquitto" && s.NetworkMode != "service:mosquitto" {
			t.Errorf("compose.yaml: %s has network_mode %q; the shipped configs' 127.0.0.1 addresses need service:mosquitto", name, s.NetworkMode)
		}
	}
	// every bind mount is a file of the repository, or made by setup.sh
	// (state/) or make dist (dist/)
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if !strings.HasPrefix(src, ".") || strings.HasPrefix(src, "./state/") || strings.HasPrefix(src, "../../dist/") {
				continue
			}
			if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
				t.Errorf("compose.yaml: %s mounts %s, which is not in the repository: %v", name, src, err)
			}
		}
	}

	dir := t.TempDir()
	collectorBin := filepath.Join(dir, "hubmon-collector")
	if out, err := exec.Command("go", "build", "-o", collectorBin, "../collector").CombinedOutput(); err != nil {
		t.Fatalf("go build collector: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	setup := exec.Command("sh", "compose/setup.sh")
	setup.Env = append(os.Environ(), "HUBMON_MQTT_HOST=127.0.0.1", "HUBMON_COMPOSE_STATE="+state,
		"HUBMON_COLLECTOR="+collectorBin, "HUBMON_MOSQUITTO_UID="+me.Uid)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	} else {
		t.Logf("setup.sh:\n%s", out)
	}
	// run twice: it must not overwrite what exists
	before, _ := os.ReadFile(filepath.Join(state, "collector.env"))
	again := exec.Command("sh", "compose/setup.sh")
	again.Env = setup.Env
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("setup.sh, second run: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(filepath.Join(state, "collector.env")); string(after) != string(before) {
		t.Error("setup.sh's second run replaced state/collector.env")
	}

	volumes := map[string]string{}
	for v := range cf.Volumes {
		volumes[v] = filepath.Join(dir, "volume-"+v)
		if err := os.MkdirAll(volumes[v], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stateMount := func(m map[string]string) {
		for k, v := range m {
			if rel, ok := strings.CutPrefix(v, filepath.Join("compose", "state")); ok {
				m[k] = state + rel
			}
		}
	}

	// Mosquitto: the main config the compose file gives it, around the
	// shipped hubmon.conf, with the mounts mapped and the ports moved
	mq := cf.Services["mosquitto"]
	mqMounts := mq.mounts(t, volumes)
	stateMount(mqMounts)
	if len(mq.Configs) != 1 {
		t.Fatalf("compose.yaml: mosquitto has %d configs, want the main config", len(mq.Configs))
	}
	main := cf.Configs[mq.Configs[0].Source].Content
	if main == "" {
		t.Fatalf("compose.yaml: config %q has no content", mq.Configs[0].Source)
	}
	confDir := filepath.Join(dir, "conf.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plainPort, tlsPort := freePort(t), freePort(t)
	hub, ok := mqMounts["/etc/mosquitto/conf.d/hubmon.conf"]
	if !ok {
		t.Fatal("compose.yaml: mosquitto does not mount hubmon.conf in /etc/mosquitto/conf.d")
	}
	hubConf, err := os.ReadFile(hub)
	if err != nil {
		t.Fatal(err)
	}
	text := rewrite(string(hubConf), mqMounts)
	text = strings.NewReplacer("listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", plainPort),
		"listener 8883", fmt.Sprintf("listener %d 127.0.0.1", tlsPort)).Replace(text)
	if err := os.WriteFile(filepath.Join(confDir, "hubmon.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	delete(mqMounts, "/etc/mosquitto/conf.d/hubmon.conf")
	mqMounts["/etc/mosquitto/conf.d"] = confDir
	mainText := strings.Replace(rewrite(main, mqMounts), "log_dest stdout", "log_dest stderr", 1)
	// as root, Mosquitto would switch to the user "mosquitto"
	mainText = "user " + me.Username + "\n" + mainText
	mainPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(mainPath, []byte(mainText), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mlog, _ := os.Create(filepath.Join(dir, "mosquitto.log"))
	mosq := exec.CommandContext(ctx, "mosquitto", "-c", mainPath)
	mosq.Stdout, mosq.Stderr = mlog, mlog
	if err := mosq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = mosq.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(mlog.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
	}()
	waitFor(t, "mosquitto's TLS listener", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// the collector: compose's collector.yaml, its env file, its volume
	col := cf.Services["collector"]
	colMounts := col.mounts(t, volumes)
	confPath, ok := colMounts["/etc/hubmon/collector.yaml"]
	if !ok {
		t.Fatal("compose.yaml: the collector does not mount /etc/hubmon/collector.yaml")
	}
	if !strings.Contains(strings.Join(col.Command, " "), "-config /etc/hubmon/collector.yaml") {
		t.Errorf("compose.yaml: the collector's command %q does not read /etc/hubmon/collector.yaml", col.Command)
	}
	delete(colMounts, "/usr/bin/hubmon-collector")
	colConf, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	httpPort, echoPort := freePort(t), freePort(t)
	ctext := rewrite(string(colConf), colMounts)
	ctext = strings.NewReplacer("tcp://127.0.0.1:1883", fmt.Sprintf("tcp://127.0.0.1:%d", plainPort),
		`listen: ":9470"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, httpPort),
		`listen: ":9471"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, echoPort)).Replace(ctext)
	for _, want := range []string{fmt.Sprint(plainPort), fmt.Sprint(httpPort), fmt.Sprint(echoPort)} {
		if !strings.Contains(ctext, want) {
			t.Fatalf("deploy/compose/collector.yaml changed: could not set %s", want)
		}
	}
	cconf := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cconf, []byte(ctext), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(state, strings.TrimPrefix(col.EnvFile, "./state/")))
	if err != nil {
		t.Fatalf("the collector's env_file %s: %v", col.EnvFile, err)
	}
	clog, _ := os.Create(filepath.Join(dir, "collector.log"))
	collector := exec.CommandContext(ctx, collectorBin, "run", "-config", cconf)
	collector.Env = append(os.Environ(), strings.Fields(string(env))...)
	collector.Stdout, collector.Stderr = clog, clog
	if err := collector.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = collector.Process.Signal(os.Interrupt)
		_ = collector.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(clog.Name())
			t.Logf("collector log:\n%s", b)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", httpPort))
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector is not ready after 20 s (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// a hub: its own account (as `hubmon-collector enrol` makes it), TLS
	// with the council CA setup.sh made, a measurement, the collector's ack
	const site, password = "compose-hub", "hub-password-123"
	add := exec.Command(collectorBin, "passwd", "-file", filepath.Join(state, "mosquitto", "hubmon.passwd"), site)
	add.Stdin = strings.NewReader(password + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	_ = mosq.Process.Signal(syscall.SIGHUP)
	caPEM, err := os.ReadFile(filepath.Join(state, "certs", "hubmon-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("setup.sh's CA does not parse")
	}
	acks := make(chan *wire.Ack, 4)
	var c mqtt.Client
	deadline = time.Now().Add(15 * time.Second)
	for {
		opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)).
			SetClientID(site).SetUsername(site).SetPassword(password).
			SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
		c = mqtt.NewClient(opts)
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil && c.IsConnected() {
			break
		}
		if time.Now().After(deadline) { // the reload may take a moment
			t.Fatalf("a hub could not log in over TLS with setup.sh's CA: %v", tok.Error())
		}
		time.Sleep(300 * time.Millisecond)
	}
	defer c.Disconnect(250)
	tok := c.Subscribe(wire.TopicRoot+"/"+site+"/"+wire.TopicAck, 1, func(_ mqtt.Client, m mqtt.Message) {
		if a, err := wire.DecodeAck(m.Payload(), site); err == nil {
			acks <- a
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to the ack topic: %v", tok.Error())
	}
	m := map[string]any{}
	fixture, err := os.ReadFile("../agent/wire/testdata/measurement-v1-dns.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixture, &m); err != nil {
		t.Fatal(err)
	}
	m["site"] = site
	m["measured_at"] = time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	payload, _ := json.Marshal(m)
	if tok := c.Publish(wire.TopicRoot+"/"+site+"/"+wire.TopicMeasurement, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case a := <-acks:
		if len(a.Stored) != 1 || a.Stored[0] != m["message_id"] {
			t.Fatalf("ack %+v; want %v stored", a, m["message_id"])
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no ack from the collector within 20 s")
	}

	// Prometheus: the shipped config with the rules the compose file mounts
	prom := cf.Services["prometheus"]
	pm := prom.mounts(t, volumes)
	pconf, ok := pm["/etc/prometheus/prometheus.yml"]
	if !ok {
		t.Fatal("compose.yaml: prometheus does not mount /etc/prometheus/prometheus.yml")
	}
	b, err := os.ReadFile(pconf)
	if err != nil {
		t.Fatal(err)
	}
	ppath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(ppath, []byte(rewrite(string(b), pm)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", ppath).CombinedOutput(); err != nil {
		t.Errorf("promtool check config (compose's mounts): %v\n%s", err, out)
	}

	// Grafana: the provider reads the dashboards from where they are mounted
	gm := cf.Services["grafana"].mounts(t, volumes)
	provider, err := os.ReadFile(filepath.Join(gm["/etc/grafana/provisioning/dashboards"], "hubmon.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pv struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(provider, &pv); err != nil || len(pv.Providers) != 1 {
		t.Fatalf("grafana dashboard provider: %v", err)
	}
	dash, ok := gm[pv.Providers[0].Options.Path]
	if !ok {
		t.Fatalf("compose.yaml: grafana mounts nothing at the provider's path %s", pv.Providers[0].Options.Path)
	}
	if js, _ := filepath.Glob(filepath.Join(dash, "*.json")); len(js) < 4 {
		t.Errorf("compose.yaml: grafana's %s holds %d dashboards, want 4", dash, len(js))
	}
}
