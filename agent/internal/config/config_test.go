package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the same zones on every machine
)

var update = flag.Bool("update", false, "rewrite testdata/invalid-*.err from the errors Load returns")

// secret is the value of every variable the tests set: no error may show it.
const secret = "s3cret"

func testEnv(name string) string {
	switch name {
	case "HUBMON_MQTT_PASSWORD":
		return secret + "-password"
	case "HUBMON_BAD_URL":
		return "ftp://" + secret + ".example.org/x"
	}
	return ""
}

// TestLoadInvalid loads each testdata/invalid-*.yml and compares the error
// with invalid-*.err. Run with -update to rewrite the .err files.
func TestLoadInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/invalid-*.yml: %v", err)
	}
	for _, file := range files {
		golden := strings.TrimSuffix(file, ".yml") + ".err"
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file, testEnv)
			if err == nil {
				t.Fatalf("Load succeeded, want an error; config: %+v", c)
			}
			got := err.Error() + "\n"
			if strings.Contains(got, secret) {
				t.Errorf("the error shows a variable's value:\n%s", got)
			}
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) error differs from %s (run go test -update to accept it)\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
	// Every golden file has its input.
	errs, _ := filepath.Glob("testdata/invalid-*.err")
	for _, e := range errs {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".yml"); err != nil {
			t.Errorf("%s has no .yml", e)
		}
	}
}

func TestLoadValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid-*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/valid-*.yml: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file, testEnv)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Load: %v", err)
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/valid-full.yml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	nineToFive := []string{"09:00-17:00"}
	want := &Config{
		Site:     "leeds-central-library",
		Timezone: "Europe/London",
		OpeningHours: &OpeningHours{
			Monday: nineToFive, Tuesday: nineToFive, Wednesday: []string{"09:00-12:30", "13:30-19:00"},
			Thursday: nineToFive, Friday: nineToFive, Saturday: []string{"10:00-13:00"}, Sunday: []string{},
		},
		DataBudget: DataBudget{Monthly: "20GB"},
		DataDir:    "/var/lib/hubmon-agent",
		Broker: Broker{
			URL:            "ssl://hubmon.example.org:8883",
			Username:       "leeds-central-library",
			Password:       secret + "-password",
			CAFile:         filepath.Join("testdata", "tls", "ca.pem"),
			CertFile:       filepath.Join("testdata", "tls", "agent.pem"),
			KeyFile:        filepath.Join("testdata", "tls", "agent-key.pem"),
			ConnectTimeout: 10 * time.Second,
			AckTimeout:     60 * time.Second,
			StatusInterval: 60 * time.Second,
		},
		Outbox: Outbox{MaxMessages: 100000},
		Probes: []Probe{
			{
				Name: "internet", Kind: "speedtest", Timeout: 2 * time.Minute,
				Schedule:  &Schedule{TestsPerDay: 4, Windows: []string{"opening_hours", "business_peak"}},
				Speedtest: &Speedtest{ServerIDs: []string{"12345", "23456"}, Connections: 4, Duration: 10 * time.Second},
			},
			{
				Name: "collector", Kind: "speedtest",
				Interval: 24 * time.Hour, Splay: time.Hour, FirstRun: 5 * time.Minute, Timeout: 3 * time.Minute,
				Speedtest: &Speedtest{ServerURL: "https://hubmon.example.org:8080/", Connections: 2, Duration: 15 * time.Second},
			},
			{
				Name: "line", Kind: "linequality", Interval: time.Minute, Timeout: 90 * time.Second,
				LineQuality: &LineQuality{UDPTarget: "hubmon.example.org:9471", ICMPTarget: "1.1.1.1",
					SendInterval: 1500 * time.Millisecond, Timeout: 2 * time.Second, OutageAfter: 2, GatewayCheck: true},
			},
			{
				Name: "dns", Kind: "dns", Interval: 5 * time.Minute, Splay: 30 * time.Second, FirstRun: 10 * time.Second, Timeout: time.Minute,
				DNS: &DNS{Names: []string{"www.gov.uk", "www.nhs.uk", "www.leeds.gov.uk"}, Resolvers: []string{"system", "1.1.1.1:53"}, Timeout: 5 * time.Second},
			},
			{
				Name: "services", Kind: "http", Interval: 15 * time.Minute, Splay: time.Minute, FirstRun: 15 * time.Second, Timeout: 2 * time.Minute,
				HTTP: &HTTP{Services: []HTTPService{
					{"gov-uk", "https://www.gov.uk/"}, {"nhs", "https://www.nhs.uk/"},
					{"universal-credit", "https://www.universal-credit.service.gov.uk/"}, {"council", "https://www.leeds.gov.uk/"},
				}, Timeout: 15 * time.Second},
			},
			{
				Name: "wifi", Kind: "wifi", Interval: 5 * time.Minute, FirstRun: 5 * time.Second, Timeout: 10 * time.Second,
				WiFi: &WiFi{Interface: "wlan0"},
			},
		},
	}
	diff(t, c, want)
	if !c.Broker.TLS() {
		t.Error("Broker.TLS() = false for ssl://")
	}
	if got, want := c.OutboxPath(), "/var/lib/hubmon-agent/outbox.db"; got != want {
		t.Errorf("OutboxPath() = %q, want %q", got, want)
	}
	if got := c.DataBudget.Bytes(); got != 20e9 {
		t.Errorf("DataBudget.Bytes() = %d, want 20e9", got)
	}
	if got := c.Location().String(); got != "Europe/London" {
		t.Errorf("Location() = %s", got)
	}
	wed := []TimeRange{{9 * time.Hour, 12*time.Hour + 30*time.Minute}, {12 * time.Hour, 14 * time.Hour}, {13*time.Hour + 30*time.Minute, 19 * time.Hour}}
	diff(t, c.WindowRanges(c.Probes[0].Schedule.Windows, time.Wednesday), wed)
	diff(t, c.WindowRanges(c.Probes[0].Schedule.Windows, time.Sunday), []TimeRange{{12 * time.Hour, 14 * time.Hour}})
}

// TestParseDefaults checks what a minimal config turns into.
func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`
site: hub-1
data_dir: state
broker: {url: "MQTT://[::1]:1883", password: pw}
probes: [{name: local, kind: speedtest}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Site = "hub-1"
	want.DataDir = "state" // Parse leaves relative paths alone
	want.Broker.URL = "tcp://[::1]:1883"
	want.Broker.Username = "hub-1"
	want.Broker.Password = "pw"
	want.Probes = []Probe{{
		Name: "local", Kind: "speedtest",
		Interval: 6 * time.Hour, Splay: 5 * time.Minute, FirstRun: 30 * time.Second, Timeout: 2 * time.Minute,
		Speedtest: &Speedtest{Connections: 4, Duration: 10 * time.Second},
	}}
	diff(t, c, want)
	if c.Broker.TLS() {
		t.Error("Broker.TLS() = true for tcp://")
	}
}

// TestParseKindDefaults checks the defaults of each kind, and the default
// schedule of a speedtest at a site with opening hours.
func TestParseKindDefaults(t *testing.T) {
	c, err := Parse([]byte(`
site: hub-1
data_dir: state
opening_hours: {monday: ["09:00-17:00"]}
broker: {url: "tcp://h:1883", password: pw}
probes:
  - {name: scheduled, kind: speedtest}
  - {name: every-6h, kind: speedtest, interval: 6h}
  - {name: line, kind: linequality, linequality: {udp_target: "127.0.0.1:9471"}}
  - {name: line-5m, kind: linequality, interval: 5m, linequality: {udp_target: "127.0.0.1:9471"}}
  - {name: dns, kind: dns}
  - {name: http, kind: http}
  - {name: wifi, kind: wifi}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &Speedtest{Connections: 4, Duration: 10 * time.Second}
	lq := &LineQuality{UDPTarget: "127.0.0.1:9471", SendInterval: 1500 * time.Millisecond, Timeout: 2 * time.Second, OutageAfter: 2, GatewayCheck: true}
	want := []Probe{
		{Name: "scheduled", Kind: "speedtest", Timeout: 2 * time.Minute,
			Schedule: &Schedule{TestsPerDay: 4, Windows: []string{"opening_hours"}}, Speedtest: st},
		{Name: "every-6h", Kind: "speedtest", Interval: 6 * time.Hour, Splay: 5 * time.Minute, FirstRun: 30 * time.Second, Timeout: 2 * time.Minute, Speedtest: st},
		{Name: "line", Kind: "linequality", Interval: time.Minute, Timeout: 90 * time.Second, LineQuality: lq},
		{Name: "line-5m", Kind: "linequality", Interval: 5 * time.Minute, Timeout: 5*time.Minute + 30*time.Second, LineQuality: lq},
		{Name: "dns", Kind: "dns", Interval: 5 * time.Minute, Splay: 30 * time.Second, FirstRun: 10 * time.Second, Timeout: time.Minute,
			DNS: &DNS{Names: []string{"www.gov.uk", "www.nhs.uk"}, Resolvers: []string{"system"}, Timeout: 5 * time.Second}},
		{Name: "http", Kind: "http", Interval: 15 * time.Minute, Splay: time.Minute, FirstRun: 15 * time.Second, Timeout: 2 * time.Minute,
			HTTP: &HTTP{Services: []HTTPService{
				{"gov-uk", "https://www.gov.uk/"}, {"nhs", "https://www.nhs.uk/"},
				{"universal-credit", "https://www.universal-credit.service.gov.uk/"},
			}, Timeout: 15 * time.Second}},
		{Name: "wifi", Kind: "wifi", Interval: 5 * time.Minute, FirstRun: 5 * time.Second, Timeout: 10 * time.Second, WiFi: &WiFi{}},
	}
	diff(t, c.Probes, want)
	if c.Timezone != "Europe/London" || c.DataBudget.Bytes() != 0 {
		t.Errorf("timezone %q, budget %d", c.Timezone, c.DataBudget.Bytes())
	}
	// a schedule that names no windows gets the opening hours
	c, err = Parse([]byte(`
site: hub-1
data_dir: state
opening_hours: {saturday: ["10:00-12:00"]}
broker: {url: "tcp://h:1883", password: pw}
probes: [{name: st, kind: speedtest, schedule: {tests_per_day: 2}}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, c.Probes[0].Schedule, &Schedule{TestsPerDay: 2, Windows: []string{"opening_hours"}})
	diff(t, c.WindowRanges(c.Probes[0].Schedule.Windows, time.Saturday), []TimeRange{{10 * time.Hour, 12 * time.Hour}})
	if got := c.WindowRanges(c.Probes[0].Schedule.Windows, time.Friday); len(got) != 0 {
		t.Errorf("friday: %v, want closed", got)
	}
}

func TestParseAnchors(t *testing.T) {
	c, err := Load("testdata/valid-anchors.yml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.DataDir, filepath.Join("testdata", "state"); got != want {
		t.Errorf("data_dir = %q, want %q", got, want)
	}
	if got, want := c.Broker.URL, "ssl://broker.example.org:8883"; got != want {
		t.Errorf("broker.url = %q, want %q", got, want)
	}
	if got, want := c.Broker.Password, "pa$word-"+secret+"-password"; got != want {
		t.Errorf("broker.password = %q, want %q", got, want)
	}
	wantProbes := []Probe{
		{
			Name: "internet", Kind: "speedtest", Interval: 4 * time.Hour, FirstRun: 30 * time.Second, Timeout: 2 * time.Minute,
			Speedtest: &Speedtest{Connections: 8, Duration: 5 * time.Second},
		},
		{
			Name: "collector", Kind: "speedtest", Interval: 4 * time.Hour, FirstRun: 30 * time.Second, Timeout: 2 * time.Minute,
			Speedtest: &Speedtest{ServerURL: "http://10.0.0.1:8080", Connections: 8, Duration: 5 * time.Second},
		},
	}
	diff(t, c.Probes, wantProbes)
}

// TestLoadRelativePaths checks that paths are resolved against the
// directory of the config file, not the working directory.
func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yml")
	err := os.WriteFile(path, []byte(`
site: hub-1
data_dir: state
broker: {url: "ssl://broker:8883", password: pw, ca_file: ca.pem}
probes: [{name: local, kind: speedtest}]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "ca.pem"); c.Broker.CAFile != want {
		t.Errorf("ca_file = %q, want %q", c.Broker.CAFile, want)
	}
	if want := filepath.Join(dir, "state", "outbox.db"); c.OutboxPath() != want {
		t.Errorf("OutboxPath() = %q, want %q", c.OutboxPath(), want)
	}
}

// TestLoadOptionalCAFile: ca_file: ${HUBMON_CA_FILE:-} is a council CA for
// a TLS broker and nothing at all for a plain one (which refuses a ca_file),
// so one config serves both (the Debian package's).
func TestLoadOptionalCAFile(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "hubmon-ca.pem")
	if err := os.WriteFile(ca, []byte("ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yml")
	err := os.WriteFile(path, []byte(`
site: hub-1
data_dir: state
broker: {url: "${URL}", password: pw, ca_file: "${HUBMON_CA_FILE:-}"}
probes: [{name: local, kind: speedtest}]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"URL": "tcp://broker:1883"}, ""},
		{map[string]string{"URL": "tcp://broker:1883", "HUBMON_CA_FILE": ""}, ""},
		{map[string]string{"URL": "ssl://broker:8883"}, ""}, // the system's roots
		{map[string]string{"URL": "ssl://broker:8883", "HUBMON_CA_FILE": ca}, ca},
	} {
		c, err := Load(path, func(k string) string { return tt.env[k] })
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
		} else if c.Broker.CAFile != tt.want {
			t.Errorf("%v: ca_file %q, want %q", tt.env, c.Broker.CAFile, tt.want)
		}
	}
	// with a plain broker a CA file is still a mistake
	_, err = Load(path, func(k string) string {
		return map[string]string{"URL": "tcp://broker:1883", "HUBMON_CA_FILE": ca}[k]
	})
	if want := "broker.ca_file: only for an ssl:// broker; the url is tcp:// (got a value from ${HUBMON_CA_FILE}, not shown)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a CA file with a plain broker: %v, want %q", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want a not-exist error", err)
	}
}

func TestBrokerURL(t *testing.T) {
	for _, tt := range []struct {
		url, want string
		tls       bool
	}{
		{"tcp://h:1883", "tcp://h:1883", false},
		{"mqtt://h:1883", "tcp://h:1883", false},
		{"TCP://h:1883", "tcp://h:1883", false},
		{"ssl://h:8883", "ssl://h:8883", true},
		{"tls://h:8883", "ssl://h:8883", true},
		{"mqtts://h:8883/", "ssl://h:8883/", true},
		{"ssl://[2001:db8::1]:8883", "ssl://[2001:db8::1]:8883", true},
	} {
		t.Run(tt.url, func(t *testing.T) {
			c := validConfig(t)
			c.Broker.URL = tt.url
			c.Broker.CAFile = ""
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.Broker.TLS(); got != tt.tls {
				t.Errorf("TLS() = %v, want %v", got, tt.tls)
			}
			if got := canonicalBrokerURL(tt.url); got != tt.want {
				t.Errorf("canonical URL = %q, want %q", got, tt.want)
			}
		})
	}
}

// validConfig returns a config that passes Validate.
func validConfig(tb testing.TB) *Config {
	tb.Helper()
	c := Defaults()
	c.Site = "hub-1"
	c.DataDir = tb.TempDir()
	c.Broker.URL = "ssl://broker.example.org:8883"
	c.Broker.Password = "pw"
	c.Broker.CAFile = "testdata/tls/ca.pem"
	c.Probes = []Probe{newProbe("local", "speedtest", false)}
	return c
}

// newProbe returns a probe of kind with every default, as Load makes it
// when the file names only the name and the kind.
func newProbe(name, kind string, openingHours bool) Probe {
	var p Probe
	p.applyDefaults()
	p.Name, p.Kind = name, kind
	p.completeTimings(openingHours)
	p.completeSection()
	return p
}

// TestValidate checks one rule at a time on an otherwise valid config.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(c *Config)
		want   string // the whole error; "" for none
	}{
		{"valid", func(c *Config) {}, ""},
		{"site missing", func(c *Config) { c.Site = "" }, "site: required"},
		{"site too long", func(c *Config) { c.Site = strings.Repeat("a", 64) },
			`site: must be lower-case letters, digits and inner hyphens, at most 63 characters (got "` + strings.Repeat("a", 64) + `")`},
		{"data_dir missing", func(c *Config) { c.DataDir = "" }, "data_dir: required"},
		{"password never shown", func(c *Config) { c.Broker.URL = "tcp://h:1"; c.Broker.CAFile = "" }, ""},
		{"no port", func(c *Config) { c.Broker.URL = "ssl://h" },
			`broker.url: the port is missing, like :1883 (tcp) or :8883 (ssl) (got "ssl://h")`},
		{"port zero", func(c *Config) { c.Broker.URL = "ssl://h:0" },
			`broker.url: the port must be a number from 1 to 65535 (got "ssl://h:0")`},
		{"no host", func(c *Config) { c.Broker.URL = "ssl://:8883" },
			`broker.url: the host is missing (got "ssl://:8883")`},
		{"opaque", func(c *Config) { c.Broker.URL = "ssl:h:8883" },
			`broker.url: the scheme must be tcp or ssl (mqtt, mqtts and tls are accepted too) (got "ssl:h:8883")` + "\n" +
				`broker.url: must be scheme://host:port, like tcp://127.0.0.1:1883 (got "ssl:h:8883")`},
		{"query", func(c *Config) { c.Broker.URL = "ssl://h:8883?x=1" },
			`broker.url: must be only scheme://host:port, with no path or query (got "ssl://h:8883?x=1")`},
		{"credentials in url", func(c *Config) { c.Broker.URL = "ssl://u:pw@h:8883" },
			`broker.url: must not hold a user name or password: set them in username and password (got "ssl://u:xxxxx@h:8883")`},
		{"key without cert", func(c *Config) { c.Broker.KeyFile = "testdata/tls/agent-key.pem" },
			"broker.cert_file: required with key_file"},
		{"ack_timeout", func(c *Config) { c.Broker.AckTimeout = time.Second },
			"broker.ack_timeout: must be at least 5s (got 1s)"},
		{"status_interval", func(c *Config) { c.Broker.StatusInterval = 2 * time.Hour },
			"broker.status_interval: must be at most 1h0m0s (got 2h0m0s)"},
		{"max_messages", func(c *Config) { c.Outbox.MaxMessages = 10_000_001 },
			"outbox.max_messages: must be at most 10000000 (got 10000001)"},
		{"interval", func(c *Config) { c.Probes[0].Interval = time.Second },
			"probes[0].interval: must be at least 1m0s (got 1s)"},
		{"interval 7 days", func(c *Config) { c.Probes[0].Interval = 7 * 24 * time.Hour }, ""},
		{"splay equal to interval", func(c *Config) { c.Probes[0].Splay = c.Probes[0].Interval }, ""},
		{"splay above interval", func(c *Config) { c.Probes[0].Splay = c.Probes[0].Interval + 1 },
			"probes[0].splay: must be at most the interval, 6h0m0s (got 6h0m0.000000001s)"},
		{"timeout just enough", func(c *Config) { c.Probes[0].Timeout = 50*time.Second + 1 }, ""},
		{"timeout too short for speedtest", func(c *Config) { c.Probes[0].Speedtest.Duration = time.Minute },
			"probes[0].timeout: must be more than 2m30s, 2 × speedtest.duration + 30s (got 2m0s)"},
		{"speedtest missing", func(c *Config) { c.Probes[0].Speedtest = nil },
			"probes[0].speedtest: required for kind speedtest"},
		{"kind missing", func(c *Config) { c.Probes[0].Kind = "" },
			"probes[0].kind: required; known kinds: speedtest, linequality, dns, http, wifi"},
		{"every kind", func(c *Config) {
			for _, k := range []string{"linequality", "dns", "http", "wifi"} {
				c.Probes = append(c.Probes, newProbe(k, k, false))
			}
			c.Probes[1].LineQuality.UDPTarget = "127.0.0.1:9471"
		}, ""},
		{"linequality interval 10s", func(c *Config) {
			p := newProbe("line", "linequality", false)
			p.Interval, p.Timeout, p.LineQuality.UDPTarget = 10*time.Second, 22*time.Second, "[::1]:9471"
			c.Probes = append(c.Probes, p)
		}, ""},
		{"linequality interval 9s", func(c *Config) {
			p := newProbe("line", "linequality", false)
			p.Interval, p.LineQuality.UDPTarget = 9*time.Second, "h:1"
			c.Probes = append(c.Probes, p)
		}, "probes[1].interval: must be at least 10s (got 9s)"},
		{"linequality interval 1h", func(c *Config) {
			p := newProbe("line", "linequality", false)
			p.Interval, p.Timeout, p.LineQuality.UDPTarget = time.Hour+time.Second, time.Hour+time.Minute, "h:1"
			c.Probes = append(c.Probes, p)
		}, "probes[1].interval: must be at most 1h0m0s (got 1h0m1s)"},
		{"dns interval 59s", func(c *Config) {
			p := newProbe("dns", "dns", false)
			p.Interval = 59 * time.Second
			c.Probes = append(c.Probes, p)
		}, "probes[1].interval: must be at least 1m0s (got 59s)"},
		{"too many lookups", func(c *Config) {
			p := newProbe("dns", "dns", false)
			p.DNS.Resolvers = nil
			for i := range 33 {
				p.DNS.Resolvers = append(p.DNS.Resolvers, fmt.Sprintf("10.0.0.%d:53", i))
			}
			c.Probes = append(c.Probes, p)
		}, "probes[1].dns.names: names × resolvers must be at most 64 (got 2 × 33)"},
		{"wifi section on speedtest", func(c *Config) { c.Probes[0].WiFi = &WiFi{} },
			"probes[0].wifi: only for kind wifi, not speedtest"},
		{"dns section missing", func(c *Config) {
			p := newProbe("dns", "dns", false)
			p.DNS = nil
			c.Probes = append(c.Probes, p)
		}, "probes[1].dns: required for kind dns"},
		{"scheduled speedtest", func(c *Config) {
			c.OpeningHours = &OpeningHours{Monday: []string{"09:00-17:00"}}
			c.Probes[0] = newProbe("local", "speedtest", true)
		}, ""},
		{"schedule with interval", func(c *Config) {
			c.Probes[0].Schedule = &Schedule{TestsPerDay: 2, Windows: []string{"always"}}
		}, "probes[0].interval: not used with schedule, which sets the times; leave it out (got 6h0m0s)\n" +
			"probes[0].splay: not used with schedule, which sets the times; leave it out (got 5m0s)\n" +
			"probes[0].first_run: not used with schedule, which sets the times; leave it out (got 30s)"},
		{"opening_hours window without opening hours", func(c *Config) {
			c.Probes[0].Interval, c.Probes[0].Splay, c.Probes[0].FirstRun = 0, 0, 0
			c.Probes[0].Schedule = &Schedule{TestsPerDay: 2, Windows: []string{"opening_hours"}}
		}, `probes[0].schedule.windows[0]: needs opening_hours (at the top of the file), which are not set (got "opening_hours")`},
		{"timezone UTC", func(c *Config) { c.Timezone = "UTC" }, ""},
		{"timezone Local", func(c *Config) { c.Timezone = "Local" },
			`timezone: unknown time zone: use an IANA zone name, like "Europe/London" (got "Local")`},
		{"budget too large", func(c *Config) { c.DataBudget.Monthly = "1001TB" },
			`data_budget.monthly: must be at most 1000TB (got "1001TB")`},
		{"opening hours back to back", func(c *Config) {
			c.OpeningHours = &OpeningHours{Friday: []string{"13:00-24:00", "00:00-02:00", "02:00-13:00"}}
		}, ""},
		{"opening hours overlap a long range", func(c *Config) {
			c.OpeningHours = &OpeningHours{Friday: []string{"08:00-20:00", "09:00-10:00", "11:00-12:00"}}
		}, "opening_hours.friday[1]: overlaps friday[0], \"08:00-20:00\" (got \"09:00-10:00\")\n" +
			"opening_hours.friday[2]: overlaps friday[0], \"08:00-20:00\" (got \"11:00-12:00\")"},
		{"server_url and server_ids", func(c *Config) {
			c.Probes[0].Speedtest.ServerURL = "http://s"
			c.Probes[0].Speedtest.ServerIDs = []string{"1"}
		}, `probes[0].speedtest.server_ids: cannot be used with server_url; set one or the other (got ["1"])`},
		{"server_url without host", func(c *Config) { c.Probes[0].Speedtest.ServerURL = "https:///x" },
			`probes[0].speedtest.server_url: must be an http:// or https:// URL with a host (got "https:///x")`},
		{"empty server id", func(c *Config) { c.Probes[0].Speedtest.ServerIDs = []string{""} },
			`probes[0].speedtest.server_ids[0]: a server id is digits (got "")`},
		{"connections", func(c *Config) { c.Probes[0].Speedtest.Connections = 17 },
			"probes[0].speedtest.connections: must be at most 16 (got 17)"},
		{"duplicate name", func(c *Config) { c.Probes = append(c.Probes, c.Probes[0]) },
			`probes[1].name: already used by probes[0] (got "local")`},
		{"two problems", func(c *Config) { c.Site = "A"; c.Probes = nil },
			"site: must be lower-case letters, digits and inner hyphens, at most 63 characters (got \"A\")\nprobes: at least one probe is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.change(c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant:\n%s", got, tt.want)
			}
			if strings.Contains(got, "pw") && !strings.Contains(tt.want, "pw") {
				t.Errorf("the error shows the password")
			}
		})
	}
}

func TestExpand(t *testing.T) {
	const badVar = `a variable is written ${NAME} or ${NAME:-default}, NAME being letters, digits and underscores, and the default without a "$"`
	env := func(name string) string {
		return map[string]string{"A": "x", "B_2": "y$z", "_C": "{}"}[name]
	}
	for _, tt := range []struct {
		in, want string
		vars     []string
		problems []string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x", vars: []string{"A"}},
		{in: "a${A}b${B_2}c${_C}", want: "axby$zc{}", vars: []string{"A", "B_2", "_C"}},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$x", vars: []string{"A"}},
		{in: "${UNSET}", problems: []string{"environment variable UNSET is not set (or is empty)"}},
		{in: "${U1}${U2}", problems: []string{
			"environment variable U1 is not set (or is empty)",
			"environment variable U2 is not set (or is empty)",
		}},
		{in: "$A", problems: []string{`a "$" must start a variable, ${NAME}, or be doubled, $$, for a literal "$"`}},
		{in: "a$", problems: []string{`a "$" must start a variable, ${NAME}, or be doubled, $$, for a literal "$"`}},
		{in: "${A", problems: []string{`"${" without a closing "}"`}},
		{in: "${}", problems: []string{`"${}": ` + badVar}},
		{in: "${9A}", problems: []string{`"${9A}": ` + badVar}},
		// a default, for a setting that may be left out
		{in: "${A:-d}", want: "x", vars: []string{"A"}},
		{in: "${UNSET:-d}", want: "d", vars: []string{"UNSET"}},
		{in: "${UNSET:-}", want: "", vars: []string{"UNSET"}},
		{in: "<${UNSET:-a b:-c}>", want: "<a b:-c>", vars: []string{"UNSET"}},
		{in: "${UNSET:-$$}", problems: []string{`"${UNSET:-$$}": ` + badVar}},
		{in: "${A-x}", problems: []string{`"${A-x}": ` + badVar}},
		{in: "${A:=x}", problems: []string{`"${A:=x}": ` + badVar}},
		{in: "${:-x}", problems: []string{`"${:-x}": ` + badVar}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, vars, problems := expand(tt.in, env)
			if got != tt.want || !reflect.DeepEqual(vars, tt.vars) || !reflect.DeepEqual(problems, tt.problems) {
				t.Errorf("expand(%q) = %q, %q, %q; want %q, %q, %q", tt.in, got, vars, problems, tt.want, tt.vars, tt.problems)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		msg  string
	}{
		{"0", 0, ""},
		{"0s", 0, ""},
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"-5m", -5 * time.Minute, ""},
		{"30", 0, `not a duration: it needs a unit, like "30s" or "5m"`},
		{"1.5", 0, `not a duration: it needs a unit, like "30s" or "5m"`},
		{"5 minutes", 0, `not a duration: write a number and a unit (h, m, s, ms), like "90s", "5m" or "1h30m"`},
		{"5min", 0, `not a duration: write a number and a unit (h, m, s, ms), like "90s", "5m" or "1h30m"`},
		{"", 0, `not a duration: write a number and a unit (h, m, s, ms), like "90s", "5m" or "1h30m"`},
		{"7d", 0, `not a duration: days and weeks are not units; use hours, like "24h" or "168h"`},
		{"1d12h", 0, `not a duration: days and weeks are not units; use hours, like "24h" or "168h"`},
		{"2 days", 0, `not a duration: days and weeks are not units; use hours, like "24h" or "168h"`},
		{"1w", 0, `not a duration: days and weeks are not units; use hours, like "24h" or "168h"`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, msg := parseDuration(tt.in)
			if got != tt.want || msg != tt.msg {
				t.Errorf("parseDuration(%q) = %v, %q; want %v, %q", tt.in, got, msg, tt.want, tt.msg)
			}
		})
	}
}

// TestParseLines checks that Parse (no file name) numbers its problems by
// line, and names the field of a problem found by validation at the line of
// its nearest enclosing field.
func TestParseLines(t *testing.T) {
	_, err := Parse([]byte("site: hub-1\ndata_dir: /d\nbroker:\n  url: tcp://h:1\n  password: pw\nprobes:\n  - name: x\n"), nil)
	want := "line 7: probes[0].kind: required; known kinds: speedtest, linequality, dns, http, wifi"
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func diff(tb testing.TB, got, want any) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("got:\n%s\nwant:\n%s", dump(got), dump(want))
	}
}

// dump prints v as indented JSON (durations in nanoseconds), so that a
// difference is easy to spot.
func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
