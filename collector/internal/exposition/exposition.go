// Package exposition writes metrics in the Prometheus text format (version
// 0.0.4) straight from the collector's own state, for the per-site series
// that are too many to go through a prometheus.Registry at fleet scale: a
// registry builds, checks and sorts a protobuf message per series (a few µs
// and about 780 bytes of garbage each); a Writer appends bytes to a buffer
// (about 0.1 µs and none). The output is what expfmt would write for the
// same series: labels in name order, values formatted alike.
//
// The caller keeps each family's samples together (the format requires it)
// and the label values in the order the family names them. A sample whose
// label values are not valid UTF-8 is left out, never sent broken.
package exposition

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
)

// ContentType is the media type of what a Writer writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric type.
type Type string

// The types a Family may have.
const (
	Gauge   Type = "gauge"
	Counter Type = "counter"
)

// Family is a metric family: its name, help, type and label names. Create
// families once (package variables) with NewFamily; a Family is read-only
// and safe for concurrent use.
type Family struct {
	name   string
	header []byte   // the HELP and TYPE lines
	open   []byte   // `name{a="` or `name ` without labels
	seps   [][]byte // before each further label value, in name order: `",b="`
	perm   []int    // perm[i]: the argument index of the i-th label in name order
}

// NewFamily returns a family. labels are given in the order Sample takes
// their values; the output has them in name order. It panics on an invalid
// metric or label name, or a repeated label: families are fixed at compile
// time, so that is a programming error.
func NewFamily(name, help string, typ Type, labels ...string) *Family {
	if !model.IsValidLegacyMetricName(name) {
		panic(fmt.Sprintf("exposition: invalid metric name %q", name))
	}
	f := &Family{name: name}
	f.header = fmt.Appendf(nil, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
	if len(labels) == 0 {
		f.open = []byte(name + " ")
		return f
	}
	f.perm = make([]int, len(labels))
	for i := range f.perm {
		f.perm[i] = i
	}
	slices.SortFunc(f.perm, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	for i, p := range f.perm {
		l := labels[p]
		if !model.LabelName(l).IsValidLegacy() || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("exposition: %s: invalid label name %q", name, l))
		}
		if i > 0 && labels[f.perm[i-1]] == l {
			panic(fmt.Sprintf("exposition: %s: label %q twice", name, l))
		}
		if i == 0 {
			f.open = []byte(name + "{" + l + `="`)
		} else {
			f.seps = append(f.seps, []byte(`",`+l+`="`))
		}
	}
	return f
}

// Name returns the family's metric name.
func (f *Family) Name() string { return f.name }

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// flushAt is the buffer size at which a Writer writes to its io.Writer.
const flushAt = 64 << 10

// ErrInterleaved is returned when a family's samples are not kept together.
var ErrInterleaved = errors.New("exposition: a family's samples were not kept together")

// Writer writes samples to an io.Writer, buffered. It is not safe for
// concurrent use. The first error (from the io.Writer, or ErrInterleaved)
// stops all further writing; Flush returns it.
type Writer struct {
	out     io.Writer
	buf     []byte
	err     error
	cur     *Family
	written map[*Family]bool
	samples int
}

// NewWriter returns a Writer to out.
func NewWriter(out io.Writer) *Writer {
	return &Writer{out: out, buf: make([]byte, 0, flushAt+4096), written: map[*Family]bool{}}
}

// Err returns the first error, if any.
func (w *Writer) Err() error { return w.err }

// Samples returns how many samples were written.
func (w *Writer) Samples() int { return w.samples }

// A Label is a label value checked and escaped once (NewLabel), to be
// written many times without either: a site's id is in every one of its
// series. The zero Label is the empty value.
type Label struct{ escaped string }

// NewLabel returns s as a Label, or false if s is not valid UTF-8.
func NewLabel(s string) (Label, bool) {
	b, ok := appendLabelValue(nil, s)
	if !ok {
		return Label{}, false
	}
	if len(b) == len(s) {
		return Label{s}, true // nothing escaped: share s
	}
	return Label{string(b)}, true
}

// An Arena keeps label values side by side in one string, each named by a
// Ref, for one scrape. A scrape that copies its sites' label values into
// one, in the order it writes them, reads them from memory in order (label
// values made one by one lie wherever they were allocated; a scrape that
// writes a site's id into each of its series, for 20,000 sites, waits on
// memory for each), and its rows of Refs hold no pointers: the garbage
// collector neither scans them nor guards their writes with barriers.
//
// Add values, then call Done, then Label. An Arena is not safe for
// concurrent use until Done returns; after, it is read-only.
type Arena struct {
	buf []byte
	s   string // buf's text, after Done
}

// A Ref names a label value in an Arena.
type Ref struct{ off, n uint32 }

// NewArena returns an Arena with room for size bytes of label values.
func NewArena(size int) *Arena { return NewArenaOn(make([]byte, 0, size)) }

// NewArenaOn returns an Arena that keeps its values in buf's capacity
// (its contents are overwritten), and on the heap past it. buf must not
// change while the Arena is in use.
func NewArenaOn(buf []byte) *Arena { return &Arena{buf: buf[:0]} }

// Add copies l into the arena and returns its Ref.
func (a *Arena) Add(l Label) Ref {
	r := Ref{uint32(len(a.buf)), uint32(len(l.escaped))}
	a.buf = append(a.buf, l.escaped...)
	return r
}

// Done ends the adding.
func (a *Arena) Done() {
	a.s = unsafe.String(unsafe.SliceData(a.buf), len(a.buf)) // no copy: buf is not written again
	a.buf = nil
}

// Label returns the label value r names.
func (a *Arena) Label(r Ref) Label { return Label{a.s[r.off : r.off+r.n]} }

// Sample writes one sample of family f with the label values lv, in the
// order f's labels were given to NewFamily. The family's HELP and TYPE are
// written before its first sample.
func (w *Writer) Sample(f *Family, v float64, lv ...string) {
	if !w.check(f, len(lv)) {
		return
	}
	start, cur := len(w.buf), w.cur
	w.open(f)
	for i, p := range f.perm {
		if i > 0 {
			w.buf = append(w.buf, f.seps[i-1]...)
		}
		var ok bool
		if w.buf, ok = appendLabelValue(w.buf, lv[p]); !ok {
			w.buf = w.buf[:start]
			if cur != f {
				delete(w.written, f)
				w.cur = cur
			}
			return
		}
	}
	w.close(f, v)
}

// SampleLabels is Sample with label values made by NewLabel.
func (w *Writer) SampleLabels(f *Family, v float64, lv ...Label) {
	if !w.check(f, len(lv)) {
		return
	}
	w.open(f)
	for i, p := range f.perm {
		if i > 0 {
			w.buf = append(w.buf, f.seps[i-1]...)
		}
		w.buf = append(w.buf, lv[p].escaped...)
	}
	w.close(f, v)
}

// check reports whether a sample of f with n label values may be written.
func (w *Writer) check(f *Family, n int) bool {
	if n != len(f.perm) {
		panic(fmt.Sprintf("exposition: %s: %d label values for %d labels", f.name, n, len(f.perm)))
	}
	if w.err != nil {
		return false
	}
	if f != w.cur && w.written[f] {
		w.err = fmt.Errorf("%w: %s", ErrInterleaved, f.name)
		return false
	}
	return true
}

// open starts a sample of f: the family's HELP and TYPE first if it is its
// first, then its name and the opening of its labels.
func (w *Writer) open(f *Family) {
	if f != w.cur {
		w.buf = append(w.buf, f.header...)
		w.written[f], w.cur = true, f
	}
	w.buf = append(w.buf, f.open...)
}

// close ends a sample: the labels' closing and the value.
func (w *Writer) close(f *Family, v float64) {
	if len(f.perm) > 0 {
		w.buf = append(w.buf, '"', '}', ' ')
	}
	w.buf = appendFloat(w.buf, v)
	w.buf = append(w.buf, '\n')
	w.samples++
	if len(w.buf) >= flushAt {
		w.flush()
	}
}

// Raw writes text that is already in the exposition format (whole
// families, ending in a newline), such as another encoder's output.
func (w *Writer) Raw(p []byte) {
	if w.err != nil {
		return
	}
	w.cur = nil
	w.buf = append(w.buf, p...)
	if len(w.buf) >= flushAt {
		w.flush()
	}
}

func (w *Writer) flush() {
	if w.err != nil || len(w.buf) == 0 {
		return
	}
	_, w.err = w.out.Write(w.buf)
	w.buf = w.buf[:0]
}

// Flush writes what is buffered and returns the first error.
func (w *Writer) Flush() error {
	w.flush()
	return w.err
}

// special marks the bytes a label value cannot hold as they are: those to
// escape, and those of multi-byte UTF-8 sequences (to check).
var special = func() (t [256]bool) {
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = true
	}
	t['\\'], t['"'], t['\n'] = true, true, true
	return t
}()

// appendLabelValue appends s escaped; ok is false if s is not valid UTF-8.
func appendLabelValue(b []byte, s string) (_ []byte, ok bool) {
	i := 0
	for i < len(s) && !special[s[i]] {
		i++
	}
	if i == len(s) {
		return append(b, s...), true
	}
	if !utf8.ValidString(s) {
		return b, false
	}
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b, true
}
