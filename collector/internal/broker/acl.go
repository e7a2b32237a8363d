package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hubmon/hubmon/agent/wire"
)

// Mosquitto's ACL file (acl_file), as Mosquitto 2.0 reads it:
//
//	user <name>                          the topic lines below are that user's
//	topic [read|write|readwrite|deny] T  (before any user line: anonymous clients')
//	pattern [read|write|readwrite|deny] T  every user's; %u is the user name, %c the client id
//
// with '#' comments. A site's agent needs what the embedded broker grants it:
// write its measurement and status topics, read its ack topic. The shipped
// ACL (deploy/mosquitto/hubmon.acl) grants that to every user with pattern
// lines, so a new site needs no lines of its own; SiteACL checks it, and
// AddSiteACL adds a user section for a site where the file does not.

// aclRule is one topic or pattern line.
type aclRule struct {
	line    int
	pattern bool   // a pattern line (else a topic line of user)
	user    string // for topic lines: the user section ("" before any user line)
	access  string // read, write, readwrite or deny
	topic   string
}

// siteNeeds are the accesses a site's agent needs.
func siteNeeds(site string) []struct{ access, topic string } {
	return []struct{ access, topic string }{
		{"write", wire.Topic(site, wire.TopicMeasurement)},
		{"write", wire.Topic(site, wire.TopicStatus)},
		{"read", wire.Topic(site, wire.TopicAck)},
	}
}

func parseACL(data []byte) ([]aclRule, error) {
	var rules []aclRule
	var errs []error
	user := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch keyword {
		case "user":
			user = rest
		case "topic", "pattern":
			r := aclRule{line: n, pattern: keyword == "pattern", user: user, access: "readwrite", topic: rest}
			if a, t, ok := strings.Cut(rest, " "); ok {
				switch a {
				case "read", "write", "readwrite", "deny":
					r.access, r.topic = a, strings.TrimSpace(t)
				}
			}
			if r.topic == "" {
				errs = append(errs, fmt.Errorf("line %d: %s without a topic", n, keyword))
				continue
			}
			rules = append(rules, r)
		default:
			errs = append(errs, fmt.Errorf("line %d: unknown keyword %q (want user, topic or pattern)", n, keyword))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rules, errors.Join(errs...)
}

// topicMatches reports whether topic matches the filter (MQTT wildcards +
// and #).
func topicMatches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) || (level != "+" && level != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// applies reports whether r concerns user (whose client id is the user
// name: the shipped config sets use_username_as_clientid) on topic.
func (r aclRule) applies(user, topic string) bool {
	if !r.pattern && r.user != user {
		return false
	}
	filter := r.topic
	if r.pattern {
		filter = strings.NewReplacer("%u", user, "%c", user).Replace(filter)
	}
	return topicMatches(filter, topic)
}

// SiteACL reads the Mosquitto ACL file at path and returns what site's
// agent needs that the file does not grant, as "write hubmon/v1/<site>/status"
// and the like (none: the file covers the site). It is an error if a deny
// line takes a needed access away: adding lines would not help.
func SiteACL(path, site string) (missing []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ACL file: %w", err)
	}
	rules, err := parseACL(data)
	if err != nil {
		return nil, fmt.Errorf("ACL file %q: %w", path, err)
	}
	for _, need := range siteNeeds(site) {
		granted := false
		for _, r := range rules {
			if !r.applies(site, need.topic) {
				continue
			}
			if r.access == "deny" {
				return nil, fmt.Errorf("ACL file %q line %d denies %s to site %q: change it by hand", path, r.line, need.topic, site)
			}
			if r.access == "readwrite" || r.access == need.access {
				granted = true
			}
		}
		if !granted {
			missing = append(missing, need.access+" "+need.topic)
		}
	}
	return missing, nil
}

// AddSiteACL appends a user section granting site what its agent needs to
// the Mosquitto ACL file at path, replacing the file atomically with its mode
// and owner. Mosquitto reads it again on SIGHUP.
func AddSiteACL(path, site string) error {
	if !wire.ValidSite(site) {
		return fmt.Errorf("add %q to ACL file: not a site id", site)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read ACL file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read ACL file: %w", err)
	}
	var b bytes.Buffer
	b.Write(data)
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\n# site %s (added by hubmon-collector enrol)\nuser %s\n", site, site)
	for _, need := range siteNeeds(site) {
		fmt.Fprintf(&b, "topic %s %s\n", need.access, need.topic)
	}
	if _, err := parseACL(b.Bytes()); err != nil {
		return fmt.Errorf("ACL file %q: %w", path, err)
	}
	if err := writeFileAtomic(path, b.Bytes(), st.Mode().Perm(), ownerOf(st)); err != nil {
		return fmt.Errorf("add site %q to ACL file: %w", site, err)
	}
	return nil
}

// MosquittoFiles reads a Mosquitto configuration file and returns the
// password_file and acl_file it names ("" for one it does not name). More
// than one distinct value of either (per_listener_settings) is an error: the
// caller must say which.
func MosquittoFiles(confPath string) (passwordFile, aclFile string, err error) {
	data, err := os.ReadFile(confPath)
	if err != nil {
		return "", "", fmt.Errorf("read Mosquitto config: %w", err)
	}
	found := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		key, value, _ := strings.Cut(line, " ")
		if key != "password_file" && key != "acl_file" {
			continue
		}
		value = strings.TrimSpace(value)
		if prev, ok := found[key]; ok && prev != value {
			return "", "", fmt.Errorf("Mosquitto config %q line %d: a second %s (%s, and %s before): say which to use", confPath, n+1, key, value, prev)
		}
		found[key] = value
	}
	return found["password_file"], found["acl_file"], nil
}
