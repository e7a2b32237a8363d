// Package config loads and validates the configuration of hubmon-collector:
// one YAML file naming the database, the HTTP listener, the MQTT broker (an
// external one, or one embedded in the collector) and the optional speed test
// server. testdata/valid-full.yml is a complete example with every field
// explained.
//
// Loading goes: read the file, parse the YAML, start from Defaults(), set each
// field the file names (strictly: an unknown or repeated key, a value of the
// wrong type and an unset variable are errors with their line), resolve
// relative paths against the directory of the file, then Validate. Every
// problem is reported at once, one per line, as
//
//	collector.yml:7: http.read_timeout: must be at least 1s (got 0s)
//
// Values can use environment variables, for secrets: ${NAME} is replaced by
// the variable's value, anywhere in a value (not in keys or comments); $$ is a
// literal $; any other $ is an error. An unset or empty variable is an error
// naming it, unless it has a default: ${NAME:-default} is the default (as
// written, and possibly empty) when NAME is unset or empty, for a setting that
// may be left out. A problem with a value built from variables names them
// instead of printing the value.
//
// Durations are strings in Go's time.ParseDuration syntax: "90s", "5m",
// "1h30m" ("0" needs no unit). Decimal numbers (thresholds, coordinates) are
// written as in YAML, "10" or "1.5".
//
// The sites file that sites_file names (LoadSites; testdata/sites-valid.yml
// is a complete example) is loaded and validated the same way.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is the configuration of hubmon-collector.
type Config struct {
	// Database is the SQLite file holding the measurement history; it is
	// created if missing. Required. A relative path is relative to the
	// directory of the config file.
	Database string `yaml:"database"`
	// HTTP is the server for /metrics, /metrics/gaps, the reports, the
	// status pages and the health checks.
	HTTP HTTP `yaml:"http"`
	// MQTT is the connection to an external broker. With MQTT.URL empty the
	// collector runs its own broker instead (EmbeddedBroker).
	MQTT MQTT `yaml:"mqtt"`
	// EmbeddedBroker is the MQTT broker run inside the collector when
	// MQTT.URL is empty. When MQTT.URL is set this section is ignored, and
	// not validated.
	EmbeddedBroker EmbeddedBroker `yaml:"embedded_broker"`
	// SpeedtestServer is an Ookla-compatible speed test server the agents
	// can test against (their speedtest.server_url), for measuring the
	// path to the collector rather than to the internet.
	SpeedtestServer SpeedtestServer `yaml:"speedtest_server"`
	// EchoServer answers the agents' line-quality probes (hubmon UDP echo).
	EchoServer EchoServer `yaml:"echo_server"`
	// SitesFile lists the hubs (sites-valid.yml in testdata is an
	// example): their names, councils, opening hours, contracts. Messages
	// from a site not in it are rejected (reason unknown_site) unless
	// AutoRegister is on. Reloaded on SIGHUP; a broken file keeps the
	// previous one. Default empty: no sites file, every site is accepted
	// and known only by its id. The file must be readable. A relative path
	// is relative to the config file.
	SitesFile string `yaml:"sites_file"`
	// AutoRegister accepts messages from sites not in SitesFile; such a
	// site has gap figures (with no opening hours) but no hubmon_site_*
	// series. Default false.
	AutoRegister bool `yaml:"auto_register"`
	// Thresholds are the profiles speed tests are judged against.
	Thresholds Thresholds `yaml:"thresholds"`
	// Gaps configures the gap figures (compliance, availability, ...).
	Gaps Gaps `yaml:"gaps"`
}

// EchoServer is the collector's UDP echo responder for line-quality probes.
// It answers only hubmon echo requests, never with more bytes than it got,
// and rate-limits each source, so it cannot be used to reflect traffic.
type EchoServer struct {
	// Enabled turns it on. Default false; when false the other fields are
	// ignored, and not validated.
	Enabled bool `yaml:"enabled"`
	// Listen is the UDP address, host:port. Default ":9471".
	Listen string `yaml:"listen"`
	// RatePerSecond is how many requests one source IP may send per
	// second (a hub behind one NAT address has one agent). Default 20;
	// 1 to 10000.
	RatePerSecond int `yaml:"rate_per_second"`
	// Burst is how many requests one source may send at once. Default 40;
	// 1 to 100000.
	Burst int `yaml:"burst"`
}

// HTTP is the collector's HTTP server.
type HTTP struct {
	// Listen is the address to listen on, host:port; an empty host means
	// every interface. Default ":9470".
	Listen string `yaml:"listen"`
	// ReadTimeout bounds reading a whole request. Default 10s; 1s to 1h.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 30s; 1s to 1h.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// MQTT is the collector's connection to an external broker (Mosquitto in
// production). Every field but URL is ignored when URL is empty.
type MQTT struct {
	// URL is the broker, scheme://host:port, or empty to run the embedded
	// broker. The scheme is tcp (plain) or ssl (TLS); mqtt is read as tcp,
	// and mqtts and tls as ssl: after Load the scheme is always tcp or ssl.
	// Host and port are required; user names and passwords go in Username
	// and Password, not in the URL. Default empty.
	URL string `yaml:"url"`
	// ClientID is the MQTT client id; it must differ from every agent's.
	// Default "hubmon-collector". Required with URL.
	ClientID string `yaml:"client_id"`
	// Username is the MQTT user name; the broker's ACL must let it read
	// every site's measurement and status topics and write their ack
	// topics. Default "hubmon-collector".
	Username string `yaml:"username"`
	// Password is the MQTT password; write ${HUBMON_MQTT_PASSWORD} and set
	// the variable (systemd EnvironmentFile) rather than keep it in the
	// file. Optional (a broker may allow anonymous local clients).
	Password string `yaml:"password"`
	// CAFile is a PEM file of the certificate authorities to trust for an
	// ssl broker; empty trusts the system's roots. Only with ssl. The file
	// must be readable. A relative path is relative to the config file.
	CAFile string `yaml:"ca_file"`
	// CertFile is a PEM client certificate for an ssl broker that asks for
	// one; set with KeyFile or not at all. Only with ssl. The file must be
	// readable. A relative path is relative to the config file.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Only with ssl. The file
	// must be readable. A relative path is relative to the config file.
	KeyFile string `yaml:"key_file"`
	// ConnectTimeout bounds one attempt to connect. Default 10s; 1s to 5m.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Topics are the MQTT topic filters the collector subscribes to, each
	// hubmon/v1/<site>/measurement or hubmon/v1/<site>/status, where <site>
	// is a site id or + (every site). Several collectors share one broker
	// by each naming its own sites (docs/scale.md); every site then needs
	// both of its topics in exactly one collector. Default
	// [hubmon/v1/+/measurement, hubmon/v1/+/status]; at most 100000.
	Topics []string `yaml:"topics"`
}

// EmbeddedBroker is the MQTT broker the collector runs itself when no
// external broker is configured (MQTT.URL empty). Agents log in with the
// users of PasswordFile (by default an agent's user name is its site id).
type EmbeddedBroker struct {
	// Listen is the address agents connect to, host:port. Default ":1883".
	Listen string `yaml:"listen"`
	// PasswordFile holds the users and their password hashes, in
	// Mosquitto's password-file format (made with mosquitto_passwd).
	// Required when the broker is embedded; the file must be readable. A
	// relative path is relative to the config file.
	PasswordFile string `yaml:"password_file"`
	// Readers are user names (in PasswordFile) allowed to read every topic,
	// for debugging with mosquitto_sub. Default none.
	Readers []string `yaml:"readers"`
	// MaxPacketBytes is the largest MQTT packet accepted. Default 70000, a
	// little above the largest message of the schema (wire.MaxPayloadBytes,
	// 65536); 66560 (a largest message and its headers) to 1048576.
	MaxPacketBytes int `yaml:"max_packet_bytes"`
}

// SpeedtestServer is the collector's Ookla-compatible speed test server.
type SpeedtestServer struct {
	// Enabled turns the server on. Default false; when false the other
	// fields are ignored, and not validated.
	Enabled bool `yaml:"enabled"`
	// Listen is the address to listen on, host:port; it must differ from
	// http.listen. Default ":8080".
	Listen string `yaml:"listen"`
	// MaxUploadBytes bounds the body of one upload request. Default
	// 67108864 (64 MiB); 1048576 (1 MiB) to 1073741824 (1 GiB).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// MaxConnections bounds open connections; more are closed at once.
	// Default 64 (16 agents testing at once with 4 connections); 1 to 4096.
	MaxConnections int `yaml:"max_connections"`
	// Token, if set, must be on every HTTP request as ?token=... (put it on
	// the agents' speedtest.server_url): a server reachable from the
	// internet then serves only the council's agents. Default none.
	Token string `yaml:"token"`
}

// Defaults returns the configuration a file starts from. It has no
// database, which is required, and no embedded_broker.password_file, which
// is required unless mqtt.url is set.
func Defaults() *Config {
	return &Config{
		HTTP: HTTP{
			Listen:       ":9470",
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 30 * time.Second,
		},
		MQTT: MQTT{
			ClientID:       "hubmon-collector",
			Username:       "hubmon-collector",
			ConnectTimeout: 10 * time.Second,
			Topics:         []string{"hubmon/v1/+/measurement", "hubmon/v1/+/status"},
		},
		EmbeddedBroker: EmbeddedBroker{
			Listen:         ":1883",
			MaxPacketBytes: 70000,
		},
		SpeedtestServer: SpeedtestServer{
			Listen:         ":8080",
			MaxConnections: 64,
			MaxUploadBytes: 64 << 20,
		},
		EchoServer: EchoServer{
			Listen:        ":9471",
			RatePerSecond: 20,
			Burst:         40,
		},
		Thresholds: Thresholds{BelowRatio: "0.9", Profiles: DefaultProfiles()},
		Gaps:       Gaps{Interval: 5 * time.Minute, Presence: 15 * time.Minute},
	}
}

// Load reads, parses and validates the config file at path (see the package
// documentation). getenv looks up ${NAME} variables; pass os.Getenv, or nil
// for none. Relative paths in the file are relative to the file's directory.
// Problems are joined into one error, a line each, prefixed with path and the
// line number.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(data, getenv, path, filepath.Dir(path))
}

// Parse is Load for a config held in memory. Relative paths in it stay
// relative to the working directory, and problems are prefixed with "line N:".
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	return parse(data, getenv, "", "")
}

func parse(data []byte, getenv func(string) string, file, dir string) (*Config, error) {
	c := Defaults()
	d := newDecoder(getenv)
	d.decode(data, c)
	c.resolve(dir)
	if err := d.report(file, c.problems()); err != nil {
		return nil, err
	}
	c.MQTT.URL = canonicalBrokerURL(c.MQTT.URL)
	return c, nil
}

// resolve makes relative paths relative to dir, if not "".
func (c *Config) resolve(dir string) {
	if dir == "" {
		return
	}
	for _, p := range []*string{&c.Database, &c.MQTT.CAFile, &c.MQTT.CertFile, &c.MQTT.KeyFile, &c.EmbeddedBroker.PasswordFile, &c.SitesFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Embedded reports whether the collector runs its own broker: mqtt.url is
// empty.
func (c *Config) Embedded() bool { return c.MQTT.URL == "" }

// TLS reports whether the broker URL asks for TLS (scheme ssl, or its
// aliases tls and mqtts).
func (m *MQTT) TLS() bool { return brokerScheme(m.URL) == "ssl" }
