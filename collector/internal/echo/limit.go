package echo

import (
	"container/list"
	"net/netip"
	"time"
)

// limiter holds a token bucket per source, in a table of bounded size that
// forgets the least recently seen source first. It is not safe for
// concurrent use: the Server guards it.
type limiter struct {
	rate, burst float64
	maxSources  int
	byKey       map[netip.Addr]*list.Element // of *bucket
	lru         list.List                    // front: most recently seen
}

type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64, maxSources int) *limiter {
	return &limiter{rate: rate, burst: burst, maxSources: maxSources, byKey: make(map[netip.Addr]*list.Element)}
}

func (l *limiter) len() int { return len(l.byKey) }

// allow takes a token from key's bucket at now and reports whether there was
// one. A source not in the table starts with a full bucket.
func (l *limiter) allow(key netip.Addr, now time.Time) bool {
	e, ok := l.byKey[key]
	if !ok {
		for len(l.byKey) >= l.maxSources {
			old := l.lru.Back()
			delete(l.byKey, old.Value.(*bucket).key)
			l.lru.Remove(old)
		}
		e = l.lru.PushFront(&bucket{key: key, tokens: l.burst, last: now})
		l.byKey[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
