package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
	want := &Config{
		Database: "/var/lib/hubmon-collector/hubmon.db",
		HTTP:     HTTP{Listen: ":9470", ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second},
		MQTT: MQTT{
			ClientID:       "hubmon-collector",
			Username:       "hubmon-collector",
			Password:       secret + "-password",
			ConnectTimeout: 10 * time.Second,
			Topics:         []string{"hubmon/v1/+/measurement", "hubmon/v1/+/status"},
		},
		EmbeddedBroker: EmbeddedBroker{
			Listen:         ":1883",
			PasswordFile:   filepath.Join("testdata", "mosquitto.passwd"),
			Readers:        []string{"ops"},
			MaxPacketBytes: 70000,
		},
		SpeedtestServer: SpeedtestServer{Enabled: true, Listen: ":8080", MaxUploadBytes: 64 << 20, MaxConnections: 64},
		EchoServer:      EchoServer{Enabled: true, Listen: ":9471", RatePerSecond: 20, Burst: 40},
		SitesFile:       filepath.Join("testdata", "sites-valid.yml"),
		Thresholds:      Thresholds{BelowRatio: "0.9", Profiles: DefaultProfiles()},
		Gaps:            Gaps{Interval: 5 * time.Minute, Presence: 15 * time.Minute},
	}
	diff(t, c, want)
	if !c.Embedded() {
		t.Error("Embedded() = false with mqtt.url empty")
	}
}

func TestLoadExternal(t *testing.T) {
	c, err := Load("testdata/valid-external.yml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Database = filepath.Join("testdata", "hubmon.db")
	want.MQTT.URL = "ssl://mosquitto.example.org:8883"
	want.MQTT.Password = secret + "-password"
	want.MQTT.CAFile = filepath.Join("testdata", "tls", "ca.pem")
	want.MQTT.CertFile = filepath.Join("testdata", "tls", "collector.pem")
	want.MQTT.KeyFile = filepath.Join("testdata", "tls", "collector-key.pem")
	want.MQTT.Topics = []string{"hubmon/v1/lib-001/measurement", "hubmon/v1/lib-001/status"}
	want.EmbeddedBroker.PasswordFile = filepath.Join("testdata", "does-not-matter.passwd")
	want.EmbeddedBroker.MaxPacketBytes = 1
	diff(t, c, want)
	if c.Embedded() {
		t.Error("Embedded() = true with mqtt.url set")
	}
	if !c.MQTT.TLS() {
		t.Error("MQTT.TLS() = false for tls://")
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("database: h.db\nembedded_broker: {password_file: testdata/mosquitto.passwd}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Database = "h.db"
	want.EmbeddedBroker.PasswordFile = "testdata/mosquitto.passwd"
	diff(t, c, want)
}

// TestLoadRelativePaths checks that paths are resolved against the
// directory of the config file, not the working directory.
func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte("u:x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "collector.yml")
	if err := os.WriteFile(path, []byte("database: db/h.db\nembedded_broker: {password_file: passwd}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "db", "h.db"); c.Database != want {
		t.Errorf("database = %q, want %q", c.Database, want)
	}
	if want := filepath.Join(dir, "passwd"); c.EmbeddedBroker.PasswordFile != want {
		t.Errorf("password_file = %q, want %q", c.EmbeddedBroker.PasswordFile, want)
	}
}

// validConfig returns a config, with the embedded broker, that passes
// Validate.
func validConfig(tb testing.TB) *Config {
	tb.Helper()
	c := Defaults()
	c.Database = filepath.Join(tb.TempDir(), "hubmon.db")
	c.EmbeddedBroker.PasswordFile = "testdata/mosquitto.passwd"
	return c
}

func external(c *Config) {
	c.MQTT.URL = "ssl://broker:8883"
	c.EmbeddedBroker = EmbeddedBroker{}
}

// TestValidate checks one rule at a time on an otherwise valid config.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(c *Config)
		want   string // the whole error; "" for none
	}{
		{"valid", func(c *Config) {}, ""},
		{"database missing", func(c *Config) { c.Database = "" }, "database: required"},
		{"database is a directory", func(c *Config) { c.Database = "testdata" },
			`database: is a directory, not a file (got "testdata")`},
		{"http listen without port", func(c *Config) { c.HTTP.Listen = "localhost" },
			`http.listen: must be host:port, like ":9470" or "127.0.0.1:9470" (got "localhost")`},
		{"http listen named port", func(c *Config) { c.HTTP.Listen = ":http" },
			`http.listen: the port must be a number from 0 to 65535 (got ":http")`},
		{"http listen port 0", func(c *Config) { c.HTTP.Listen = "127.0.0.1:0"; c.EmbeddedBroker.Listen = "127.0.0.1:0" }, ""},
		{"write_timeout", func(c *Config) { c.HTTP.WriteTimeout = 0 },
			"http.write_timeout: must be at least 1s (got 0s)"},
		{"password file missing", func(c *Config) { c.EmbeddedBroker.PasswordFile = "" },
			"embedded_broker.password_file: required"},
		{"max_packet_bytes", func(c *Config) { c.EmbeddedBroker.MaxPacketBytes = 2 << 20 },
			"embedded_broker.max_packet_bytes: must be at most 1048576 (got 2097152)"},
		{"duplicate reader", func(c *Config) { c.EmbeddedBroker.Readers = []string{"a", "b", "a"} },
			`embedded_broker.readers[2]: already listed as readers[0] (got "a")`},
		{"listeners on different hosts", func(c *Config) {
			c.HTTP.Listen = "127.0.0.1:1883"
			c.EmbeddedBroker.Listen = "192.0.2.1:1883"
		}, ""},
		{"listener clash", func(c *Config) { c.EmbeddedBroker.Listen = "0.0.0.0:9470" },
			`embedded_broker.listen: same port as http.listen, ":9470" (got "0.0.0.0:9470")`},
		{"speedtest server disabled is not checked", func(c *Config) { c.SpeedtestServer.Listen = ":9470" }, ""},
		{"speedtest server clash", func(c *Config) {
			c.SpeedtestServer.Enabled = true
			c.SpeedtestServer.Listen = "[::]:1883"
		}, `speedtest_server.listen: same port as embedded_broker.listen, ":1883" (got "[::]:1883")`},
		{"external: embedded broker ignored", external, ""},
		{"external: clash with embedded listen ignored", func(c *Config) {
			external(c)
			c.HTTP.Listen = ":1883"
		}, ""},
		{"external: bad scheme", func(c *Config) { external(c); c.MQTT.URL = "ws://broker:80" },
			`mqtt.url: the scheme must be tcp or ssl (mqtt, mqtts and tls are accepted too) (got "ws://broker:80")`},
		{"external: client id", func(c *Config) { external(c); c.MQTT.ClientID = "" },
			"mqtt.client_id: required"},
		{"external: cert without key", func(c *Config) { external(c); c.MQTT.CertFile = "testdata/tls/collector.pem" },
			"mqtt.key_file: required with cert_file"},
		{"external: ca with tcp", func(c *Config) {
			external(c)
			c.MQTT.URL = "tcp://broker:1883"
			c.MQTT.CAFile = "testdata/tls/ca.pem"
		}, `mqtt.ca_file: only for an ssl:// broker; the url is tcp:// (got "testdata/tls/ca.pem")`},
		{"external: connect_timeout", func(c *Config) { external(c); c.MQTT.ConnectTimeout = time.Hour },
			"mqtt.connect_timeout: must be at most 5m0s (got 1h0m0s)"},
		{"external: no topics", func(c *Config) { external(c); c.MQTT.Topics = nil },
			"mqtt.topics: empty; list at least hubmon/v1/+/measurement and hubmon/v1/+/status"},
		{"external: per-site topics", func(c *Config) {
			external(c)
			c.MQTT.Topics = []string{"hubmon/v1/lib-001/measurement", "hubmon/v1/lib-001/status"}
		}, ""},
		{"external: wildcard takes acks", func(c *Config) { external(c); c.MQTT.Topics = []string{"hubmon/v1/+/#"} },
			`mqtt.topics[0]: the last level must be measurement or status (not "#"): the collector must not take its own acks (got "hubmon/v1/+/#")`},
		{"external: foreign topic", func(c *Config) { external(c); c.MQTT.Topics = []string{"other/+/measurement"} },
			`mqtt.topics[0]: not a hubmon topic filter; want hubmon/v1/<site id or +>/measurement or status (got "other/+/measurement")`},
		{"external: bad site", func(c *Config) { external(c); c.MQTT.Topics = []string{"hubmon/v1/lib#1/status"} },
			`mqtt.topics[0]: invalid site "lib#1"; want a site id or + (got "hubmon/v1/lib#1/status")`},
		{"external: duplicate topic", func(c *Config) {
			external(c)
			c.MQTT.Topics = []string{"hubmon/v1/+/status", "hubmon/v1/+/status"}
		}, `mqtt.topics[1]: already listed as mqtt.topics[0] (got "hubmon/v1/+/status")`},
		{"embedded: mqtt section ignored", func(c *Config) { c.MQTT.ClientID = ""; c.MQTT.CAFile = "missing" }, ""},
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
		})
	}
}

// TestSharedFiles checks that the files this package shares with the
// agent's config package have not drifted apart.
func TestSharedFiles(t *testing.T) {
	for _, name := range []string{"decode.go", "check.go"} {
		ours, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := os.ReadFile(filepath.Join("..", "..", "..", "agent", "internal", "config", name))
		if err != nil {
			t.Skipf("agent config package not found: %v", err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs from agent/internal/config/%s: change both the same way", name, name)
		}
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
