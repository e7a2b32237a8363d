package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// LineQuality configures the continuous line-quality probe: a steady stream
// of small UDP probes to a hubmon echo responder (and ICMP echo where the
// system allows it), summarised once per probe interval.
type LineQuality struct {
	// UDPTarget is host:port of a hubmon echo responder (the collector's
	// echo server), at most 256 bytes (the measurement's target).
	// Required.
	UDPTarget string `yaml:"udp_target"`
	// ICMPTarget is a host (a name or an IPv4 address, no port) to ping as
	// well, when the system lets the agent's user send ICMP echo
	// (net.ipv4.ping_group_range); its summaries are measurements of their
	// own, with method icmp, under the probe name "<name>-icmp" (so the
	// probe's name is then at most 27 characters, and no other probe may
	// be called that). Default empty: none.
	ICMPTarget string `yaml:"icmp_target"`
	// SendInterval is the time between two probes. Default 1.5s; 200ms to
	// 60s, and at most a fifth of the probe's interval.
	SendInterval time.Duration `yaml:"send_interval"`
	// Timeout: a probe not answered within it is lost. Default 2s; 100ms
	// to 30s, and less than half the probe's interval.
	Timeout time.Duration `yaml:"timeout"`
	// OutageAfter is how many consecutive lost probes make a
	// disconnection. Default 2; 1 to 100.
	OutageAfter int `yaml:"outage_after"`
	// GatewayCheck: during a disconnection, ping the default gateway (the
	// hub's own router) to tell a broadband outage (wan) from a local
	// one (lan). false where the router does not answer ping: outages
	// then have cause unknown. Default true.
	GatewayCheck bool `yaml:"gateway_check"`
}

// ICMPSuffix ends the probe name of a linequality probe's ICMP
// measurements: "<name>-icmp".
const ICMPSuffix = "-icmp"

// ICMPName is the probe name of the ICMP measurements of linequality probe
// name.
func ICMPName(name string) string { return name + ICMPSuffix }

func (l *LineQuality) applyDefaults() {
	*l = LineQuality{SendInterval: 1500 * time.Millisecond, Timeout: 2 * time.Second, OutageAfter: 2, GatewayCheck: true}
}

// DNS configures the DNS probe: each name resolved by each resolver.
type DNS struct {
	// Names to resolve: host names, at most 253 characters (a final dot
	// included). Default [www.gov.uk, www.nhs.uk]. names × resolvers is at
	// most 64.
	Names []string `yaml:"names"`
	// Resolvers: "system" for the system's resolver, or the IP address of
	// a named one, with a port or not (53): "1.1.1.1", "1.1.1.1:53",
	// "[2606:4700:4700::1111]:53". Not a host name: a name would need a
	// resolver to find the resolver. Default [system].
	Resolvers []string `yaml:"resolvers"`
	// Timeout bounds one lookup. Default 5s; 1s to 60s.
	Timeout time.Duration `yaml:"timeout"`
}

func (d *DNS) applyDefaults() {
	*d = DNS{Names: []string{"www.gov.uk", "www.nhs.uk"}, Resolvers: []string{"system"}, Timeout: 5 * time.Second}
}

// HTTP configures the essential-services probe: each service fetched once per
// run, with its timings, status and certificate expiry.
type HTTP struct {
	// Services to check: 1 to 32, with distinct names. Default: gov-uk
	// (https://www.gov.uk/), nhs (https://www.nhs.uk/) and
	// universal-credit (https://www.universal-credit.service.gov.uk/).
	Services []HTTPService `yaml:"services"`
	// Timeout bounds one service's check. Default 15s; 1s to 5m.
	Timeout time.Duration `yaml:"timeout"`
}

// HTTPService is one service hub users depend on.
type HTTPService struct {
	// Name labels the service in metrics, like a probe name
	// (wire.ValidProbeName). Required.
	Name string `yaml:"name"`
	// URL is fetched with GET: an absolute http:// or https:// URL, at
	// most 512 bytes. Required.
	URL string `yaml:"url"`
}

func (h *HTTP) applyDefaults() {
	*h = HTTP{
		Services: []HTTPService{
			{Name: "gov-uk", URL: "https://www.gov.uk/"},
			{Name: "nhs", URL: "https://www.nhs.uk/"},
			{Name: "universal-credit", URL: "https://www.universal-credit.service.gov.uk/"},
		},
		Timeout: 15 * time.Second,
	}
}

// WiFi configures the Wi-Fi probe. An agent with no wireless interface skips
// a wifi probe that names none (a wired-only Pi is normal).
type WiFi struct {
	// Interface is the wireless interface to read, like "wlan0". Default
	// empty: the first one found.
	Interface string `yaml:"interface"`
}

func (w *WiFi) applyDefaults() { *w = WiFi{} }

// completeSection gives a probe the section of its kind with its defaults,
// when the file left it out.
func (p *Probe) completeSection() {
	switch p.Kind {
	case wire.KindSpeedtest:
		if p.Speedtest == nil {
			p.Speedtest = new(Speedtest)
			p.Speedtest.applyDefaults()
		}
	case wire.KindLineQuality:
		if p.LineQuality == nil {
			p.LineQuality = new(LineQuality)
			p.LineQuality.applyDefaults()
		}
	case wire.KindDNS:
		if p.DNS == nil {
			p.DNS = new(DNS)
			p.DNS.applyDefaults()
		}
	case wire.KindHTTP:
		if p.HTTP == nil {
			p.HTTP = new(HTTP)
			p.HTTP.applyDefaults()
		}
	case wire.KindWiFi:
		if p.WiFi == nil {
			p.WiFi = new(WiFi)
		}
	}
}

// checkSections checks the section of the probe's kind, and that no other
// kind's section is there.
func (p *Probe) checkSections(k *checker, path string, timeoutOK bool) {
	sections := []struct {
		kind string
		set  bool
	}{
		{wire.KindSpeedtest, p.Speedtest != nil},
		{wire.KindLineQuality, p.LineQuality != nil},
		{wire.KindDNS, p.DNS != nil},
		{wire.KindHTTP, p.HTTP != nil},
		{wire.KindWiFi, p.WiFi != nil},
	}
	known := false
	for _, s := range sections {
		known = known || s.kind == p.Kind
	}
	for _, s := range sections {
		switch {
		case s.kind == p.Kind && !s.set:
			k.addNoValue(path+"."+s.kind, "required for kind %s", s.kind)
		case s.kind != p.Kind && s.set && known:
			k.addNoValue(path+"."+s.kind, "only for kind %s, not %s", s.kind, p.Kind)
		}
	}
	switch {
	case p.Kind == wire.KindSpeedtest && p.Speedtest != nil:
		p.Speedtest.check(k, path+".speedtest")
		if need := 2*p.Speedtest.Duration + 30*time.Second; timeoutOK && p.Timeout <= need {
			k.add(path+".timeout", p.Timeout, "must be more than %s, 2 × speedtest.duration + 30s", need)
		}
	case p.Kind == wire.KindLineQuality && p.LineQuality != nil:
		p.LineQuality.check(k, path, p.Interval, p.Timeout)
	case p.Kind == wire.KindDNS && p.DNS != nil:
		if p.DNS.check(k, path+".dns") && timeoutOK && p.Timeout <= p.DNS.Timeout {
			k.add(path+".timeout", p.Timeout, "must be more than dns.timeout, %s", p.DNS.Timeout)
		}
	case p.Kind == wire.KindHTTP && p.HTTP != nil:
		if p.HTTP.check(k, path+".http") && timeoutOK && p.Timeout <= p.HTTP.Timeout {
			k.add(path+".timeout", p.Timeout, "must be more than http.timeout, %s", p.HTTP.Timeout)
		}
	case p.Kind == wire.KindWiFi && p.WiFi != nil:
		p.WiFi.check(k, path+".wifi")
	}
}

// check checks a linequality section; path is the probe's. interval and
// timeout are the probe's: one summary, and the bound on its run.
func (l *LineQuality) check(k *checker, path string, interval, timeout time.Duration) {
	sec := path + ".linequality"
	if k.required(sec+".udp_target", l.UDPTarget) && k.hostPort(sec+".udp_target", l.UDPTarget, `like "hubmon.example.org:9471"`) &&
		len(l.UDPTarget) > maxTargetLen {
		k.add(sec+".udp_target", l.UDPTarget, "must be at most %d bytes; it has %d", maxTargetLen, len(l.UDPTarget))
	}
	if l.ICMPTarget != "" {
		if ip := net.ParseIP(l.ICMPTarget); ip != nil && ip.To4() == nil {
			k.add(sec+".icmp_target", l.ICMPTarget, "must be an IPv4 address or a host name: ICMP echo is IPv4 only")
		} else if !validHost(l.ICMPTarget) {
			k.add(sec+".icmp_target", l.ICMPTarget, "must be a host name or an IP address, with no port")
		}
	}
	if k.duration(sec+".send_interval", l.SendInterval, 200*time.Millisecond, 60*time.Second) && interval > 0 && l.SendInterval > interval/5 {
		k.add(sec+".send_interval", l.SendInterval, "must be at most a fifth of the interval, %s, so that each summary has at least 5 probes", interval/5)
	}
	timeoutOK := k.duration(sec+".timeout", l.Timeout, 100*time.Millisecond, 30*time.Second)
	if timeoutOK && interval > 0 && l.Timeout >= interval/2 {
		k.add(sec+".timeout", l.Timeout, "must be less than half the interval, %s", interval/2)
	}
	k.number(sec+".outage_after", int64(l.OutageAfter), 1, 100)
	if timeoutOK && interval > 0 {
		// the last probe is waited for, and the target's name looked up
		switch need := interval + l.Timeout + 10*time.Second; {
		case timeout < need:
			k.add(path+".timeout", timeout, "must be at least %s, the interval + linequality.timeout + 10s", need)
		case timeout > interval+30*time.Minute:
			k.add(path+".timeout", timeout, "must be at most %s, the interval + 30m", interval+30*time.Minute)
		}
	}
}

// maxTargetLen bounds udp_target: a measurement's linequality.target
// (wire).
const maxTargetLen = 256

// maxDNSLookups bounds names × resolvers: the results of one run
// (wire.DNS holds at most 64).
const maxDNSLookups = 64

// check checks a dns section and reports whether its timeout is valid.
func (d *DNS) check(k *checker, path string) bool {
	if len(d.Names) == 0 {
		k.addNoValue(path+".names", "at least one name is required")
	}
	seen := make(map[string]int)
	for i, n := range d.Names {
		field := fmt.Sprintf("%s.names[%d]", path, i)
		if !validHostName(n) {
			k.add(field, n, "must be a host name, like www.gov.uk")
			continue
		}
		if len(n) > maxNameLen { // a measurement's dns name (wire), as written
			k.add(field, n, "must be at most %d characters, a final dot included; it has %d", maxNameLen, len(n))
			continue
		}
		key := strings.ToLower(strings.TrimSuffix(n, "."))
		if j, ok := seen[key]; ok {
			k.add(field, n, "already listed as names[%d]", j)
		} else {
			seen[key] = i
		}
	}
	if len(d.Resolvers) == 0 {
		k.addNoValue(path+".resolvers", `at least one resolver is required; "system" is the system's`)
	}
	seen = make(map[string]int)
	for i, r := range d.Resolvers {
		field := fmt.Sprintf("%s.resolvers[%d]", path, i)
		key := r
		if r != "system" {
			var ok bool
			if key, ok = k.resolverAddr(field, r); !ok {
				continue
			}
		}
		if j, ok := seen[key]; ok {
			k.add(field, r, "already listed as resolvers[%d]", j)
		} else {
			seen[key] = i
		}
	}
	if n := len(d.Names) * len(d.Resolvers); n > maxDNSLookups {
		k.addNoValue(path+".names", "names × resolvers must be at most %d (got %d × %d)", maxDNSLookups, len(d.Names), len(d.Resolvers))
	}
	return k.duration(path+".timeout", d.Timeout, time.Second, time.Minute)
}

// maxHTTPServices bounds the services of one http probe.
const maxHTTPServices = 32

// maxURLLen bounds a service's URL: 32 of them, with their error texts,
// fit a measurement (wire.MaxPayloadBytes).
const maxURLLen = 512

// maxNameLen bounds a DNS name as written: a measurement's dns name (wire).
const maxNameLen = 253

// check checks an http section and reports whether its timeout is valid.
func (h *HTTP) check(k *checker, path string) bool {
	switch {
	case len(h.Services) == 0:
		k.addNoValue(path+".services", "at least one service is required")
	case len(h.Services) > maxHTTPServices:
		k.add(path+".services", len(h.Services), "at most %d services are allowed", maxHTTPServices)
	}
	names := make(map[string]int)
	for i, s := range h.Services {
		field := fmt.Sprintf("%s.services[%d]", path, i)
		if k.required(field+".name", s.Name) {
			if !wire.ValidProbeName(s.Name) {
				k.add(field+".name", s.Name, "must be 1 to 32 lower-case letters, digits, '-' or '_', starting and ending with a letter or digit")
			} else if j, ok := names[s.Name]; ok {
				k.add(field+".name", s.Name, "already used by services[%d]", j)
			} else {
				names[s.Name] = i
			}
		}
		if !k.required(field+".url", s.URL) {
			continue
		}
		u, err := url.Parse(s.URL)
		switch {
		case len(s.URL) > maxURLLen:
			k.add(field+".url", s.URL, "must be at most %d bytes; it has %d", maxURLLen, len(s.URL))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
			k.add(field+".url", s.URL, "must be an absolute http:// or https:// URL with a host")
		case u.User != nil:
			k.add(field+".url", u.Redacted(), "must not hold a user name or password")
		}
	}
	return k.duration(path+".timeout", h.Timeout, time.Second, 5*time.Minute)
}

func (w *WiFi) check(k *checker, path string) {
	// Linux interface names: at most 15 bytes, no '/', no white space
	if w.Interface != "" && (len(w.Interface) > 15 || strings.ContainsAny(w.Interface, "/: \t\n")) {
		k.add(path+".interface", w.Interface, "must be an interface name such as wlan0 (at most 15 characters, no '/', ':' or spaces)")
	}
}

// hostPort checks host:port with a host and a port from 1 to 65535, and
// reports whether it is valid; example completes the message.
func (c *checker) hostPort(field, v, example string) bool {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || !validHost(host) {
		c.add(field, v, "must be host:port, %s", example)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.add(field, v, "the port must be a number from 1 to 65535")
		return false
	}
	return true
}

// resolverAddr checks a named resolver: an IP address, with a port or not
// (53). It reports whether it is valid, and returns it as ip:port, to find
// the same resolver written twice.
func (c *checker) resolverAddr(field, v string) (string, bool) {
	const want = `must be the IP address of a resolver, with a port or not, like "1.1.1.1" or "1.1.1.1:53", or "system" for the system's resolver`
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		host, port = v, "53"
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil && validHost(host):
		c.add(field, v, "the host must be an IP address, not a name: a resolver's name would need a resolver to find it")
		return "", false
	case ip == nil:
		c.add(field, v, "%s", want)
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.add(field, v, "the port must be a number from 1 to 65535")
		return "", false
	}
	return net.JoinHostPort(ip.String(), port), true
}

// validHost reports whether h is an IP address or a host name.
func validHost(h string) bool {
	return net.ParseIP(h) != nil || validHostName(h)
}

// validHostName reports whether h is a DNS host name: dot-separated labels
// of letters, digits, '-' and '_' (no label starting or ending with '-'), at
// most 253 characters, an optional final dot.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}
