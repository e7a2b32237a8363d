package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// Validate checks c and returns every problem found, joined, one per line,
// each naming the field and its value. It checks that the files c names
// exist and are readable. Passwords are never included.
func (c *Config) Validate() error { return joinProblems(c.problems()) }

func (c *Config) problems() []*problem {
	var k checker
	if k.required("database", c.Database) {
		if st, err := os.Stat(c.Database); err == nil && st.IsDir() {
			k.add("database", c.Database, "is a directory, not a file")
		}
	}

	k.listen("http.listen", c.HTTP.Listen)
	k.duration("http.read_timeout", c.HTTP.ReadTimeout, time.Second, time.Hour)
	k.duration("http.write_timeout", c.HTTP.WriteTimeout, time.Second, time.Hour)
	listeners := []listener{{"http.listen", c.HTTP.Listen}}

	if c.Embedded() {
		b := &c.EmbeddedBroker
		k.listen("embedded_broker.listen", b.Listen)
		listeners = append(listeners, listener{"embedded_broker.listen", b.Listen})
		if k.required("embedded_broker.password_file", b.PasswordFile) {
			k.readableFile("embedded_broker.password_file", b.PasswordFile)
		}
		seen := make(map[string]int)
		for i, r := range b.Readers {
			field := fmt.Sprintf("embedded_broker.readers[%d]", i)
			if r == "" {
				k.addNoValue(field, "empty; a reader is a user name")
				continue
			}
			if j, ok := seen[r]; ok {
				k.add(field, r, "already listed as readers[%d]", j)
			} else {
				seen[r] = i
			}
		}
		k.number("embedded_broker.max_packet_bytes", int64(b.MaxPacketBytes), wire.MaxPayloadBytes+1024, 1<<20)
	} else {
		m := &c.MQTT
		scheme := ""
		if k.brokerURL("mqtt.url", m.URL) {
			scheme = brokerScheme(m.URL)
		}
		k.required("mqtt.client_id", m.ClientID)
		k.tlsFiles("mqtt", scheme, m.CAFile, m.CertFile, m.KeyFile)
		k.duration("mqtt.connect_timeout", m.ConnectTimeout, time.Second, 5*time.Minute)
		k.topics("mqtt.topics", m.Topics)
	}

	if s := &c.SpeedtestServer; s.Enabled {
		k.listen("speedtest_server.listen", s.Listen)
		listeners = append(listeners, listener{"speedtest_server.listen", s.Listen})
		k.number("speedtest_server.max_upload_bytes", s.MaxUploadBytes, 1<<20, 1<<30)
		k.number("speedtest_server.max_connections", int64(s.MaxConnections), 1, 4096)
	}

	if e := &c.EchoServer; e.Enabled {
		k.listen("echo_server.listen", e.Listen) // UDP: no clash with the TCP listeners
		k.number("echo_server.rate_per_second", int64(e.RatePerSecond), 1, 10000)
		k.number("echo_server.burst", int64(e.Burst), 1, 100000)
	}

	k.readableFile("sites_file", c.SitesFile)
	c.Thresholds.check(&k)
	c.Gaps.check(&k)

	for i, a := range listeners {
		for _, b := range listeners[:i] {
			if a.clashes(b) {
				k.add(a.field, a.addr, "same port as %s, %q", b.field, b.addr)
				break
			}
		}
	}
	return k.probs
}

// listener is a listen address and the field that sets it.
type listener struct{ field, addr string }

// clashes reports whether a and b cannot both listen: the same port, on the
// same host or on every interface.
func (a listener) clashes(b listener) bool {
	ha, pa, err1 := net.SplitHostPort(a.addr)
	hb, pb, err2 := net.SplitHostPort(b.addr)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	everywhere := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || everywhere(ha) || everywhere(hb)
}

// topics checks the collector's subscriptions: hubmon/v1/<site or +>/
// <measurement or status>, no duplicates. Other filters would take the
// collector's own acks (hubmon/v1/+/#) or nothing of hubmon's.
func (k *checker) topics(field string, topics []string) {
	if len(topics) == 0 {
		k.addNoValue(field, "empty; list at least hubmon/v1/+/measurement and hubmon/v1/+/status")
		return
	}
	if len(topics) > 100000 {
		k.add(field, fmt.Sprint(len(topics)), "too many topic filters; at most 100000")
		return
	}
	seen := make(map[string]int, len(topics))
	for i, t := range topics {
		f := fmt.Sprintf("%s[%d]", field, i)
		rest, ok := strings.CutPrefix(t, wire.TopicRoot+"/")
		site, kind, ok2 := strings.Cut(rest, "/")
		switch {
		case !ok || !ok2 || strings.Contains(kind, "/"):
			k.add(f, t, "not a hubmon topic filter; want %s/<site id or +>/measurement or status", wire.TopicRoot)
			continue
		case site != "+" && !wire.ValidSite(site):
			k.add(f, t, "invalid site %q; want a site id or +", site)
			continue
		case kind != wire.TopicMeasurement && kind != wire.TopicStatus:
			k.add(f, t, "the last level must be %s or %s (not %q): the collector must not take its own acks", wire.TopicMeasurement, wire.TopicStatus, kind)
			continue
		}
		if j, dup := seen[t]; dup {
			k.add(f, t, "already listed as %s[%d]", field, j)
			continue
		}
		seen[t] = i
	}
}
