package exposition

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// floatCases are values of the kinds the collector writes, and edges.
func floatCases() []float64 {
	vs := []float64{0, 1, -1, 0.5, 2, 10, 100, 999999, 1e6, -1e6, 1e6 + 1, 123456.5, 1234567.5, 0.0001, 0.00001, 0.000123, 1e-7, 1e-8,
		9.999999999999999e14, 1e15, 1e15 + 1, 1e21, 1e22, 1e23, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat64,
		0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 0.0123, 0.025, 12345678.9, 1.7956944e+09, 3 << 30, 4000000.125, 123456789012345,
		1234567890123456, 0.1 + 0.2, math.Pi, math.E, -0.0123, -65, 2.412e9, 5.18e9, 8e6, 1.25e6,
		math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1)}
	for e := -25; e <= 25; e++ {
		p := math.Pow(10, float64(e))
		vs = append(vs, p, math.Nextafter(p, 0), math.Nextafter(p, 2*p), 9.5*p, 1.5*p)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for range 200_000 {
		t := t0.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
		d := time.Duration(rng.Int64N(int64(10 * time.Second)))
		vs = append(vs,
			float64(t.UnixNano())/1e9,                            // a time to the nanosecond
			float64(t.Truncate(time.Millisecond).UnixNano())/1e9, // to the millisecond
			float64(t.Truncate(time.Second).UnixNano())/1e9,      // to the second
			d.Seconds(), (d / time.Microsecond * time.Microsecond).Seconds(), // durations
			rng.Float64()*1e8, rng.Float64()*1e8/8, float64(rng.IntN(1e9))/8, // rates
			float64(rng.Int64N(1e16)),                       // counts
			math.Float64frombits(rng.Uint64()),              // anything
			float64(rng.IntN(1e6))/float64(1+rng.IntN(1e4)), // ratios
			float64(rng.Int64N(1e15))/math.Pow(10, float64(rng.IntN(30))),
		)
	}
	return vs
}

// TestAppendFloat: the same bytes as strconv's shortest 'g' (what expfmt
// writes), for every kind of value.
func TestAppendFloat(t *testing.T) {
	short := 0
	for _, v := range floatCases() {
		want := strconv.AppendFloat(nil, v, 'g', -1, 64)
		switch v {
		case 1, 0, -1:
			want = strconv.AppendInt(nil, int64(v), 10)
		}
		if got := appendFloat(nil, v); string(got) != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", v, got, want)
		}
		if _, ok := appendShort(nil, v); ok {
			short++
		}
	}
	if short == 0 {
		t.Error("appendShort took no value")
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range floatCases()[:1000] {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		want := strconv.AppendFloat(nil, v, 'g', -1, 64)
		if out, ok := appendShort(nil, v); ok && string(out) != string(want) {
			t.Errorf("appendShort(%v) = %s, want %s", v, out, want)
		}
	})
}

func BenchmarkAppendFloat(b *testing.B) {
	for _, c := range []struct {
		name string
		v    float64
	}{{"seconds", 0.0123456}, {"time", 1795694412}, {"time_ns", 1795694412.123456789}, {"rate", 4000000.125}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			for b.Loop() {
				buf = appendFloat(buf[:0], c.v)
			}
		})
		b.Run(c.name+"/strconv", func(b *testing.B) {
			buf := make([]byte, 0, 64)
			for b.Loop() {
				buf = strconv.AppendFloat(buf[:0], c.v, 'g', -1, 64)
			}
		})
	}
}
