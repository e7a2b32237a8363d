package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/wire"
)

// plainBundle is an enrolment for a plain (no TLS) broker: installing its
// code needs no network.
func plainBundle(t *testing.T, site string) *wire.Bundle {
	t.Helper()
	pw, err := wire.NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	b := &wire.Bundle{Site: site, Username: site, Password: pw, BrokerURL: "mqtt://127.0.0.1:1883"}
	if _, err := b.MarshalFile(); err != nil {
		t.Fatal(err)
	}
	return b
}

func runAgent(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), code
}

func TestEnrolCommand(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	b := plainBundle(t, "hub-1")
	file := filepath.Join(dir, "hub-1.hubmon-enrol")
	data, _ := b.MarshalFile()
	os.WriteFile(file, data, 0o600)

	out, errs, code := runAgent(t, nil, "enrol", file, "-config", conf, "-data-dir", filepath.Join(dir, "state"))
	if code != 0 {
		t.Fatalf("enrol a file: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"installed the enrolment for site hub-1", "(new, with 3 default probes", "holds the hub's password: delete it now"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, b.Password) {
		t.Fatalf("the password was printed:\n%s%s", out, errs)
	}
	cfg, err := config.Load(conf, nil)
	if err != nil || cfg.Broker.Password != b.Password {
		t.Fatalf("config: %v", err)
	}

	// the code, pasted with spaces: a new password for the same site
	b2 := plainBundle(t, "hub-1")
	args := append([]string{"enrol", "-config", conf}, strings.Fields(strings.ReplaceAll(b2.Code, "-", " "))...)
	if out, errs, code := runAgent(t, nil, args...); code != 0 || !strings.Contains(out, "site and broker replaced; 3 probes") {
		t.Fatalf("enrol a code: exit %d\n%s%s", code, out, errs)
	}
	if cfg, _ := config.Load(conf, nil); cfg.Broker.Password != b2.Password {
		t.Fatal("the code's password was not installed")
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"code cut short", []string{b2.Code[:len(b2.Code)-12]}, "the enrolment code is incomplete: 10 characters missing"},
		{"no such file", []string{filepath.Join(dir, "nothere.hubmon-enrol")}, "no such file, and not an enrolment code"},
		{"not a bundle", []string{conf}, "agent.yaml: not an enrolment bundle"},
		{"nothing", nil, "usage: hubmon-agent enrol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runAgent(t, nil, append([]string{"enrol", "-config", conf}, tt.args...)...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, want an error with %q:\n%s%s", code, tt.want, out, errs)
			}
		})
	}
	if cfg, _ := config.Load(conf, nil); cfg.Broker.Password != b2.Password {
		t.Fatal("a failed enrol changed the config")
	}
}

// TestRunInstallsBootBundle: a Pi whose card has an enrolment file on its
// boot partition installs it when the agent starts (here: run
// -check-config, which systemd runs first), and deletes it.
func TestRunInstallsBootBundle(t *testing.T) {
	dir, boot := t.TempDir(), t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, []byte(`site: old
data_dir: state
broker: {url: "tcp://127.0.0.1:1883", password: x}
probes:
  - {name: local, kind: speedtest, speedtest: {server_url: "http://127.0.0.1:8080"}}
`), 0o600)
	b := plainBundle(t, "hub-2")
	data, _ := b.MarshalFile()
	bundle := filepath.Join(boot, "hub-2.hubmon-enrol")
	os.WriteFile(bundle, data, 0o755)
	env := map[string]string{"HUBMON_ENROL_PATHS": filepath.Join(boot, "hubmon-enrol*") + ":" + filepath.Join(boot, "*.hubmon-enrol*")}

	out, errs, code := runAgent(t, env, "run", "-config", conf, "-check-config")
	if code != 0 || !strings.Contains(out, "configuration is valid (site hub-2, 1 probes)") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "installed the enrolment file from the boot partition") {
		t.Fatalf("log:\n%s", errs)
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("the bundle stayed on the boot partition: %v", err)
	}
	if note, err := os.ReadFile(filepath.Join(boot, "hubmon-enrol-result.txt")); err != nil || !strings.Contains(string(note), "site hub-2 was installed") {
		t.Fatalf("result note: %s %v", note, err)
	}

	// a damaged bundle: logged, and the agent goes on with its config
	os.WriteFile(bundle, data[:len(data)/2], 0o755)
	out, errs, code = runAgent(t, env, "run", "-config", conf, "-check-config")
	if code != 0 || !strings.Contains(errs, "could not be installed") || !strings.Contains(errs, "damaged or incomplete") {
		t.Fatalf("damaged bundle: exit %d\n%s%s", code, out, errs)
	}

	// no config and no bundle: say how to enrol
	os.Remove(bundle)
	_, errs, code = runAgent(t, env, "run", "-config", filepath.Join(dir, "none.yaml"), "-check-config")
	if code != 1 || !strings.Contains(errs, "enrol this hub with `hubmon-agent enrol FILE-OR-CODE`") {
		t.Fatalf("no config: exit %d\n%s", code, errs)
	}

	// enrol -boot, as a systemd ExecStartPre with privileges would run it
	os.WriteFile(bundle, data, 0o755)
	out, errs, code = runAgent(t, env, "enrol", "-boot", "-config", conf)
	if code != 0 || !strings.Contains(out, "was deleted from the boot partition") {
		t.Fatalf("enrol -boot: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := runAgent(t, env, "enrol", "-boot", "-config", conf); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("enrol -boot with nothing there: exit %d\n%s", code, out)
	}
}

// TestEnrolCommandEnv: the Debian package's config takes its values from
// agent.env; enrol writes that, says so, and leaves the config alone, and
// `run` installs a boot partition's bundle there too and runs with it.
func TestEnrolCommandEnv(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "deploy", "nfpm", "etc", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, shipped, 0o644)
	b := plainBundle(t, "hub-1")
	file := filepath.Join(dir, "hub-1.hubmon-enrol")
	data, _ := b.MarshalFile()
	os.WriteFile(file, data, 0o600)

	out, errs, code := runAgent(t, nil, "enrol", "-config", conf, file)
	if code != 0 {
		t.Fatalf("enrol: exit %d\n%s%s", code, out, errs)
	}
	envPath := filepath.Join(dir, "agent.env")
	for _, want := range []string{
		"installed the enrolment for site hub-1\n",
		"  env     " + envPath + " (new): HUBMON_SITE, HUBMON_BROKER_URL, HUBMON_MQTT_PASSWORD, HUBMON_ECHO_TARGET\n",
		"  config  " + conf + " (not changed: it takes these from the environment; 4 probes)\n",
		"  echo    127.0.0.1:9471 (the collector's UDP echo responder, taken to be on the broker's host; if it is elsewhere, enrol again with -echo-target HOST:PORT)\n",
		"next: sudo systemctl restart hubmon-agent\n", // not the packaged config: no restart here
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, b.Password) {
		t.Fatalf("the password was printed:\n%s%s", out, errs)
	}
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, shipped) {
		t.Fatal("the config was changed")
	}
	env := envOf(t, envPath)
	if env["HUBMON_MQTT_PASSWORD"] != b.Password || env["HUBMON_BROKER_URL"] != b.BrokerURL {
		t.Fatalf("agent.env: %v", env)
	}
	if out, errs, code := runAgent(t, env, "run", "-config", conf, "-check-config"); code != 0 || !strings.Contains(out, "configuration is valid (site hub-1, 4 probes)") {
		t.Fatalf("-check-config with agent.env: exit %d\n%s%s", code, out, errs)
	}

	// -echo-target
	out, errs, code = runAgent(t, nil, "enrol", "-config", conf, "-echo-target", "echo.example:9000", file)
	if code != 0 || !strings.Contains(out, "  echo    echo.example:9000 (the collector's UDP echo responder)\n") ||
		envOf(t, envPath)["HUBMON_ECHO_TARGET"] != "echo.example:9000" {
		t.Fatalf("enrol -echo-target: exit %d\n%s%s", code, out, errs)
	}

	// from the boot partition, as `run` starts: it runs with what it wrote
	boot := t.TempDir()
	b2 := plainBundle(t, "hub-2")
	data, _ = b2.MarshalFile()
	os.WriteFile(filepath.Join(boot, "hubmon-enrol"), data, 0o755)
	runEnv := map[string]string{"HUBMON_ENROL_PATHS": filepath.Join(boot, "hubmon-enrol*")}
	out, errs, code = runAgent(t, runEnv, "run", "-config", conf, "-check-config")
	if code != 0 || !strings.Contains(out, "configuration is valid (site hub-2, 4 probes)") || !strings.Contains(errs, "env_file="+envPath) {
		t.Fatalf("run with a bundle on the boot partition: exit %d\n%s%s", code, out, errs)
	}
	if env := envOf(t, envPath); env["HUBMON_SITE"] != "hub-2" || env["HUBMON_MQTT_PASSWORD"] != b2.Password {
		t.Fatalf("agent.env after the boot partition's bundle: %v", env)
	}
}

// envOf reads an environment file of plain NAME=VALUE lines (what enrol
// writes for values that need no quotes).
func envOf(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			env[k] = v
		}
	}
	return env
}

// TestWithEnvFile: `check` and `once` take what the process's environment
// does not set from agent.env next to the config, as the service has it.
func TestWithEnvFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	getenv := func(k string) string { return map[string]string{"A": "process"}[k] }
	if got := withEnvFile(conf, getenv)("B"); got != "" {
		t.Fatalf("no agent.env: B = %q", got)
	}
	os.WriteFile(filepath.Join(dir, "agent.env"), []byte("# enrolment\nA=file\nB=\"b \\$x\"\nC=\n"), 0o600)
	env := withEnvFile(conf, getenv)
	for k, want := range map[string]string{"A": "process", "B": "b $x", "C": "", "D": ""} {
		if got := env(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
