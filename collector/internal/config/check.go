package config

// This file and decode.go are the same in agent/internal/config and
// collector/internal/config (a collector test compares them).

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// problem is one thing wrong with a config. It prints as
//
//	FILE:LINE: FIELD: MSG (got VALUE)
//
// leaving out the parts that are unknown or do not apply. A value built from
// environment variables is never printed; the variables are named instead.
type problem struct {
	file  string
	line  int
	field string // path such as "probes[2].interval"; "" for the file as a whole
	msg   string
	value any
	show  bool     // print the value
	vars  []string // the value came from these variables
}

func (p *problem) Error() string {
	var b strings.Builder
	switch {
	case p.file != "" && p.line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.file, p.line)
	case p.file != "":
		b.WriteString(p.file + ": ")
	case p.line > 0:
		fmt.Fprintf(&b, "line %d: ", p.line)
	}
	if p.field != "" {
		b.WriteString(p.field + ": ")
	}
	b.WriteString(p.msg)
	switch {
	case !p.show:
	case len(p.vars) > 0:
		refs := make([]string, len(p.vars))
		for i, v := range p.vars {
			refs[i] = "${" + v + "}"
		}
		fmt.Fprintf(&b, " (got a value from %s, not shown)", strings.Join(refs, ", "))
	default:
		fmt.Fprintf(&b, " (got %s)", describe(p.value))
	}
	return b.String()
}

// verbatim is a problem value printed as it is, not quoted.
type verbatim string

func describe(v any) string {
	switch x := v.(type) {
	case verbatim:
		return string(x)
	case string:
		if len(x) > 100 {
			x = x[:100] + "..."
		}
		return strconv.Quote(x)
	case []string:
		return fmt.Sprintf("%q", x)
	case time.Duration:
		return x.String()
	default:
		return fmt.Sprint(v)
	}
}

func joinProblems(probs []*problem) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// report returns every problem, or nil: first those of decoding, then those
// of validation except the ones about a field that could not be decoded (it
// holds a default, not what the file says). Each validation problem gets the
// line of its field, or of the nearest enclosing one in the file, and the
// variables its value came from.
func (d *decoder) report(file string, validation []*problem) error {
	var out []*problem
	for _, p := range d.probs {
		p.file = file
		out = append(out, p)
	}
	if d.fatal {
		return joinProblems(out)
	}
	for _, p := range validation {
		if d.undecoded(p.field) {
			continue
		}
		p.file, p.line, p.vars = file, d.lineOf(p.field), d.vars[p.field]
		out = append(out, p)
	}
	return joinProblems(out)
}

func (d *decoder) undecoded(field string) bool {
	for f := range d.failed {
		if field == f || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return true
		}
	}
	return false
}

func (d *decoder) lineOf(field string) int {
	for field != "" {
		if line, ok := d.lines[field]; ok {
			return line
		}
		field = field[:max(strings.LastIndexAny(field, ".["), 0)]
	}
	return 0
}

// checker collects the problems found by Validate.
type checker struct {
	probs []*problem
}

// add records a problem with field showing its value.
func (c *checker) add(field string, value any, format string, args ...any) {
	c.probs = append(c.probs, &problem{field: field, msg: fmt.Sprintf(format, args...), value: value, show: true})
}

// addNoValue records a problem with field that has no value worth showing.
func (c *checker) addNoValue(field string, format string, args ...any) {
	c.probs = append(c.probs, &problem{field: field, msg: fmt.Sprintf(format, args...)})
}

// required records a problem if v is empty, and reports whether it is set.
func (c *checker) required(field, v string) bool {
	if v == "" {
		c.addNoValue(field, "required")
		return false
	}
	return true
}

// duration checks min <= v <= max, and reports whether it is.
func (c *checker) duration(field string, v, min, max time.Duration) bool {
	switch {
	case v < min:
		c.add(field, v, "must be at least %s", min)
	case v > max:
		c.add(field, v, "must be at most %s", max)
	default:
		return true
	}
	return false
}

func (c *checker) number(field string, v, min, max int64) {
	switch {
	case v < min:
		c.add(field, v, "must be at least %d", min)
	case v > max:
		c.add(field, v, "must be at most %d", max)
	}
}

// readableFile checks that path, if set, is a file this process can open.
func (c *checker) readableFile(field, path string) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		c.add(field, path, "cannot read the file: %v", err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		c.add(field, path, "is a directory, not a file")
	}
}

// listen checks a listen address, host:port with a numeric port (0 picks a
// free one).
func (c *checker) listen(field, addr string) {
	if !c.required(field, addr) {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(field, addr, `must be host:port, like ":9470" or "127.0.0.1:9470"`)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.add(field, addr, "the port must be a number from 0 to 65535")
	}
}

// brokerScheme returns "tcp" or "ssl" for an MQTT broker URL with a scheme
// hubmon accepts (tcp, mqtt; ssl, tls, mqtts), and "" for any other.
func brokerScheme(raw string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "tcp", "mqtt":
		return "tcp"
	case "ssl", "tls", "mqtts":
		return "ssl"
	}
	return ""
}

// canonicalBrokerURL rewrites the scheme of a valid broker URL to tcp or ssl.
func canonicalBrokerURL(raw string) string {
	s := brokerScheme(raw)
	if s == "" {
		return raw
	}
	_, rest, _ := strings.Cut(raw, "://")
	return s + "://" + rest
}

// brokerURL checks an MQTT broker URL, scheme://host:port, and reports
// whether it is valid.
func (c *checker) brokerURL(field, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		c.addNoValue(field, "not a URL: %v", errors.Unwrap(err))
		return false
	}
	if u.User != nil {
		c.add(field, u.Redacted(), "must not hold a user name or password: set them in username and password")
		return false
	}
	ok := true
	if brokerScheme(raw) == "" {
		c.add(field, raw, "the scheme must be tcp or ssl (mqtt, mqtts and tls are accepted too)")
		ok = false
	}
	switch {
	case u.Opaque != "" || u.Host == "":
		c.add(field, raw, "must be scheme://host:port, like tcp://127.0.0.1:1883")
		return false
	case u.Hostname() == "":
		c.add(field, raw, "the host is missing")
		return false
	case u.Port() == "":
		c.add(field, raw, "the port is missing, like :1883 (tcp) or :8883 (ssl)")
		return false
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		c.add(field, raw, "must be only scheme://host:port, with no path or query")
		return false
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		c.add(field, raw, "the port must be a number from 1 to 65535")
		return false
	}
	return ok
}

// tlsFiles checks the TLS files of a broker connection: with a tcp broker
// none may be set; cert_file and key_file go together; each set must be
// readable. scheme is "tcp", "ssl" or "" when the URL is invalid.
func (c *checker) tlsFiles(prefix, scheme, ca, cert, key string) {
	if scheme == "tcp" {
		for _, f := range []struct{ name, path string }{{"ca_file", ca}, {"cert_file", cert}, {"key_file", key}} {
			if f.path != "" {
				c.add(prefix+"."+f.name, f.path, "only for an ssl:// broker; the url is tcp://")
			}
		}
		return
	}
	switch {
	case cert != "" && key == "":
		c.addNoValue(prefix+".key_file", "required with cert_file")
	case cert == "" && key != "":
		c.addNoValue(prefix+".cert_file", "required with key_file")
	}
	c.readableFile(prefix+".ca_file", ca)
	c.readableFile(prefix+".cert_file", cert)
	c.readableFile(prefix+".key_file", key)
}
