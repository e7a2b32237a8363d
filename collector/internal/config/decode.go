package config

// This file and check.go are the same in agent/internal/config and
// collector/internal/config (a collector test compares them): both daemons
// load their config the same way, and Go's internal/ rule keeps either package
// from importing the other.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder fills a struct holding defaults from a YAML document, strictly: an
// unknown or repeated key, a value of the wrong shape and an unset variable are
// problems. It collects every problem instead of stopping at the first.
//
// The decoding is done here rather than by yaml.Decoder with KnownFields(true)
// because ${VAR} expansion has to happen in the parsed values, not in the text
// (a comment mentioning ${VAR} must not need it set, and a value with '#', '"'
// or ': ' in it must not change the document), and yaml.Node.Decode ignores
// KnownFields. Doing it here also lets every message name the field path.
//
// Field types supported: struct (a mapping; keys are the yaml tags), pointer to
// struct, slice, string, bool, int kinds and time.Duration (a string such as
// "5m"). A struct or pointer element created for a list item or a mapping gets
// its defaults from an applyDefaults method, if its pointer has one.
type decoder struct {
	getenv func(string) string
	probs  []*problem
	// failed holds the fields whose value could not be decoded: they hold a
	// default, so validation problems about them would mislead.
	failed map[string]bool
	// fatal is set when the file could not be decoded at all (invalid YAML,
	// not a mapping): validating the defaults would only add noise.
	fatal bool
	lines map[string]int      // field path -> line of its key, or of a list item
	vars  map[string][]string // field path -> variables its value was built from
	// visits counts the values walked, aliases and merges expanded, and
	// maxVisits bounds it: see maxExpanded
	visits, maxVisits int
}

// maxExpanded bounds the values the decoder walks beyond those written in
// the file, once aliases and merge keys are expanded. A real config expands
// a few hundred; anchors that refer to anchors that refer to anchors (a
// "billion laughs" document) would take exponential time. What is written
// is not bounded: a sites file of 20,000 hubs holds half a million values.
const maxExpanded = 100_000

// visit counts one more value walked. Past maxVisits it notes the problem,
// marks the file undecodable and returns false: stop walking.
func (d *decoder) visit(n *yaml.Node) bool {
	if d.fatal {
		return false
	}
	if d.visits++; d.visits > d.maxVisits {
		d.fatal = true
		d.note(n.Line, "", fmt.Sprintf("too many values once aliases and merge keys are expanded (more than %d beyond the file's own): use fewer anchors", maxExpanded))
		return false
	}
	return true
}

func newDecoder(getenv func(string) string) *decoder {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return &decoder{
		getenv: getenv,
		failed: make(map[string]bool),
		lines:  make(map[string]int),
		vars:   make(map[string][]string),
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// decode decodes the single YAML document in data into out, a pointer to a
// struct. An empty document leaves out as it is.
func (d *decoder) decode(data []byte, out any) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntax(err)
		}
		return
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntax(err)
		return
	default:
		d.fatal = true
		d.note(next.Line, "", "a second YAML document: the file must hold one")
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	d.maxVisits = written(&doc) + maxExpanded
	if root := deref(doc.Content[0]); root.Kind != yaml.MappingNode && root.ShortTag() != "!!null" {
		d.fatal = true
		d.wrongShape(root, "", "a mapping of settings")
		return
	}
	d.value(doc.Content[0], "", reflect.ValueOf(out).Elem())
}

// written counts the nodes of n as written, not following aliases.
func written(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += written(k)
	}
	return c
}

var yamlErrorRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntax(err error) {
	d.fatal = true
	if m := yamlErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.note(line, "", "invalid YAML: "+m[2])
		return
	}
	d.note(0, "", "invalid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
}

// note records a problem that leaves no field undecoded.
func (d *decoder) note(line int, field, msg string) {
	d.probs = append(d.probs, &problem{line: line, field: field, msg: msg})
}

// bad records that the value of field could not be decoded.
func (d *decoder) bad(line int, field, msg string) {
	d.failed[field] = true
	d.note(line, field, msg)
}

// badValue is bad showing the value, or the variables it came from.
func (d *decoder) badValue(line int, field string, value any, msg string) {
	d.failed[field] = true
	d.probs = append(d.probs, &problem{line: line, field: field, msg: msg, value: value, show: true, vars: d.vars[field]})
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) {
	n = deref(n)
	if !d.visit(n) {
		return
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" or "key: ~" keeps the default
	}
	switch {
	case v.Type() == durationType:
		s, ok := d.text(n, path)
		if !ok {
			return
		}
		dur, msg := parseDuration(s)
		if msg != "" {
			d.badValue(n.Line, path, s, msg)
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			p := reflect.New(v.Type().Elem())
			applyDefaults(p)
			v.Set(p)
		}
		d.value(n, path, v.Elem())
	case v.Kind() == reflect.Struct:
		d.mapping(n, path, v)
	case v.Kind() == reflect.Slice:
		d.sequence(n, path, v)
	case v.Kind() == reflect.String:
		if s, ok := d.text(n, path); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Bool:
		s, ok := d.text(n, path)
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.badValue(n.Line, path, s, "want true or false")
		}
	case v.CanInt():
		s, ok := d.text(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) || err == nil && v.OverflowInt(i):
			d.badValue(n.Line, path, s, "number too large")
		case err != nil:
			d.badValue(n.Line, path, s, "want a whole number")
		default:
			v.SetInt(i)
		}
	default:
		panic("config: field type " + v.Type().String() + " is not supported")
	}
}

// applyDefaults calls p.applyDefaults() if p (a pointer) has that method.
func applyDefaults(p reflect.Value) {
	if x, ok := p.Interface().(interface{ applyDefaults() }); ok {
		x.applyDefaults()
	}
}

// text returns the scalar n with its variables expanded.
func (d *decoder) text(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.wrongShape(n, path, "a single value")
		return "", false
	}
	s, vars, msgs := expand(n.Value, d.getenv)
	for _, m := range msgs {
		d.bad(n.Line, path, m)
	}
	if len(msgs) > 0 {
		return "", false
	}
	if len(vars) > 0 {
		d.vars[path] = vars
	}
	return s, true
}

func (d *decoder) wrongShape(n *yaml.Node, path, want string) {
	var got any
	switch n.Kind {
	case yaml.MappingNode:
		got = verbatim("a mapping")
	case yaml.SequenceNode:
		got = verbatim("a list")
	default:
		got = n.Value // as written: variables are not expanded yet
	}
	d.failed[path] = true
	d.probs = append(d.probs, &problem{line: n.Line, field: path, msg: "want " + want, value: got, show: true})
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	d.mappingExcept(n, path, v, nil)
}

// mappingExcept decodes mapping n into struct v, leaving out the keys in
// except: those set by the mapping that merges n.
func (d *decoder) mappingExcept(n *yaml.Node, path string, v reflect.Value, except map[string]bool) {
	if n.Kind != yaml.MappingNode {
		d.wrongShape(n, path, "a mapping of settings")
		return
	}
	names, index := yamlFields(v.Type())
	// Merge keys (<<: *anchor) first, without the keys this mapping sets:
	// its own keys win.
	own := make(map[string]bool)
	for k := range except {
		own[k] = true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && !isMerge(k) {
			own[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMerge(n.Content[i]) {
			d.merge(n.Content[i+1], path, v, own)
		}
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMerge(k) || k.Kind == yaml.ScalarNode && except[k.Value] {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			where := path
			if where == "" {
				where = "top level" // found by FuzzParse: {}: named no field
			}
			d.note(k.Line, where, "a key must be a plain name, not a list or a mapping")
			continue
		}
		field := join(path, k.Value)
		if first, ok := seen[k.Value]; ok {
			d.note(k.Line, field, fmt.Sprintf("set twice (first at line %d)", first))
			continue
		}
		seen[k.Value] = k.Line
		j, ok := index[k.Value]
		if !ok {
			if s := suggest(k.Value, names); s != "" {
				d.note(k.Line, field, fmt.Sprintf("unknown field; did you mean %q?", s))
			} else {
				d.note(k.Line, field, "unknown field; known fields here: "+strings.Join(names, ", "))
			}
			continue
		}
		d.lines[field] = k.Line // the key's line: a mapping's value starts below it
		d.value(val, field, v.Field(j))
	}
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

func (d *decoder) merge(n *yaml.Node, path string, v reflect.Value, except map[string]bool) {
	n = deref(n)
	if !d.visit(n) {
		return
	}
	field := path
	if field == "" { // a merge key at the top of the file
		field = "<<"
	}
	switch n.Kind {
	case yaml.MappingNode:
		d.mappingExcept(n, path, v, except)
	case yaml.SequenceNode:
		// The first mapping listed wins, so it goes last.
		for i := len(n.Content) - 1; i >= 0; i-- {
			m := deref(n.Content[i])
			if m.Kind != yaml.MappingNode {
				d.note(m.Line, field, "<< takes a mapping or a list of mappings")
				continue
			}
			d.mappingExcept(m, path, v, except)
		}
	default:
		d.note(n.Line, field, "<< takes a mapping or a list of mappings")
	}
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.wrongShape(n, path, "a list")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		applyDefaults(s.Index(i).Addr())
		d.value(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

// yamlFields returns the yaml names of the fields of struct type t, in order,
// and their field indexes. Fields without a yaml tag are not settable.
func yamlFields(t reflect.Type) ([]string, map[string]int) {
	var names []string
	index := make(map[string]int)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

// join appends a key to a field path. A key that is not a plain name (empty,
// with spaces, line breaks or bytes that are not UTF-8: never a known field)
// is quoted, so that a problem about it still names it, on one line.
func join(path, name string) string {
	if !plainKeyRE.MatchString(name) {
		name = strconv.Quote(name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// suggest returns the known name that name is probably a typo of, or "".
func suggest(name string, known []string) string {
	norm := strings.NewReplacer("_", "", "-", "", " ", "")
	best, bestDist := "", 3 // at most 2 edits
	for _, k := range known {
		if strings.EqualFold(norm.Replace(k), norm.Replace(name)) {
			return k
		}
		if dist := editDistance(strings.ToLower(name), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// expand replaces each ${NAME} in s with getenv(NAME) and each $$ with one $.
// ${NAME:-default} is getenv(NAME), or default (as written, possibly empty)
// when that is unset or empty: for a setting that may be left out, such as a
// CA file that only a TLS broker needs. Any other $ is a problem, as is a
// variable without a default that is unset or empty. It returns the names of
// the variables used, and a message for each problem; the messages never
// include a variable's value.
func expand(s string, getenv func(string) string) (out string, vars, problems []string) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", nil, append(problems, `"${" without a closing "}"`)
			}
			ref := rest[1:end]
			i += 1 + end
			name, def, hasDefault := strings.Cut(ref, ":-")
			if !validVarName(name) || strings.Contains(def, "$") {
				problems = append(problems, fmt.Sprintf("%q: a variable is written ${NAME} or ${NAME:-default}, NAME being letters, digits and underscores, and the default without a \"$\"", "${"+ref+"}"))
				continue
			}
			v := getenv(name)
			if v == "" && hasDefault {
				v = def
			} else if v == "" {
				problems = append(problems, fmt.Sprintf("environment variable %s is not set (or is empty)", name))
				continue
			}
			b.WriteString(v)
			vars = append(vars, name)
		default:
			return "", nil, append(problems, `a "$" must start a variable, ${NAME}, or be doubled, $$, for a literal "$"`)
		}
	}
	if len(problems) > 0 {
		return "", nil, problems
	}
	return b.String(), vars, nil
}

func validVarName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

var daysRE = regexp.MustCompile(`(?i)[0-9]\s*(d|days?|w|weeks?)([^a-z]|$)`)

// parseDuration parses a duration such as "90s", "5m" or "1h30m" (Go's
// time.ParseDuration; "0" needs no unit). On failure it returns a message
// saying how to write one.
func parseDuration(s string) (time.Duration, string) {
	if s == "0" {
		return 0, ""
	}
	d, err := time.ParseDuration(s)
	switch {
	case err == nil:
		return d, ""
	case daysRE.MatchString(s):
		return 0, `not a duration: days and weeks are not units; use hours, like "24h" or "168h"`
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, `not a duration: it needs a unit, like "30s" or "5m"`
	}
	return 0, `not a duration: write a number and a unit (h, m, s, ms), like "90s", "5m" or "1h30m"`
}
