package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: whatever the bytes, Parse returns a config or an error and
// never panics; every problem it reports names the field it is about, or is
// about the file as a whole (not YAML, not a mapping, two documents).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("site: ${X}\nprobes: [{name: a, kind: dns, <<: {interval: 1m}}]\n"))
	f.Add([]byte(laughs(30)))
	getenv := func(name string) string {
		if name == "UNSET" {
			return ""
		}
		return "x"
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, getenv)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		var probs interface{ Unwrap() []error }
		if !errors.As(err, &probs) {
			t.Fatalf("Parse error is not a list of problems: %T %v", err, err)
		}
		for _, e := range probs.Unwrap() {
			p, ok := e.(*problem)
			if !ok {
				t.Fatalf("problem of type %T: %v", e, e)
			}
			if p.msg == "" || !utf8.ValidString(p.msg) {
				t.Errorf("problem %q: empty or not UTF-8", p.Error())
			}
			if p.field == "" && !wholeFile(p.msg) {
				t.Errorf("problem %q names no field", p.Error())
			}
		}
	})
}

// laughs is a document whose probes merge anchors that merge anchors, n
// deep: 2^n mappings once expanded.
func laughs(n int) string {
	var b strings.Builder
	b.WriteString("probes:\n  - &p0 {name: a, kind: dns}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - &p%d {<<: [*p%d, *p%d]}\n", i, i-1, i-1)
	}
	return b.String()
}

// TestAliasBomb: a document that expands exponentially is refused at once.
func TestAliasBomb(t *testing.T) {
	_, err := Parse([]byte(laughs(40)), nil)
	if err == nil || !strings.Contains(err.Error(), "too many values once aliases and merge keys are expanded") {
		t.Fatalf("Parse(alias bomb) = %v", err)
	}
}

// wholeFile reports whether msg is about the file as a whole.
func wholeFile(msg string) bool {
	for _, prefix := range []string{"invalid YAML", "a second YAML document", "want a mapping", "too many values"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
