package exposition

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TestSameAsExpfmt: a Writer writes what a registry and expfmt write for the
// same series, byte for byte (within a family, in the same order).
func TestSameAsExpfmt(t *testing.T) {
	type sample struct {
		v  float64
		lv []string
	}
	cases := []struct {
		name, help string
		typ        Type
		labels     []string
		samples    []sample
	}{
		{"hubmon_test_seconds", "A help text with a \\ backslash\nand a newline.", Gauge, []string{"site", "probe", "phase"}, []sample{
			{0.123456789, []string{"a", "b", "c"}},
			{1, []string{"b", "z", "a"}},
			{0, []string{"c", `quote " and \ and` + "\nnewline", "é"}},
			{-1, []string{"d", "", "x"}},
			{1.7956944e+09, []string{"e", "y", "x"}},
			{math.NaN(), []string{"f", "y", "x"}},
			{math.Inf(1), []string{"g", "y", "x"}},
			{math.Inf(-1), []string{"h", "y", "x"}},
			{12345678.9, []string{"i", "y", "x"}},
			{1e-9, []string{"j", "y", "x"}},
			{200, []string{"k", "y", "x"}},
			{-999999, []string{"l", "y", "x"}},
			{999999, []string{"m", "y", "x"}},
			{1e6, []string{"n", "y", "x"}},
			{123456.5, []string{"o", "y", "x"}},
			{math.Copysign(0, -1), []string{"p", "y", "x"}},
		}},
		{"hubmon_test_total", "A counter.", Counter, []string{"site"}, []sample{{42, []string{"a"}}, {2.5e6, []string{"b"}}}},
		{"hubmon_test_plain", "No labels.", Gauge, nil, []sample{{3, nil}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got bytes.Buffer
			w := NewWriter(&got)
			f := NewFamily(c.name, c.help, c.typ, c.labels...)
			reg := prometheus.NewPedanticRegistry()
			vt := prometheus.GaugeValue
			if c.typ == Counter {
				vt = prometheus.CounterValue
			}
			d := prometheus.NewDesc(c.name, c.help, c.labels, nil)
			var ms []prometheus.Metric
			for i, s := range c.samples {
				if i%2 == 0 {
					w.Sample(f, s.v, s.lv...)
				} else { // the same through Labels
					var ls []Label
					for _, v := range s.lv {
						l, ok := NewLabel(v)
						if !ok {
							t.Fatalf("NewLabel(%q) failed", v)
						}
						ls = append(ls, l)
					}
					w.SampleLabels(f, s.v, ls...)
				}
				ms = append(ms, prometheus.MustNewConstMetric(d, vt, s.v, s.lv...))
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			reg.MustRegister(constCollector{d, ms})
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
					t.Fatal(err)
				}
			}
			// the registry sorts the samples; a Writer keeps the caller's order
			if g, w := sortedLines(got.String()), sortedLines(want.String()); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

type constCollector struct {
	d  *prometheus.Desc
	ms []prometheus.Metric
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.ms {
		ch <- m
	}
}

func TestInvalidUTF8LeftOut(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	f := NewFamily("hubmon_test", "Help.", Gauge, "site")
	w.Sample(f, 1, "bad\xff")
	w.Sample(f, 2, "good")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "# HELP hubmon_test Help.\n# TYPE hubmon_test gauge\nhubmon_test{site=\"good\"} 2\n"
	if b.String() != want || w.Samples() != 1 {
		t.Errorf("got %d samples\n%s", w.Samples(), b.String())
	}
}

func TestNewLabel(t *testing.T) {
	if _, ok := NewLabel("bad\xff"); ok {
		t.Error("NewLabel accepted invalid UTF-8")
	}
	if l, ok := NewLabel("a \"b\"\n\\"); !ok || l.escaped != `a \"b\"\n\\` {
		t.Errorf("NewLabel escaped to %q", l.escaped)
	}
}

func TestArena(t *testing.T) {
	a := NewArena(4)
	var refs []Ref
	var ls []Label
	for _, s := range []string{"hub-1", "", "a \"b\"", "hub-22"} {
		l, _ := NewLabel(s)
		ls = append(ls, l)
		refs = append(refs, a.Add(l))
	}
	a.Done()
	for i, r := range refs {
		if got := a.Label(r); got != ls[i] {
			t.Errorf("Label(%v) = %q, want %q", r, got.escaped, ls[i].escaped)
		}
	}
}

func TestInterleavedFamilies(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	f, g := NewFamily("hubmon_f", "F.", Gauge), NewFamily("hubmon_g", "G.", Gauge)
	w.Sample(f, 1)
	w.Sample(g, 1)
	w.Sample(f, 2)
	if err := w.Flush(); !errors.Is(err, ErrInterleaved) {
		t.Fatalf("Flush() = %v, want ErrInterleaved", err)
	}
}

func BenchmarkSample(b *testing.B) {
	w := NewWriter(discard{})
	f := NewFamily("hubmon_http_phase_seconds", "Duration of each phase.", Gauge, "site", "probe", "service", "phase")
	for b.Loop() {
		w.Sample(f, 0.123456789, "hub-00001", "services", "universal-credit", "first_byte")
	}
}

func BenchmarkSampleLabels(b *testing.B) {
	w := NewWriter(discard{})
	f := NewFamily("hubmon_http_phase_seconds", "Duration of each phase.", Gauge, "site", "probe", "service", "phase")
	var ls []Label
	for _, s := range []string{"hub-00001", "services", "universal-credit", "first_byte"} {
		l, _ := NewLabel(s)
		ls = append(ls, l)
	}
	for b.Loop() {
		w.SampleLabels(f, 0.123456789, ls...)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestInvalidFirstSampleWritesNoHeader(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	f := NewFamily("hubmon_test", "Help.", Gauge, "site")
	w.Sample(f, 1, "bad\xff")
	if err := w.Flush(); err != nil || b.Len() != 0 {
		t.Fatalf("Flush() = %v, wrote %q", err, b.String())
	}
}
