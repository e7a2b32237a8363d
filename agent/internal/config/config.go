// Package config loads and validates the configuration of hubmon-agent: one
// YAML file naming the site, its time zone, opening hours and data budget, the
// MQTT broker, the outbox and the probes to run.
// testdata/valid-full.yml is a complete example with every field explained.
//
// Loading goes: read the file, parse the YAML, start from Defaults(), set each
// field the file names (strictly: an unknown or repeated key, a value of the
// wrong type and an unset variable are errors with their line), fill the
// defaults that depend on other fields, resolve relative paths against the
// directory of the file, then Validate. Every problem is reported at once, one
// per line, as
//
//	agent.yml:12: probes[0].interval: must be at least 1m0s (got 1s)
//
// Probe settings have defaults per kind (a line-quality summary every minute,
// a speed test every 6 hours...): see kindDefaults.
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
// "6h", "1h30m" ("0" needs no unit). There is no unit for days: "168h".
package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// MaxProbes is the most probes one agent runs.
const MaxProbes = 16

// Config is the configuration of hubmon-agent.
type Config struct {
	// Site is the id of the hub this agent measures: lower-case letters,
	// digits and inner hyphens, at most 63 characters (wire.ValidSite). It is
	// in every topic and every Prometheus series. Required.
	Site string `yaml:"site"`
	// Timezone is the IANA name of the site's time zone: opening hours,
	// schedule windows and the data budget's month are in it. Default
	// "Europe/London".
	Timezone string `yaml:"timezone"`
	// OpeningHours are when the hub is open, per weekday. nil (left out):
	// not known. A day not listed is closed.
	OpeningHours *OpeningHours `yaml:"opening_hours"`
	// DataBudget bounds the data speed tests use per calendar month.
	DataBudget DataBudget `yaml:"data_budget"`
	// DataDir is the agent's state directory; the outbox lives there
	// (OutboxPath). Required. A relative path is relative to the directory
	// of the config file.
	DataDir string `yaml:"data_dir"`
	// Broker is the MQTT broker the agent publishes to.
	Broker Broker `yaml:"broker"`
	// Outbox holds measurements until the collector acknowledges them.
	Outbox Outbox `yaml:"outbox"`
	// Probes are the measurements to run: at least one, at most MaxProbes,
	// with distinct names.
	Probes []Probe `yaml:"probes"`
}

// Broker is the MQTT connection of the agent.
type Broker struct {
	// URL is the broker, scheme://host:port. The scheme is tcp (plain) or
	// ssl (TLS); mqtt is read as tcp, and mqtts and tls as ssl: after Load
	// the scheme is always tcp or ssl. Host and port are required; user
	// names and passwords go in Username and Password, not in the URL.
	// Required.
	URL string `yaml:"url"`
	// Username is the MQTT user name. Default: the site id, so that the
	// broker's ACL can tie a site's topics to the user of that name.
	Username string `yaml:"username"`
	// Password is the MQTT password; write ${HUBMON_MQTT_PASSWORD} and set
	// the variable (systemd EnvironmentFile) rather than keep it in the
	// file. Required.
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
	// AckTimeout is how long a published measurement may wait for the
	// collector's acknowledgement before the agent publishes it again.
	// Default 60s; 5s to 1h.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// StatusInterval is how often the agent publishes its status while
	// connected. Default 60s; 10s to 1h.
	StatusInterval time.Duration `yaml:"status_interval"`
}

// Outbox is the agent's store of unacknowledged measurements.
type Outbox struct {
	// MaxMessages bounds the number of measurements in the outbox; beyond
	// it measurements are dropped, and counted. Default 100000; 10 to
	// 10000000.
	MaxMessages int `yaml:"max_messages"`
}

// Probe is one measurement run on a schedule.
type Probe struct {
	// Name identifies the probe in metrics: 1 to 32 lower-case letters,
	// digits, '-' or '_', starting and ending with a letter or digit
	// (wire.ValidProbeName), distinct within the agent. Required.
	Name string `yaml:"name"`
	// Kind is what the probe measures: speedtest, linequality, dns, http or
	// wifi. Required.
	Kind string `yaml:"kind"`
	// Interval is the time between the starts of two runs. Its default and
	// range depend on the kind (kindDefaults): speedtest 6h (1m to 168h),
	// linequality 60s (10s to 1h; the length of one summary: it runs back
	// to back), dns 5m, http 15m, wifi 5m (1m to 168h). Not with Schedule.
	Interval time.Duration `yaml:"interval"`
	// Splay is the most random delay added to each interval, so that a
	// fleet of agents does not test at the same moment. Default per kind
	// (speedtest 5m, dns 30s, http 1m, wifi 0); 0 to Interval. Not with
	// Schedule, nor for linequality.
	Splay time.Duration `yaml:"splay"`
	// FirstRun is the delay before the first run after the agent starts.
	// Default per kind (speedtest 30s, dns 10s, http 15s, wifi 5s); 0 to
	// Interval. Not with Schedule, nor for linequality.
	FirstRun time.Duration `yaml:"first_run"`
	// Timeout bounds a whole run. Default per kind (speedtest 2m, dns 1m,
	// http 2m, wifi 10s); 10s to 30m. For a speedtest it must be more than
	// 2 × Speedtest.Duration + 30s, for dns more than DNS.Timeout, for http
	// more than HTTP.Timeout. For linequality the default is Interval + 30s,
	// and it must be at least Interval + LineQuality.Timeout + 10s and at
	// most Interval + 30m.
	Timeout time.Duration `yaml:"timeout"`
	// Schedule runs a speedtest a number of times a day at random times
	// inside daily windows, instead of every Interval. Only for kind
	// speedtest. Default: {tests_per_day: 4, windows: [opening_hours]}
	// when the config has OpeningHours and the probe sets none of
	// interval, splay and first_run; otherwise none (the interval is used).
	Schedule *Schedule `yaml:"schedule"`
	// Speedtest configures a probe of kind speedtest, and is not allowed
	// with any other kind. Leaving it out of the file gives all its
	// defaults; after Load it is set for every speedtest probe. So are
	// the sections of the other kinds below, each for its own kind.
	Speedtest *Speedtest `yaml:"speedtest"`
	// LineQuality configures a probe of kind linequality.
	LineQuality *LineQuality `yaml:"linequality"`
	// DNS configures a probe of kind dns.
	DNS *DNS `yaml:"dns"`
	// HTTP configures a probe of kind http.
	HTTP *HTTP `yaml:"http"`
	// WiFi configures a probe of kind wifi.
	WiFi *WiFi `yaml:"wifi"`
}

// Speedtest configures a speed test against an Ookla-compatible server.
// With neither ServerURL nor ServerIDs set, the nearest public server is used.
type Speedtest struct {
	// ServerURL is a self-hosted Ookla-compatible server, an http or https
	// URL (the collector's speedtest_server, say). Not with ServerIDs.
	ServerURL string `yaml:"server_url"`
	// ServerIDs pins the test to these public servers (ids are digits); the
	// nearest of them is used. Not with ServerURL.
	ServerIDs []string `yaml:"server_ids"`
	// Connections is the number of parallel connections per direction.
	// Default 4; 1 to 16.
	Connections int `yaml:"connections"`
	// Duration is how long each direction is measured. Default 10s; 2s to
	// 60s.
	Duration time.Duration `yaml:"duration"`
}

// Defaults returns the configuration a file starts from. It has no site,
// data_dir, broker URL, password or probes: those are required.
func Defaults() *Config {
	return &Config{
		Broker: Broker{
			ConnectTimeout: 10 * time.Second,
			AckTimeout:     60 * time.Second,
			StatusInterval: 60 * time.Second,
		},
		Outbox:   Outbox{MaxMessages: 100_000},
		Timezone: "Europe/London",
	}
}

// unset marks a probe's timing that the file did not set: its default
// depends on the kind, known only once the whole probe is decoded.
const unset = time.Duration(math.MinInt64)

// applyDefaults sets the defaults of a probe listed in a file. Its timings
// are set by complete, from the kind.
func (p *Probe) applyDefaults() {
	*p = Probe{Interval: unset, Splay: unset, FirstRun: unset, Timeout: unset}
}

// timings are a kind's default interval, splay, first run and timeout.
type timings struct {
	interval, splay, firstRun, timeout time.Duration
	minInterval, maxInterval           time.Duration
}

// kindDefaults returns the timings of kind. An unknown kind gets those of a
// speedtest (its problem is the kind).
func kindDefaults(kind string) timings {
	switch kind {
	case wire.KindLineQuality:
		// the timeout depends on the interval: see completeTimings
		return timings{interval: time.Minute, minInterval: 10 * time.Second, maxInterval: time.Hour}
	case wire.KindDNS:
		return timings{5 * time.Minute, 30 * time.Second, 10 * time.Second, time.Minute, time.Minute, 7 * 24 * time.Hour}
	case wire.KindHTTP:
		return timings{15 * time.Minute, time.Minute, 15 * time.Second, 2 * time.Minute, time.Minute, 7 * 24 * time.Hour}
	case wire.KindWiFi:
		return timings{5 * time.Minute, 0, 5 * time.Second, 10 * time.Second, time.Minute, 7 * 24 * time.Hour}
	}
	return timings{6 * time.Hour, 5 * time.Minute, 30 * time.Second, 2 * time.Minute, time.Minute, 7 * 24 * time.Hour}
}

// completeTimings replaces the timings the file left out with the kind's
// defaults. A scheduled speedtest keeps what it was given (unset: 0), for
// Validate to refuse what does not apply; so does a linequality probe for
// its splay and first run.
func (p *Probe) completeTimings(openingHours bool) {
	if p.Kind == wire.KindSpeedtest && p.Schedule == nil && openingHours &&
		p.Interval == unset && p.Splay == unset && p.FirstRun == unset {
		p.Schedule = &Schedule{TestsPerDay: defaultTestsPerDay, Windows: []string{WindowOpeningHours}}
	}
	d := kindDefaults(p.Kind)
	fill := func(v *time.Duration, def time.Duration) {
		if *v == unset {
			*v = def
		}
	}
	switch {
	case p.Kind == wire.KindSpeedtest && p.Schedule != nil:
		fill(&p.Interval, 0)
		fill(&p.Splay, 0)
		fill(&p.FirstRun, 0)
	case p.Kind == wire.KindLineQuality:
		fill(&p.Interval, d.interval)
		fill(&p.Splay, 0)
		fill(&p.FirstRun, 0)
		if p.Timeout == unset && p.Interval >= 0 {
			p.Timeout = p.Interval + 30*time.Second
		}
	default:
		fill(&p.Interval, d.interval)
		fill(&p.Splay, d.splay)
		fill(&p.FirstRun, d.firstRun)
	}
	fill(&p.Timeout, d.timeout)
}

// applyDefaults sets the defaults of a speedtest section.
func (s *Speedtest) applyDefaults() {
	*s = Speedtest{Connections: 4, Duration: 10 * time.Second}
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
	c.complete(dir)
	if err := d.report(file, c.problems()); err != nil {
		return nil, err
	}
	c.Broker.URL = canonicalBrokerURL(c.Broker.URL)
	return c, nil
}

// complete fills the defaults that depend on other fields, and resolves
// relative paths against dir (if not "").
func (c *Config) complete(dir string) {
	if c.Broker.Username == "" {
		c.Broker.Username = c.Site
	}
	for i := range c.Probes {
		if s := c.Probes[i].Schedule; s != nil && s.Windows == nil && c.OpeningHours != nil {
			s.Windows = []string{WindowOpeningHours}
		}
	}
	for i := range c.Probes {
		p := &c.Probes[i]
		p.completeTimings(c.OpeningHours != nil)
		p.completeSection()
	}
	if dir == "" {
		return
	}
	for _, p := range []*string{&c.DataDir, &c.Broker.CAFile, &c.Broker.CertFile, &c.Broker.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Location returns the site's time zone, Timezone; UTC if it is not valid
// (Load refuses that).
func (c *Config) Location() *time.Location {
	loc, err := loadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// OutboxPath is the outbox database file, outbox.db in DataDir.
func (c *Config) OutboxPath() string { return filepath.Join(c.DataDir, "outbox.db") }

// TLS reports whether the broker URL asks for TLS (scheme ssl, or its
// aliases tls and mqtts).
func (b *Broker) TLS() bool { return brokerScheme(b.URL) == "ssl" }
