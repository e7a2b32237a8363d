package echo

import (
	"container/list"
	"net/netip"
	"time"
)

// verdict is the limiter's answer for one request.
type verdict int

const (
	allowed      verdict = iota
	deniedSource         // its source's bucket is empty
	deniedGlobal         // the responder's global bucket is empty
)

// limiter holds a token bucket per source, in a table of bounded size that
// forgets the least recently seen source first, and one global bucket over
// every reply. It is not safe for concurrent use: the Server guards it.
//
// A request is answered when the global bucket and its source's bucket both
// have a token; it then takes one from each. The global bucket is looked at
// first: a request it refuses does not touch the table, so while the
// responder is at its cap a flood neither evicts sources nor gains tokens.
// A source not in the table (new, or evicted earlier) enters it with only
// newTokens (1-2), not a full burst: forgetting a source gives it no more
// than that.
type limiter struct {
	rate, burst, newTokens float64
	maxSources             int
	byKey                  map[netip.Addr]*list.Element // of *bucket
	lru                    list.List                    // front: most recently seen
	global                 bucket                       // its key is unused
	globalRate             float64
	globalBurst            float64
}

type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time
}

// refill adds the tokens earned since b.last at rate, up to burst.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
		b.last = now
	}
}

// newLimiter returns a limiter for o, whose zero fields must have been
// given their defaults (Options.withDefaults). The global bucket starts full.
func newLimiter(o Options) *limiter {
	l := &limiter{
		rate: o.RatePerSecond, burst: float64(o.Burst),
		newTokens:  min(float64(o.NewSourceTokens), float64(o.Burst)),
		maxSources: o.MaxSources, byKey: make(map[netip.Addr]*list.Element),
		globalRate: o.GlobalRatePerSecond, globalBurst: float64(o.GlobalBurst),
	}
	l.global.tokens = l.globalBurst
	return l
}

func (l *limiter) len() int { return len(l.byKey) }

// allow decides whether a request from key at now is answered, and takes its
// tokens when it is.
func (l *limiter) allow(key netip.Addr, now time.Time) verdict {
	if l.global.last.IsZero() {
		l.global.last = now
	}
	l.global.refill(now, l.globalRate, l.globalBurst)
	if l.global.tokens < 1 {
		return deniedGlobal
	}
	e, ok := l.byKey[key]
	if !ok {
		for len(l.byKey) >= l.maxSources {
			old := l.lru.Back()
			delete(l.byKey, old.Value.(*bucket).key)
			l.lru.Remove(old)
		}
		e = l.lru.PushFront(&bucket{key: key, tokens: l.newTokens, last: now})
		l.byKey[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		return deniedSource
	}
	b.tokens--
	l.global.tokens--
	return allowed
}
