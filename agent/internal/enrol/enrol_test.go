package enrol

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/wire"
)

// testCA is a council CA and a broker certificate for 127.0.0.1 and
// localhost signed by it.
type testCA struct {
	pem    []byte
	cert   *x509.Certificate
	server tls.Certificate // leaf only
}

func newCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{
		pem:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		cert:   ca,
		server: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key},
	}
}

// bundle returns a valid TLS bundle for site with ca's certificate.
func bundle(tb testing.TB, site string, ca *testCA) *wire.Bundle {
	tb.Helper()
	pw, _ := wire.NewPassword()
	b := &wire.Bundle{Site: site, Username: site, Password: pw, BrokerURL: "mqtts://127.0.0.1:8883", CAPEM: string(ca.pem)}
	data, err := b.MarshalFile()
	if err != nil {
		tb.Fatal(err)
	}
	got, err := wire.DecodeBundle(data)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func TestInstallFresh(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	ca := newCA(t, "council")
	b := bundle(t, "hub-1", ca)
	res, err := Install(context.Background(), b, Options{ConfigPath: path, DataDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Probes != 3 || res.CAPath != filepath.Join(dir, CAFileName) || res.CA.Subject.CommonName != "council" {
		t.Fatalf("result %+v", res)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Site != "hub-1" || cfg.Broker.Password != b.Password || cfg.Broker.URL != "ssl://127.0.0.1:8883" ||
		cfg.Broker.CAFile != res.CAPath || cfg.DataDir != filepath.Join(dir, "state") {
		t.Fatalf("config %+v", cfg)
	}
	if got, _ := os.ReadFile(res.CAPath); string(got) != string(ca.pem) {
		t.Fatal("CA file differs from the bundle's")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("new config mode %v, want 0640", st.Mode().Perm())
	}
}

const existing = `# Leeds Central Library's agent
site: old-hub
timezone: Europe/London
data_dir: state
broker:
  url: ssl://old.example:8883 # the old broker
  password: ${HUBMON_MQTT_PASSWORD}
  ca_file: old-ca.pem
  ack_timeout: 5s
probes:
  # against the council's own server
  - name: local
    kind: speedtest
    interval: 1h
    speedtest: {server_url: "http://127.0.0.1:8080", duration: 5s}
  - name: line
    kind: linequality
    linequality:
      udp_target: 127.0.0.1:9471
`

func TestInstallKeepsSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(existing), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "old-ca.pem"), newCA(t, "old").pem, 0o644)
	before, err := config.Load(path, func(string) string { return "x" })
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "council")
	b := bundle(t, "hub-1", ca)
	res, err := Install(context.Background(), b, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.PreviousSite != "old-hub" || res.Probes != 2 {
		t.Fatalf("result %+v", res)
	}
	after, err := config.Load(path, nil) // no variables needed any more
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.Probes, before.Probes) || after.DataDir != before.DataDir || after.Broker.AckTimeout != 5*time.Second {
		t.Fatalf("settings changed:\nbefore %+v\nafter  %+v", before, after)
	}
	if after.Site != "hub-1" || after.Broker.Password != b.Password || after.Broker.CAFile != filepath.Join(dir, CAFileName) {
		t.Fatalf("enrolment not applied: %+v", after.Broker)
	}
	text, _ := os.ReadFile(path)
	for _, want := range []string{"# Leeds Central Library's agent", "# against the council's own server"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("comment %q lost:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "# the old broker") {
		t.Errorf("the old URL's comment stayed on the new one:\n%s", text)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v: a config holding a password must not be readable by others", st.Mode().Perm())
	}
}

func TestInstallPlainBroker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte(existing), 0o600)
	os.WriteFile(filepath.Join(dir, "old-ca.pem"), newCA(t, "old").pem, 0o644)
	b := &wire.Bundle{Format: wire.BundleFormat, Version: 1, Site: "hub-1", Username: "hub-1", Password: "pa$$word", BrokerURL: "mqtt://127.0.0.1:1883"}
	res, err := Install(context.Background(), b, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.CAPath != "" || cfg.Broker.CAFile != "" || cfg.Broker.Password != "pa$$word" || cfg.Broker.URL != "tcp://127.0.0.1:1883" {
		t.Fatalf("result %+v, broker %+v", res, cfg.Broker)
	}
}

func TestInstallLeavesAnInvalidResultAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	broken := strings.Replace(existing, "interval: 1h", "interval: 1s", 1)
	os.WriteFile(path, []byte(broken), 0o600)
	os.WriteFile(filepath.Join(dir, "old-ca.pem"), newCA(t, "old").pem, 0o644)
	_, err := Install(context.Background(), bundle(t, "hub-1", newCA(t, "council")), Options{ConfigPath: path})
	if err == nil || !strings.Contains(err.Error(), path+":15: probes[0].interval: must be at least 1m0s (got 1s)") ||
		!strings.Contains(err.Error(), "left as it was") {
		t.Fatalf("got %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != broken {
		t.Fatal("config changed")
	}
	if _, err := os.Stat(filepath.Join(dir, CAFileName)); !os.IsNotExist(err) {
		t.Fatalf("CA file left behind: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files left: %v", entries)
	}

	os.WriteFile(path, []byte("site: [unclosed\n"), 0o600)
	if _, err := Install(context.Background(), bundle(t, "hub-1", newCA(t, "council")), Options{ConfigPath: path}); err == nil ||
		!strings.Contains(err.Error(), "is not valid YAML") {
		t.Fatalf("invalid YAML: %v", err)
	}
}

// serveTLS answers TLS handshakes on 127.0.0.1 with chain.
func serveTLS(t *testing.T, cert tls.Certificate, chain ...[]byte) string {
	t.Helper()
	cert.Certificate = append(cert.Certificate, chain...)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return fmt.Sprintf("mqtts://%s", ln.Addr())
}

func TestFetchCA(t *testing.T) {
	ca, other := newCA(t, "council"), newCA(t, "someone else")
	pin := wire.Fingerprint(ca.cert)[:2*wire.CodePinBytes]
	ctx := context.Background()

	url := serveTLS(t, ca.server, ca.cert.Raw)
	got, err := FetchCA(ctx, url, pin)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(ca.pem) {
		t.Fatalf("fetched %s", got)
	}
	// by name: the certificate is for localhost too
	if _, err := FetchCA(ctx, strings.Replace(url, "127.0.0.1", "localhost", 1), pin); err != nil {
		t.Fatalf("by name: %v", err)
	}

	tests := []struct {
		name, url, pin, want string
	}{
		{"the CA is not in the chain", serveTLS(t, ca.server), pin, `did not send the council CA certificate the code names`},
		{"another CA's broker", serveTLS(t, other.server, other.cert.Raw), pin, `it sent "broker", "someone else"`},
		{"a chain with the CA that does not verify", serveTLS(t, other.server, ca.cert.Raw), pin, "is not valid under the council CA"},
		{"nobody there", "mqtts://127.0.0.1:1", pin, "could not reach the broker at 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FetchCA(ctx, tt.url, tt.pin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}

	// through Install, from a code
	b := bundle(t, "hub-1", ca)
	b.BrokerURL = url
	code, err := b.EncodeCode()
	if err != nil {
		t.Fatal(err)
	}
	fromCode, err := wire.DecodeBundle([]byte(code))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	res, err := Install(ctx, fromCode, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CAFromBroker || res.CA.Subject.CommonName != "council" {
		t.Fatalf("result %+v", res)
	}
}

func TestInstallBoot(t *testing.T) {
	boot := t.TempDir()
	etc := t.TempDir()
	opts := Options{ConfigPath: filepath.Join(etc, "agent.yaml"), DataDir: t.TempDir()}
	patterns := []string{filepath.Join(boot, "hubmon-enrol*"), filepath.Join(boot, "*.hubmon-enrol*")}
	ctx := context.Background()

	if file, res, err := InstallBoot(ctx, patterns, opts); file != "" || res != nil || err != nil {
		t.Fatalf("nothing there: %q %v %v", file, res, err)
	}

	// a bundle that does not install stays, with a note saying why
	bad := filepath.Join(boot, "hub-1.hubmon-enrol")
	os.WriteFile(bad, []byte(`{"format": "hubmon-enrolment", "version": 1, "site": "hub-1"}`), 0o755)
	if _, _, err := InstallBoot(ctx, patterns, opts); err == nil || !strings.Contains(err.Error(), "no checksum") {
		t.Fatalf("invalid bundle: %v", err)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Fatal("the invalid bundle was removed")
	}
	note, _ := os.ReadFile(filepath.Join(boot, ResultFileName))
	if !strings.Contains(string(note), "could NOT be installed") || !strings.Contains(string(note), "no checksum") {
		t.Fatalf("note: %s", note)
	}

	// two bundles: which one?
	data, _ := bundle(t, "hub-1", newCA(t, "council")).MarshalFile()
	good := filepath.Join(boot, "hubmon-enrol.txt")
	os.WriteFile(good, data, 0o755)
	if _, _, err := InstallBoot(ctx, patterns, opts); err == nil || !strings.Contains(err.Error(), "found 2 enrolment files") {
		t.Fatalf("two bundles: %v", err)
	}

	os.Remove(bad)
	file, res, err := InstallBoot(ctx, patterns, opts)
	if err != nil || file != good || res.Site != "hub-1" {
		t.Fatalf("install: %q %+v %v", file, res, err)
	}
	if _, err := os.Stat(good); !os.IsNotExist(err) {
		t.Fatalf("the bundle is still on the boot partition: %v", err)
	}
	note, _ = os.ReadFile(filepath.Join(boot, ResultFileName))
	if !strings.Contains(string(note), "site hub-1 was installed") || strings.Contains(string(note), "password\":") {
		t.Fatalf("note: %s", note)
	}
	if _, err := config.Load(opts.ConfigPath, nil); err != nil {
		t.Fatal(err)
	}
	// the note is not taken for a bundle next time
	if file, _, err := InstallBoot(ctx, patterns, opts); file != "" || err != nil {
		t.Fatalf("after installing: %q %v", file, err)
	}
}

// packaged copies the Debian package's agent.yaml, which takes every
// per-hub value from a variable, into a new directory and returns its path.
func packaged(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "nfpm", "etc", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readEnv reads an environment file as systemd would.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range parseEnvFile(data) {
		if l.name != "" {
			if !l.ok {
				t.Fatalf("%s: cannot read %q", path, l.text)
			}
			env[l.name] = l.value
		}
	}
	return env
}

// TestInstallEnv: the packaged config stays as it is; the enrolment goes
// into agent.env next to it, and the config loads with that environment.
func TestInstallEnv(t *testing.T) {
	path := packaged(t)
	dir := filepath.Dir(path)
	shipped, _ := os.ReadFile(path)
	ca := newCA(t, "council")
	b := bundle(t, "hub-1", ca)
	res, err := Install(context.Background(), b, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(dir, EnvFileName)
	caPath := filepath.Join(dir, CAFileName)
	if res.Created || res.EnvPath != envPath || !res.EnvCreated || res.Probes != 4 || res.CAPath != caPath ||
		res.EchoTarget != "127.0.0.1:9471" || res.PreviousSite != "" {
		t.Fatalf("result %+v", res)
	}
	if got, _ := os.ReadFile(path); string(got) != string(shipped) {
		t.Fatal("the config was changed")
	}
	if got, _ := os.ReadFile(caPath); string(got) != string(ca.pem) {
		t.Fatal("CA file differs from the bundle's")
	}
	text, _ := os.ReadFile(envPath)
	want := envHeader + `HUBMON_SITE=hub-1
HUBMON_BROKER_URL=mqtts://127.0.0.1:8883
HUBMON_MQTT_PASSWORD=` + b.Password + `
HUBMON_CA_FILE=` + caPath + `
HUBMON_ECHO_TARGET=127.0.0.1:9471
`
	if string(text) != want {
		t.Fatalf("%s:\n%s\nwant:\n%s", envPath, text, want)
	}
	wantVars := []EnvVar{{"HUBMON_SITE", "hub-1"}, {"HUBMON_BROKER_URL", b.BrokerURL}, {"HUBMON_MQTT_PASSWORD", b.Password},
		{"HUBMON_CA_FILE", caPath}, {"HUBMON_ECHO_TARGET", "127.0.0.1:9471"}}
	if !reflect.DeepEqual(res.Env, wantVars) {
		t.Errorf("Env %v", res.Env)
	}
	if st, _ := os.Stat(envPath); st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", envPath, st.Mode().Perm())
	}
	env := readEnv(t, envPath)
	cfg, err := config.Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Site != "hub-1" || cfg.Broker.Password != b.Password || cfg.Broker.CAFile != caPath || cfg.Broker.URL != "ssl://127.0.0.1:8883" ||
		cfg.Probes[1].LineQuality.UDPTarget != "127.0.0.1:9471" {
		t.Fatalf("config with the environment: %+v %+v", cfg.Broker, cfg.Probes[1].LineQuality)
	}

	// again, to a plain broker with an awkward password, into a file that
	// someone has added to: their lines stay, in place; the CA variable goes
	os.WriteFile(envPath, []byte(`# local additions
TZ=Europe/London
HUBMON_SITE=hub-1
  HUBMON_MQTT_PASSWORD = 'old'
HUBMON_OTHER="a b"
HUBMON_SITE=hub-1-dup
HUBMON_CA_FILE=`+caPath+`
`), 0o644)
	os.Chmod(envPath, 0o644)
	pw := `pa$$ "w` + "`" + `o'rd\ x`
	plain := &wire.Bundle{Format: wire.BundleFormat, Version: 1, Site: "hub-2", Username: "hub-2", Password: pw, BrokerURL: "mqtt://broker.example:1883"}
	res, err = Install(context.Background(), plain, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.EnvCreated || res.PreviousSite != "hub-1-dup" || res.CAPath != "" || res.EchoTarget != "broker.example:9471" {
		t.Fatalf("result %+v", res)
	}
	text, _ = os.ReadFile(envPath)
	want = `# local additions
TZ=Europe/London
HUBMON_SITE=hub-2
HUBMON_MQTT_PASSWORD="pa\$\$ \"w\` + "`" + `o'rd\\ x"
HUBMON_OTHER="a b"
HUBMON_BROKER_URL=mqtt://broker.example:1883
HUBMON_ECHO_TARGET=broker.example:9471
`
	if string(text) != want {
		t.Fatalf("%s:\n%s\nwant:\n%s", envPath, text, want)
	}
	if st, _ := os.Stat(envPath); st.Mode().Perm() != 0o640 {
		t.Errorf("%s: mode %v, want 0640 (0644 less others' access)", envPath, st.Mode().Perm())
	}
	env = readEnv(t, envPath)
	if env["HUBMON_MQTT_PASSWORD"] != pw || env["HUBMON_OTHER"] != "a b" {
		t.Fatalf("read back: %q", env)
	}
	cfg, err = config.Load(path, func(k string) string { return env[k] })
	if err != nil || cfg.Broker.Password != pw || cfg.Broker.CAFile != "" || cfg.Broker.URL != "tcp://broker.example:1883" {
		t.Fatalf("config with the environment: %v %+v", err, cfg)
	}
	// a shell reads it the same
	out, err := exec.Command("sh", "-c", `set -a; . "$1"; printf %s "$HUBMON_MQTT_PASSWORD"`, "sh", envPath).Output()
	if err != nil || string(out) != pw {
		t.Fatalf("sh reads the password as %q (%v), want %q", out, err, pw)
	}

	// the echo target, when it is not the broker's host
	res, err = Install(context.Background(), plain, Options{ConfigPath: path, EchoTarget: "echo.example:7"})
	if err != nil || res.EchoTarget != "echo.example:7" || readEnv(t, envPath)["HUBMON_ECHO_TARGET"] != "echo.example:7" {
		t.Fatalf("echo target: %v %+v", err, res)
	}
	if got, _ := os.ReadFile(path); string(got) != string(shipped) {
		t.Fatal("the config was changed")
	}
}

// TestInstallEnvRefuses: a config taking its site from a variable but
// something enrol owns written out differs from the bundle, or an invalid
// result: nothing is changed.
func TestInstallEnvRefuses(t *testing.T) {
	ca := newCA(t, "council")
	tests := []struct {
		name, from, to string
		opts           Options
		want           []string
	}{
		{"a URL written out", "url: ${HUBMON_BROKER_URL}", "url: ssl://elsewhere:8883",
			Options{}, []string{"broker.url is written out in it (line ", "), not taken from a variable: write url: ${HUBMON_BROKER_URL}"}},
		{"no ca_file for the council CA", "  ca_file: \"${HUBMON_CA_FILE:-}\"\n", "",
			Options{}, []string{`broker.ca_file is missing: write ca_file: "${HUBMON_CA_FILE:-}"`}},
		{"one variable for two values", "url: ${HUBMON_BROKER_URL}", "url: ${HUBMON_SITE}",
			Options{}, []string{"site and broker.url both take ${HUBMON_SITE}, and the enrolment sets them differently"}},
		{"an invalid result", "", "",
			Options{EchoTarget: "no port"}, []string{"agent.env was left as it was", `probes[1].linequality.udp_target: must be host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := packaged(t)
			dir := filepath.Dir(path)
			data, _ := os.ReadFile(path)
			conf := strings.Replace(string(data), tt.from, tt.to, 1)
			if conf == string(data) && tt.from != "" {
				t.Fatalf("%q is not in the packaged config", tt.from)
			}
			os.WriteFile(path, []byte(conf), 0o644)
			envPath := filepath.Join(dir, EnvFileName)
			os.WriteFile(envPath, []byte("HUBMON_SITE=old\n"), 0o600)
			tt.opts.ConfigPath = path
			_, err := Install(context.Background(), bundle(t, "hub-1", ca), tt.opts)
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want %q", err, want)
				}
			}
			if got, _ := os.ReadFile(envPath); string(got) != "HUBMON_SITE=old\n" {
				t.Errorf("agent.env changed: %q", got)
			}
			if got, _ := os.ReadFile(path); string(got) != conf {
				t.Error("the config changed")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("files left: %v", entries)
			}
		})
	}
}

func TestParseEnvLine(t *testing.T) {
	for _, tt := range []struct {
		line, name, value string
		ok                bool
	}{
		{"A=b", "A", "b", true},
		{"  A = b c  ", "A", "b c", true},
		{"A=", "A", "", true},
		{`A='x "$y\'`, "A", `x "$y\`, true},
		{`A="x \"\$y\\ \n"`, "A", `x "$y\ \n`, true},
		{`A=x\ y\\`, "A", `x y\`, true},
		{"A=b # not a comment", "A", "b # not a comment", true},
		{`A="open`, "A", "", false},
		{`A='open`, "A", "", false},
		{`A=continued\`, "A", "", false},
		{"# A=b", "", "", false},
		{"; A=b", "", "", false},
		{"", "", "", false},
		{"no assignment", "", "", false},
		{"1A=b", "", "", false},
		{"export A=b", "", "", false},
	} {
		name, value, ok := parseEnvLine(tt.line)
		if name != tt.name || value != tt.value || ok != tt.ok {
			t.Errorf("parseEnvLine(%q) = %q, %q, %v; want %q, %q, %v", tt.line, name, value, ok, tt.name, tt.value, tt.ok)
		}
	}
}

// TestBootUnit: the Debian package's hubmon-enrol.service runs when a bundle
// is where InstallBoot looks, and no more often.
func TestBootUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "systemd", "hubmon-enrol.service"))
	if err != nil {
		t.Fatal(err)
	}
	var globs []string
	for _, l := range strings.Split(string(unit), "\n") {
		if g, ok := strings.CutPrefix(l, "ConditionPathExistsGlob=|"); ok {
			globs = append(globs, g)
		}
	}
	if !reflect.DeepEqual(globs, DefaultBootPatterns) {
		t.Errorf("hubmon-enrol.service looks for %q, InstallBoot in %q", globs, DefaultBootPatterns)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/hubmon-agent enrol -boot ") {
		t.Error("hubmon-enrol.service does not run hubmon-agent enrol -boot")
	}
}
