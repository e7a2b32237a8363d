package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// knownKinds lists the probe kinds, for messages.
func knownKinds() []string {
	return []string{wire.KindSpeedtest, wire.KindLineQuality, wire.KindDNS, wire.KindHTTP, wire.KindWiFi}
}

// Validate checks c and returns every problem found, joined, one per line,
// each naming the field and its value. It checks that the files c names
// exist and are readable. Passwords are never included.
func (c *Config) Validate() error { return joinProblems(c.problems()) }

func (c *Config) problems() []*problem {
	var k checker
	if k.required("site", c.Site) && !wire.ValidSite(c.Site) {
		k.add("site", c.Site, "must be lower-case letters, digits and inner hyphens, at most 63 characters")
	}
	if k.required("data_dir", c.DataDir) {
		if st, err := os.Stat(c.DataDir); err == nil && !st.IsDir() {
			k.add("data_dir", c.DataDir, "is a file, not a directory")
		}
	}
	c.checkSite(&k)
	c.Broker.check(&k)
	if c.Broker.Username != "" && c.Site != "" && c.Broker.Username != c.Site {
		k.add("broker.username", c.Broker.Username, "must be the site id %q: brokers bind a site's client id and topics to its user name (leave it out)", c.Site)
	}
	k.number("outbox.max_messages", int64(c.Outbox.MaxMessages), 10, 10_000_000)

	switch {
	case len(c.Probes) == 0:
		k.addNoValue("probes", "at least one probe is required")
	case len(c.Probes) > MaxProbes:
		k.add("probes", len(c.Probes), "at most %d probes are allowed", MaxProbes)
	}
	names := make(map[string]int)
	for i := range c.Probes {
		p := &c.Probes[i]
		path := fmt.Sprintf("probes[%d]", i)
		p.check(&k, path, c)
		if p.Name == "" {
			continue
		}
		if j, ok := names[p.Name]; ok {
			k.add(path+".name", p.Name, "already used by probes[%d]", j)
		} else {
			names[p.Name] = i
		}
	}
	// a linequality probe's ICMP measurements are probe "<name>-icmp"
	for i := range c.Probes {
		p := &c.Probes[i]
		if p.Kind != wire.KindLineQuality || p.LineQuality == nil || p.LineQuality.ICMPTarget == "" || !wire.ValidProbeName(p.Name) {
			continue
		}
		path := fmt.Sprintf("probes[%d]", i)
		if icmp := ICMPName(p.Name); !wire.ValidProbeName(icmp) {
			k.add(path+".name", p.Name, "must be at most %d characters with linequality.icmp_target: its ICMP measurements are probe %q, and a probe name is at most 32",
				32-len(ICMPSuffix), icmp)
		} else if j, ok := names[icmp]; ok {
			k.add(fmt.Sprintf("probes[%d].name", j), icmp, "already used by the ICMP measurements of probes[%d], %q (its linequality.icmp_target is set)", i, p.Name)
		}
	}
	return k.probs
}

func (b *Broker) check(k *checker) {
	scheme := ""
	if k.required("broker.url", b.URL) && k.brokerURL("broker.url", b.URL) {
		scheme = brokerScheme(b.URL)
	}
	if b.Password == "" {
		k.addNoValue("broker.password", "required; write ${HUBMON_MQTT_PASSWORD} and set that variable")
	}
	k.tlsFiles("broker", scheme, b.CAFile, b.CertFile, b.KeyFile)
	k.duration("broker.connect_timeout", b.ConnectTimeout, time.Second, 5*time.Minute)
	k.duration("broker.ack_timeout", b.AckTimeout, 5*time.Second, time.Hour)
	k.duration("broker.status_interval", b.StatusInterval, 10*time.Second, time.Hour)
}

func (p *Probe) check(k *checker, path string, c *Config) {
	if k.required(path+".name", p.Name) && !wire.ValidProbeName(p.Name) {
		k.add(path+".name", p.Name, "must be 1 to 32 lower-case letters, digits, '-' or '_', starting and ending with a letter or digit")
	}
	kinds := strings.Join(knownKinds(), ", ")
	switch {
	case slices.Contains(knownKinds(), p.Kind):
	case p.Kind == "":
		k.addNoValue(path+".kind", "required; known kinds: %s", kinds)
	default:
		k.add(path+".kind", p.Kind, "unknown kind; known kinds: %s", kinds)
	}

	scheduled := p.Kind == wire.KindSpeedtest && p.Schedule != nil
	backToBack := p.Kind == wire.KindLineQuality
	intervalOK := false
	switch {
	case scheduled:
		// the schedule sets the times
		for _, f := range []struct {
			name string
			v    time.Duration
		}{{"interval", p.Interval}, {"splay", p.Splay}, {"first_run", p.FirstRun}} {
			if f.v != 0 {
				k.add(path+"."+f.name, f.v, "not used with schedule, which sets the times; leave it out")
			}
		}
	default:
		d := kindDefaults(p.Kind)
		intervalOK = k.duration(path+".interval", p.Interval, d.minInterval, d.maxInterval)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"splay", p.Splay}, {"first_run", p.FirstRun}} {
		switch {
		case scheduled:
		case backToBack && f.v != 0:
			k.add(path+"."+f.name, f.v, "not used by kind linequality, which runs back to back; leave it out")
		case f.v < 0:
			k.add(path+"."+f.name, f.v, "must not be negative")
		case intervalOK && f.v > p.Interval:
			k.add(path+"."+f.name, f.v, "must be at most the interval, %s", p.Interval)
		}
	}
	timeoutOK := false
	if !backToBack { // linequality: checked with its section
		timeoutOK = k.duration(path+".timeout", p.Timeout, 10*time.Second, 30*time.Minute)
	}

	if p.Schedule != nil {
		if p.Kind == wire.KindSpeedtest {
			p.Schedule.check(k, path, c)
		} else if slices.Contains(knownKinds(), p.Kind) {
			k.addNoValue(path+".schedule", "only for kind speedtest, not %s: the others run on their interval", p.Kind)
		}
	}
	p.checkSections(k, path, timeoutOK)
}

func (s *Speedtest) check(k *checker, path string) {
	if s.ServerURL != "" {
		u, err := url.Parse(s.ServerURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			k.add(path+".server_url", s.ServerURL, "must be an http:// or https:// URL with a host")
		case u.User != nil:
			k.add(path+".server_url", u.Redacted(), "must not hold a user name or password")
		}
		if len(s.ServerIDs) > 0 {
			k.add(path+".server_ids", s.ServerIDs, "cannot be used with server_url; set one or the other")
		}
	}
	seen := make(map[string]int)
	for i, id := range s.ServerIDs {
		field := fmt.Sprintf("%s.server_ids[%d]", path, i)
		if id == "" || strings.Trim(id, "0123456789") != "" {
			k.add(field, id, "a server id is digits")
			continue
		}
		if j, ok := seen[id]; ok {
			k.add(field, id, "already listed as server_ids[%d]", j)
		} else {
			seen[id] = i
		}
	}
	k.number(path+".connections", int64(s.Connections), 1, 16)
	k.duration(path+".duration", s.Duration, 2*time.Second, 60*time.Second)
}
