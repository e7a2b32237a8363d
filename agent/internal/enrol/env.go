package enrol

// A config that takes its per-hub values from variables (the Debian
// package's /etc/hubmon/agent.yaml: site: ${HUBMON_SITE} and so on, the same
// file on every Pi, a conffile that dpkg would ask about if it changed) is
// left alone: the bundle goes into the environment file systemd gives the
// service (EnvironmentFile=/etc/hubmon/agent.env).

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/wire"
)

// EnvFileName is the environment file, in the config's directory, that
// Install writes for a config that takes its values from variables.
const EnvFileName = "agent.env"

// DefaultEchoPort is the port of the collector's UDP echo responder
// (its echo_server.listen default, ":9471"): the line-quality target is the
// broker's host at this port unless told otherwise.
const DefaultEchoPort = 9471

// envHeader starts a new environment file.
const envHeader = `# hubmon-agent's enrolment: the values of the ${...} in the agent's config,
# written by "hubmon-agent enrol", which replaces these variables when it is
# run again and keeps any other line. systemd reads this file as the
# service's EnvironmentFile. It holds the hub's MQTT password: root only.
`

// varRefRE is a value that is one variable and nothing else: ${NAME} or
// ${NAME:-default} (see agent/internal/config).
var varRefRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}$]*)?\}$`)

// varRef returns the variable that the scalar n is, if it is one.
func varRef(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	m := varRefRE.FindStringSubmatch(n.Value)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// field returns the value of key in the mapping m (aliases followed), or
// nil if m is not a mapping or has no such key.
func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	m = deref(m)
	if m.Kind != yaml.MappingNode {
		return nil
	}
	if v := lookup(m, key); v != nil {
		return deref(v)
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// envPlan is what installEnv is to write: each variable the config uses for
// a value the bundle sets, and the problems that keep it from doing so.
type envPlan struct {
	vars  []EnvVar
	index map[string]int // variable -> its place in vars
	where []string       // the field each of vars was first set for
	probs []error
}

// set gives variable name the value for field.
func (p *envPlan) set(field, name, value string) {
	if i, ok := p.index[name]; ok {
		if p.vars[i].Value != value {
			p.probs = append(p.probs, fmt.Errorf("%s and %s both take ${%s}, and the enrolment sets them differently: give them a variable each", p.where[i], field, name))
		}
		return
	}
	p.index[name] = len(p.vars)
	p.vars = append(p.vars, EnvVar{Name: name, Value: value})
	p.where = append(p.where, field)
}

// want records that field, the value n of the config (nil: not there),
// must be value: a variable is set to it; a value written out in the config
// must be that already. absentOK says the field may be left out (its
// default is value). suggest is what to write instead.
func (p *envPlan) want(field string, n *yaml.Node, value, suggest string, absentOK bool) {
	switch name, isVar := varRef(n); {
	case n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		if !absentOK {
			p.probs = append(p.probs, fmt.Errorf("%s is missing: write %s", field, suggest))
		}
	case isVar:
		p.set(field, name, value)
	case n.Kind == yaml.ScalarNode && n.Value == strings.ReplaceAll(value, "$", "$$"):
		// written out as the enrolment has it: nothing to change
	default:
		p.probs = append(p.probs, fmt.Errorf("%s is written out in it (line %d), not taken from a variable: write %s", field, n.Line, suggest))
	}
}

// installEnv installs b for a config (root, unchanged) that takes its site
// from the variable siteVar: each variable the config takes the site,
// broker URL, user name, password and CA file from, and the echo target of
// its line-quality probes, is set in the environment file (opts.EnvPath),
// which keeps every other line; the CA goes to CAFileName next to the
// config. A value the bundle sets that the config has written out must be
// what the bundle says. The config is loaded with the new environment
// before the file is replaced (atomically, with the old file's owner and
// mode less any access for others; a new one is 0600).
func installEnv(b *wire.Bundle, caPEM []byte, root *yaml.Node, siteVar, dir string, opts Options, res *Result) (*Result, error) {
	envPath := opts.EnvPath
	if envPath == "" {
		envPath = filepath.Join(dir, EnvFileName)
	}
	caPath := ""
	if len(caPEM) > 0 {
		caPath = filepath.Join(dir, CAFileName)
	}
	echo := opts.EchoTarget
	if echo == "" {
		_, host, _, err := wire.BrokerAddress(b.BrokerURL)
		if err != nil {
			return nil, err // Validate checked it
		}
		echo = net.JoinHostPort(host, strconv.Itoa(DefaultEchoPort))
	}

	p := &envPlan{index: map[string]int{}}
	p.want("site", field(root, "site"), b.Site, "site: ${HUBMON_SITE}", false)
	brk := field(root, "broker")
	p.want("broker.url", field(brk, "url"), b.BrokerURL, "url: ${HUBMON_BROKER_URL}", false)
	p.want("broker.username", field(brk, "username"), b.Username, "username: ${HUBMON_SITE}, or leave it out", true)
	p.want("broker.password", field(brk, "password"), b.Password, "password: ${HUBMON_MQTT_PASSWORD}", false)
	p.want("broker.ca_file", field(brk, "ca_file"), caPath, `ca_file: "${HUBMON_CA_FILE:-}"`, caPath == "")
	if probes := field(root, "probes"); probes != nil && probes.Kind == yaml.SequenceNode {
		for i, pr := range probes.Content {
			if name, ok := varRef(field(field(pr, "linequality"), "udp_target")); ok {
				p.set(fmt.Sprintf("probes[%d].linequality.udp_target", i), name, echo)
				res.EchoTarget = echo
			}
		}
	}
	if len(p.probs) > 0 {
		return nil, fmt.Errorf("the agent's config %s takes its site from ${%s}, so enrol writes the enrolment into the variables it uses, in %s, and changes nothing in the config; but:\n%w",
			opts.ConfigPath, siteVar, envPath, errors.Join(p.probs...))
	}
	for _, v := range p.vars {
		if strings.ContainsAny(v.Value, "\n\r\x00") {
			return nil, fmt.Errorf("the enrolment's value for ${%s} cannot be written in %s (a line break)", v.Name, envPath)
		}
	}

	old, err := os.ReadFile(envPath)
	var st fs.FileInfo
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.EnvCreated = true
	case err != nil:
		return nil, fmt.Errorf("read the agent's environment file: %w", err)
	default:
		if st, err = os.Stat(envPath); err != nil {
			return nil, err
		}
	}
	lines := parseEnvFile(old)
	if prev := lines.get(siteVar); prev != "" && prev != b.Site {
		res.PreviousSite = prev
	}
	newEnv := map[string]string{}
	for _, v := range p.vars {
		newEnv[v.Name] = v.Value
	}
	getenv := func(name string) string {
		if v, ok := newEnv[name]; ok {
			return v
		}
		if v, ok := lines.lookup(name); ok {
			return v // what systemd will set, empty or not
		}
		return lenient(opts.Getenv)(name)
	}

	// the CA first: the config is validated with its ca_file in place
	restoreCA := func() {}
	if caPath != "" {
		if res.CA, restoreCA, err = writeCA(caPath, caPEM); err != nil {
			return nil, err
		}
		res.CAPath = caPath
	}
	cfg, err := config.Load(opts.ConfigPath, getenv)
	if err != nil {
		restoreCA()
		return nil, fmt.Errorf("the agent's config would not be valid with this enrolment, so %s was left as it was:\n%w", envPath, err)
	}
	mode, owner := fs.FileMode(0o600), (*fileOwner)(nil)
	if st != nil {
		mode, owner = st.Mode().Perm()&^0o007, ownerOf(st)
	}
	if err := writeAtomic(envPath, lines.update(p.vars), mode, owner); err != nil {
		restoreCA()
		return nil, fmt.Errorf("write the agent's environment file: %w", err)
	}
	res.EnvPath, res.Env, res.Probes = envPath, p.vars, len(cfg.Probes)
	return res, nil
}

// ReadEnvFile returns the variables the environment file at path sets, read
// as systemd reads it (a value that runs on to the next line is left out).
func ReadEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, l := range parseEnvFile(data) {
		if l.name != "" && l.ok {
			env[l.name] = l.value // the last one wins, as in systemd
		}
	}
	return env, nil
}

// envFile is an environment file as systemd reads it (EnvironmentFile=, see
// systemd.exec(5)), line by line, so that it can be rewritten with the lines
// enrol does not own as they were.
type envFile []envLine

type envLine struct {
	text  string
	name  string // "" if the line sets no variable (a comment, say)
	value string
	ok    bool // the value could be read (not a quoted value running on to the next line)
}

func parseEnvFile(data []byte) envFile {
	if len(data) == 0 {
		return nil
	}
	var f envFile
	for _, text := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		l := envLine{text: text}
		l.name, l.value, l.ok = parseEnvLine(text)
		f = append(f, l)
	}
	return f
}

// parseEnvLine reads one line of an environment file as systemd does:
// NAME=VALUE, white space around the name and before the value ignored;
// '#' or ';' starts a comment line; a value in single quotes is taken as
// written, one in double quotes with \", \\, \` and \$ unescaped; an
// unquoted one loses trailing white space and its backslashes escape the
// next character. A line that continues onto the next (a trailing
// backslash, an unclosed quote) is not read: ok is false.
func parseEnvLine(line string) (name, value string, ok bool) {
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' || s[0] == ';' {
		return "", "", false
	}
	name, rest, found := strings.Cut(s, "=")
	name = strings.TrimRight(name, " \t")
	if !found || !varRefRE.MatchString("${"+name+"}") {
		return "", "", false
	}
	rest = strings.TrimLeft(rest, " \t")
	var b strings.Builder
	switch {
	case strings.HasPrefix(rest, "'"):
		if v, _, closed := strings.Cut(rest[1:], "'"); closed {
			return name, v, true
		}
		return name, "", false
	case strings.HasPrefix(rest, `"`):
		for i := 1; i < len(rest); i++ {
			switch c := rest[i]; {
			case c == '"':
				return name, b.String(), true
			case c == '\\' && i+1 < len(rest) && strings.IndexByte("\"\\`$", rest[i+1]) >= 0:
				b.WriteByte(rest[i+1])
				i++
			case c == '\\' && i+1 == len(rest):
				return name, "", false
			default:
				b.WriteByte(c)
			}
		}
		return name, "", false
	}
	rest = strings.TrimRight(rest, " \t")
	for i := 0; i < len(rest); i++ {
		if rest[i] == '\\' {
			if i+1 == len(rest) {
				return name, "", false
			}
			i++
		}
		b.WriteByte(rest[i])
	}
	return name, b.String(), true
}

// lookup returns the value the file gives name (the last line setting it
// wins, as in systemd), and whether it sets it.
func (f envFile) lookup(name string) (string, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].name == name {
			return f[i].value, f[i].ok
		}
	}
	return "", false
}

func (f envFile) get(name string) string {
	v, _ := f.lookup(name)
	return v
}

// update returns the file with vars set: each one's first line replaced,
// any other line setting it dropped, new ones added at the end; a variable
// with an empty value is removed (the config's ${NAME:-} then applies).
// Every other line stays as it was.
func (f envFile) update(vars []EnvVar) []byte {
	set := map[string]string{}
	for _, v := range vars {
		set[v.Name] = v.Value
	}
	done := map[string]bool{}
	var out strings.Builder
	if len(f) == 0 {
		out.WriteString(envHeader)
	}
	for _, l := range f {
		v, owned := set[l.name]
		switch {
		case !owned:
			out.WriteString(l.text + "\n")
		case !done[l.name] && v != "":
			out.WriteString(envAssignment(l.name, v))
		}
		if owned {
			done[l.name] = true
		}
	}
	for _, v := range vars {
		if !done[v.Name] && v.Value != "" {
			out.WriteString(envAssignment(v.Name, v.Value))
			done[v.Name] = true
		}
	}
	return []byte(out.String())
}

// plainEnvValue is a value written without quotes.
var plainEnvValue = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// envAssignment is the line NAME=VALUE, the value in double quotes with
// \, ", ` and $ escaped unless it needs none: read the same by systemd and
// by a POSIX shell (". /etc/hubmon/agent.env").
func envAssignment(name, value string) string {
	if plainEnvValue.MatchString(value) {
		return name + "=" + value + "\n"
	}
	var b strings.Builder
	for _, c := range []byte(value) {
		if strings.IndexByte("\"\\`$", c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return name + `="` + b.String() + "\"\n"
}
