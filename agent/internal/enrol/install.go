// Package enrol installs an enrolment bundle (wire.Bundle) on a hub, in one
// of two ways, chosen by the agent's config:
//
//   - A config that takes its site from a variable (site: ${HUBMON_SITE}, as
//     the Debian package's does, the same file on every Pi) is not changed:
//     the bundle's values go into the variables it names, in the
//     EnvironmentFile next to it (agent.env, see env.go), with the line-quality
//     target derived from the broker's host.
//   - Any other config (or none) has the site, broker and credentials written
//     into it, keeping every other setting (probes above all) of a config that
//     is there already.
//
// Either way the council CA goes into a file next to the config, and the
// result is loaded as the agent would load it before anything is replaced.
// The package also finds bundles dropped on the SD card's boot partition
// (boot.go) and, for a short code, takes the CA certificate from the broker's
// TLS handshake (ca.go).
package enrol

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/wire"
)

// CAFileName is the file, in the config's directory, that Install writes
// the bundle's CA certificates to.
const CAFileName = "hubmon-ca.pem"

// DefaultDataDir is the data_dir of a config Install creates.
const DefaultDataDir = "/var/lib/hubmon-agent"

// Options configure Install.
type Options struct {
	// ConfigPath is the agent's config file: updated if it exists, created
	// if not. Required.
	ConfigPath string
	// DataDir is the data_dir of a config Install creates. Default
	// DefaultDataDir.
	DataDir string
	// Getenv looks up the ${NAME} variables of an existing config when
	// Install validates the result; a variable that is not set passes (the
	// service's environment may hold it). Default: none set.
	Getenv func(string) string
	// FetchTimeout bounds taking the CA certificate from the broker, for a
	// bundle from a short code. Default 15s.
	FetchTimeout time.Duration
	// EnvPath is the environment file of a config that takes its values
	// from variables. Default EnvFileName in the config's directory.
	EnvPath string
	// EchoTarget is the line-quality probes' UDP echo target (host:port),
	// for a config that takes it from a variable. Default the broker's host
	// and DefaultEchoPort.
	EchoTarget string
}

// Result says what Install did.
type Result struct {
	Site       string
	BrokerURL  string
	ConfigPath string
	// Created is true when there was no config before.
	Created bool
	// PreviousSite is the site of the config before, if it was another.
	PreviousSite string
	// Probes is the number of probes in the config.
	Probes int
	// CAPath is the CA file written, "" when the bundle has no CA.
	CAPath string
	// CA is the first certificate of CAPath.
	CA *x509.Certificate
	// CAFromBroker is true when the CA came from the broker (a short code).
	CAFromBroker bool

	// EnvPath is the environment file written, when the config takes its
	// values from variables ("": the config itself was written).
	EnvPath string
	// EnvCreated is true when there was no environment file before.
	EnvCreated bool
	// Env holds the variables set in EnvPath, in the config's order of use,
	// and their values; one with an empty value was removed from the file
	// (HUBMON_CA_FILE for a plain broker). It holds the password: never
	// log it.
	Env []EnvVar
	// EchoTarget is the line-quality target written to Env, if the config
	// takes one from a variable.
	EchoTarget string
}

// EnvVar is a variable of an environment file.
type EnvVar struct{ Name, Value string }

// freshConfig is the config Install starts from when there is none.
const freshConfig = `# hubmon-agent configuration, written by "hubmon-agent enrol".
# Every setting is explained in the hubmon source,
# agent/internal/config/testdata/valid-full.yml. "hubmon-agent enrol" keeps
# everything here but site and broker when it is run again.
site: ""
data_dir: ""
broker:
  url: ""
probes:
  # a speed test against the nearest public server, every 6 hours (add
  # opening_hours above to test 4 times a day inside them instead)
  - name: internet
    kind: speedtest
  # DNS resolution time and failures
  - name: dns
    kind: dns
  # GOV.UK, NHS and Universal Credit: can the hub's users reach them?
  - name: services
    kind: http
`

// Install installs b for the agent's config at opts.ConfigPath (see the
// package documentation): into its environment file if it takes its site
// from a variable (installEnv), else into the config itself. For a bundle
// from a short code it first takes the CA certificate from the broker, which
// must therefore be reachable. The result is validated before it replaces
// anything. A config is replaced atomically with the old one's mode (less
// any access for others: it now holds a password) and owner; a new one is
// 0640 with its directory's group.
func Install(ctx context.Context, b *wire.Bundle, opts Options) (*Result, error) {
	if opts.ConfigPath == "" {
		return nil, errors.New("install enrolment: no config path")
	}
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 15 * time.Second
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("the enrolment is not valid: %w", err)
	}
	res := &Result{Site: b.Site, BrokerURL: b.BrokerURL, ConfigPath: opts.ConfigPath}
	dir := filepath.Dir(opts.ConfigPath)
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}

	caPEM := []byte(b.CAPEM)
	if len(caPEM) == 0 && b.CASHA256 != "" {
		fctx, cancel := context.WithTimeout(ctx, opts.FetchTimeout)
		caPEM, err = FetchCA(fctx, b.BrokerURL, b.CASHA256)
		cancel()
		if err != nil {
			return nil, err
		}
		res.CAFromBroker = true
	}

	old, err := os.ReadFile(opts.ConfigPath)
	var st fs.FileInfo
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Created = true
		old = []byte(freshConfig)
	case err != nil:
		return nil, fmt.Errorf("read the agent's config: %w", err)
	default:
		if st, err = os.Stat(opts.ConfigPath); err != nil {
			return nil, err
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(old, &doc); err != nil {
		return nil, fmt.Errorf("the agent's config %s is not valid YAML (%v): fix it, or move it away and enrol again", opts.ConfigPath,
			strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 { // an empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the agent's config %s is not a mapping of settings: fix it, or move it away and enrol again", opts.ConfigPath)
	}
	if siteVar, ok := varRef(lookup(root, "site")); ok {
		return installEnv(b, caPEM, root, siteVar, absDir, opts, res)
	}
	if prev := scalar(root, "site"); prev != "" && prev != b.Site {
		res.PreviousSite = prev
	}
	set(root, "site", b.Site)
	if res.Created {
		set(root, "data_dir", opts.DataDir)
	}
	brk, err := mapping(root, "broker")
	if err != nil {
		return nil, fmt.Errorf("the agent's config %s: %w", opts.ConfigPath, err)
	}
	set(brk, "url", b.BrokerURL)
	set(brk, "username", b.Username)
	// the config expands ${VAR} and $$ in values: a literal $ is doubled
	setQuoted(brk, "password", strings.ReplaceAll(b.Password, "$", "$$"))
	caPath := filepath.Join(absDir, CAFileName)
	if len(caPEM) > 0 {
		set(brk, "ca_file", caPath)
	} else {
		remove(brk, "ca_file")
	}

	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write the agent's config: %w", err)
	}
	enc.Close()

	// the CA first: the config is validated with its ca_file in place
	restoreCA := func() {}
	if len(caPEM) > 0 {
		if res.CA, restoreCA, err = writeCA(caPath, caPEM); err != nil {
			return nil, err
		}
		res.CAPath = caPath
	}
	mode, owner := fs.FileMode(0o640), dirGroup(dir)
	if st != nil {
		mode, owner = st.Mode().Perm()&^0o007, ownerOf(st)
	}
	n, err := writeValidated(opts.ConfigPath, out.Bytes(), mode, owner, opts.Getenv)
	if err != nil {
		restoreCA()
		return nil, err
	}
	res.Probes = n
	return res, nil
}

// writeCA writes the CA certificates caPEM to path (mode 0644: they are
// public), returning the first one and a function that puts back what was
// there before.
func writeCA(path string, caPEM []byte) (*x509.Certificate, func(), error) {
	certs, err := wire.CACertificates(string(caPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA certificate: %w", err)
	}
	prev, prevErr := os.ReadFile(path)
	if err := writeAtomic(path, caPEM, 0o644, nil); err != nil {
		return nil, nil, fmt.Errorf("write the CA certificate: %w", err)
	}
	restore := func() {
		if prevErr == nil {
			_ = writeAtomic(path, prev, 0o644, nil)
		} else {
			os.Remove(path)
		}
	}
	return certs[0], restore, nil
}

// writeValidated writes data to a temporary file next to path, loads it as
// the agent would, and renames it over path only if it is valid. It returns
// the number of probes.
func writeValidated(path string, data []byte, mode fs.FileMode, owner *fileOwner, getenv func(string) string) (int, error) {
	tmp, err := writeTemp(path, data, mode, owner)
	if err != nil {
		return 0, fmt.Errorf("write the agent's config: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	cfg, err := config.Load(tmp, lenient(getenv))
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), tmp, path)
		return 0, fmt.Errorf("the agent's config would not be valid with this enrolment, so it was left as it was:\n%s", msg)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("write the agent's config: %w", err)
	}
	syncDir(filepath.Dir(path))
	return len(cfg.Probes), nil
}

// lenient is getenv (nil: none set) with a stand-in value for a variable it
// does not set: one that the service's environment sets but this shell does
// not must not fail the check.
func lenient(getenv func(string) string) func(string) string {
	return func(name string) string {
		if getenv != nil {
			if v := getenv(name); v != "" {
				return v
			}
		}
		return "set-by-the-service"
	}
}

// The YAML edits: on the node tree, so that comments and every setting
// enrol does not own stay as they were.

// lookup returns the value node of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalar returns the scalar value of key in m, or "".
func scalar(m *yaml.Node, key string) string {
	if v := lookup(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func set(m *yaml.Node, key, value string) { setStyle(m, key, value, 0) }

func setQuoted(m *yaml.Node, key, value string) { setStyle(m, key, value, yaml.SingleQuotedStyle) }

// setStyle sets key in m to the string value, adding the key at the end
// if it is not there. A comment on the old value's line goes with it: it
// was about the old value.
func setStyle(m *yaml.Node, key, value string, style yaml.Style) {
	if v := lookup(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: style}
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: style})
}

// remove deletes key from m.
func remove(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// mapping returns the mapping under key in m, making one if the key is
// missing or empty.
func mapping(m *yaml.Node, key string) (*yaml.Node, error) {
	v := lookup(m, key)
	switch {
	case v == nil:
		v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case v.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("%s: is not a mapping of settings (an alias, or a value): write the settings out", key)
	}
	return v, nil
}
