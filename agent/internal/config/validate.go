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
func knownKinds() []string { return []string{wire.KindSpeedtest} }

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
		p.check(&k, path)
		if p.Name == "" {
			continue
		}
		if j, ok := names[p.Name]; ok {
			k.add(path+".name", p.Name, "already used by probes[%d]", j)
		} else {
			names[p.Name] = i
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

func (p *Probe) check(k *checker, path string) {
	if k.required(path+".name", p.Name) && !wire.ValidProbeName(p.Name) {
		k.add(path+".name", p.Name, "must be 1 to 32 lower-case letters, digits, '-' or '_', starting and ending with a letter or digit")
	}
	kinds := strings.Join(knownKinds(), ", ")
	switch p.Kind {
	case wire.KindSpeedtest:
	case "":
		k.addNoValue(path+".kind", "required; known kinds: %s", kinds)
	default:
		k.add(path+".kind", p.Kind, "unknown kind; known kinds: %s", kinds)
	}

	intervalOK := k.duration(path+".interval", p.Interval, time.Minute, 7*24*time.Hour)
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"splay", p.Splay}, {"first_run", p.FirstRun}} {
		switch {
		case f.v < 0:
			k.add(path+"."+f.name, f.v, "must not be negative")
		case intervalOK && f.v > p.Interval:
			k.add(path+"."+f.name, f.v, "must be at most the interval, %s", p.Interval)
		}
	}
	timeoutOK := k.duration(path+".timeout", p.Timeout, 10*time.Second, 30*time.Minute)

	switch {
	case p.Kind == wire.KindSpeedtest && p.Speedtest == nil:
		k.addNoValue(path+".speedtest", "required for kind speedtest")
	case p.Kind == wire.KindSpeedtest:
		p.Speedtest.check(k, path+".speedtest")
		if need := 2*p.Speedtest.Duration + 30*time.Second; timeoutOK && p.Timeout <= need {
			k.add(path+".timeout", p.Timeout, "must be more than %s, 2 × speedtest.duration + 30s", need)
		}
	case p.Speedtest != nil && slices.Contains(knownKinds(), p.Kind):
		k.addNoValue(path+".speedtest", "only for kind speedtest, not %s", p.Kind)
	}
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
