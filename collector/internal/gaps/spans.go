package gaps

import (
	"slices"
	"sort"
)

// span is a half-open interval of time, [a, b), in Unix nanoseconds.
type span struct{ a, b int64 }

// spans is a set of times: sorted, disjoint spans that do not touch.
type spans []span

// add adds [a, b) to the set, joining spans that lie at most bridge apart.
// Adding in time order (the usual case) is cheap.
func (s *spans) add(a, b, bridge int64) {
	if a >= b {
		return
	}
	x := *s
	n := len(x)
	if n == 0 || a > x[n-1].b+bridge {
		*s = append(x, span{a, b})
		return
	}
	// i: the first span that ends at or after a - bridge
	i := sort.Search(n, func(i int) bool { return x[i].b+bridge >= a })
	// j: the first span that starts after b + bridge
	j := i + sort.Search(n-i, func(k int) bool { return x[i+k].a > b+bridge })
	if i == j {
		x = append(x, span{})
		copy(x[i+1:], x[i:])
		x[i] = span{a, b}
		*s = x
		return
	}
	merged := span{min(a, x[i].a), max(b, x[j-1].b)}
	x[i] = merged
	*s = append(x[:i+1], x[j:]...)
}

// find returns the span that holds t.
func (s spans) find(t int64) (span, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].b > t })
	if i < len(s) && s[i].a <= t {
		return s[i], true
	}
	return span{}, false
}

// cut removes [a, b) from the set, in place.
func (s *spans) cut(a, b int64) {
	x := *s
	// i: the first span that ends after a; j: the first that starts at or
	// after b
	i := sort.Search(len(x), func(i int) bool { return x[i].b > a })
	j := i + sort.Search(len(x)-i, func(k int) bool { return x[i+k].a >= b })
	if i >= j {
		return
	}
	var keep [2]span
	n := 0
	if x[i].a < a {
		keep[n], n = span{x[i].a, a}, n+1
	}
	if x[j-1].b > b {
		keep[n], n = span{b, x[j-1].b}, n+1
	}
	*s = slices.Replace(x, i, j, keep[:n]...)
}

// prune drops the spans that end before t, and cuts one that starts before.
func (s *spans) prune(t int64) {
	x := *s
	i := sort.Search(len(x), func(i int) bool { return x[i].b > t })
	x = x[i:]
	if len(x) > 0 && x[0].a < t {
		x[0].a = t
	}
	*s = append((*s)[:0], x...)
}

// clip returns the part of s within [a, b), as a new set.
func (s spans) clip(a, b int64) spans {
	i := sort.Search(len(s), func(i int) bool { return s[i].b > a })
	j := i + sort.Search(len(s)-i, func(k int) bool { return s[i+k].a >= b })
	if i >= j {
		return nil
	}
	out := make(spans, j-i)
	copy(out, s[i:j])
	out[0].a = max(out[0].a, a)
	out[len(out)-1].b = min(out[len(out)-1].b, b)
	return out
}

// length is the total time in s.
func (s spans) length() int64 {
	var n int64
	for _, x := range s {
		n += x.b - x.a
	}
	return n
}

// union returns the times in x or y.
func union(x, y spans) spans {
	out := make(spans, 0, len(x)+len(y))
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		var next span
		if j >= len(y) || i < len(x) && x[i].a <= y[j].a {
			next, i = x[i], i+1
		} else {
			next, j = y[j], j+1
		}
		if n := len(out); n > 0 && next.a <= out[n-1].b {
			out[n-1].b = max(out[n-1].b, next.b)
		} else {
			out = append(out, next)
		}
	}
	return out
}

// intersect returns the times in both x and y.
func intersect(x, y spans) spans {
	var out spans
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		a, b := max(x[i].a, y[j].a), min(x[i].b, y[j].b)
		if a < b {
			out = append(out, span{a, b})
		}
		if x[i].b < y[j].b {
			i++
		} else {
			j++
		}
	}
	return out
}

// subtract returns the times in x and not in y.
func subtract(x, y spans) spans {
	var out spans
	j := 0
	for _, s := range x {
		a := s.a
		for j < len(y) && y[j].b <= a {
			j++
		}
		for k := j; k < len(y) && y[k].a < s.b; k++ {
			if y[k].a > a {
				out = append(out, span{a, y[k].a})
			}
			a = max(a, y[k].b)
			if a >= s.b {
				break
			}
		}
		if a < s.b {
			out = append(out, span{a, s.b})
		}
	}
	return out
}
