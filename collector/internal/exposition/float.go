package exposition

import (
	"math"
	"strconv"
)

// appendFloat formats v as expfmt does: strconv's shortest 'g' form, with
// 1, 0 and -1 written as integers.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case v == -1:
		return append(b, '-', '1')
	case v > -1e6 && v < 1e6 && v == math.Trunc(v):
		// what 'g' writes for an integer below 1e6 (status codes, counts)
		return strconv.AppendInt(b, int64(v), 10)
	}
	if out, ok := appendShort(b, v); ok {
		return out
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64) // NaN and ±Inf too
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// pow10 holds the powers of ten a float64 holds exactly.
var pow10 = func() (p [23]float64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// appendShort writes v as strconv.AppendFloat(b, v, 'g', -1, 64) does,
// when v is a decimal of at most 15 significant digits (most figures: a
// duration in seconds, a time in whole seconds or milliseconds, a byte
// count), at a fraction of the cost; ok is false for any other v.
//
// Why it is the same: let d be the decimal k × 10^-e, k < 10^15 an integer.
// If float64(k) / 10^e == v (k and 10^e exact, the quotient correctly
// rounded), d parses back to v, so the shortest form has at most the
// digits of d. A decimal with fewer significant digits differs from d by
// at least 10^-e, which is above 10^-15·|d|, far more than half the
// spacing of float64s around v (2^-53·|v|), so it does not parse back to
// v: the shortest form is d, without its trailing zeros.
func appendShort(b []byte, v float64) (_ []byte, ok bool) {
	a := math.Abs(v)
	if !(a >= 1e-7 && a < 1e15) { // also NaN
		return b, false
	}
	// x = floor(log10(a)), from the binary exponent, then corrected
	x := (int(math.Float64bits(a)>>52&0x7ff) - 1023) * 78913 >> 18
	if x+1 >= 0 && a >= pow10[min(x+1, len(pow10)-1)] || x+1 < 0 && a*pow10[-(x+1)] >= 1 {
		x++ // (a wrong x only sends v to strconv: k then has 16 digits or fails the check)
	}
	e := 14 - x // k = a × 10^e has 15 digits
	if e < 0 || e >= len(pow10) {
		return b, false
	}
	k := math.Round(a * pow10[e])
	if k >= 1e15 || k/pow10[e] != a {
		return b, false
	}
	// the digits of k, trailing zeros dropped
	var buf [16]byte
	n := uint64(k)
	for n%100 == 0 {
		n /= 100
		e -= 2
	}
	if n%10 == 0 {
		n /= 10
		e--
	}
	i := len(buf)
	for n >= 10 {
		d := n % 100 * 2
		n /= 100
		i -= 2
		buf[i], buf[i+1] = digitPairs[d], digitPairs[d+1]
	}
	if n > 0 {
		i--
		buf[i] = byte('0' + n)
	}
	digs := buf[i:]
	dp := len(digs) - e // the decimal point's position in digs
	if v < 0 {
		b = append(b, '-')
	}
	if exp := dp - 1; exp < -4 || exp >= 6 { // %e, as 'g' chooses for the shortest form
		b = append(b, digs[0])
		if len(digs) > 1 {
			b = append(b, '.')
			b = append(b, digs[1:]...)
		}
		b = append(b, 'e')
		if exp < 0 {
			b, exp = append(b, '-'), -exp
		} else {
			b = append(b, '+')
		}
		if exp < 10 {
			return append(b, '0', byte('0'+exp)), true
		}
		return append(b, byte('0'+exp/10), byte('0'+exp%10)), true // exp < 100 here
	}
	// %f
	switch {
	case dp <= 0:
		b = append(b, '0', '.')
		for ; dp < 0; dp++ {
			b = append(b, '0')
		}
		return append(b, digs...), true
	case dp >= len(digs):
		b = append(b, digs...)
		for ; dp > len(digs); dp-- {
			b = append(b, '0')
		}
		return b, true
	}
	b = append(b, digs[:dp]...)
	b = append(b, '.')
	return append(b, digs[dp:]...), true
}
