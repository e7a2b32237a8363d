package probe

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// summarise puts the figures of tally t into lq: counts, RTT statistics, the
// disconnections that ended in the run and the one still going on. It waits
// for the gateway checks of the listed disconnections until deadline, unless
// ctx is done: a check not done by then reads "unknown".
func (p *lineQuality) summarise(ctx context.Context, lq *wire.LineQuality, t lqTally, deadline time.Time) {
	lq.Sent, lq.Received = t.sent, t.received
	lq.SentUnderLoad, lq.ReceivedUnderLoad = t.sentLoaded, t.receivedLoaded
	if s := lqRTTStats(t.rtts); s != nil {
		lq.RTTMinSeconds = wire.Float(s.min.Seconds())
		lq.RTTP50Seconds = wire.Float(s.p50.Seconds())
		lq.RTTP95Seconds = wire.Float(s.p95.Seconds())
		lq.RTTMaxSeconds = wire.Float(s.max.Seconds())
		if s.jitter >= 0 {
			lq.JitterSeconds = wire.Float(s.jitter.Seconds())
		}
	}

	wait := time.NewTimer(max(time.Until(deadline), 0))
	defer wait.Stop()
	waiting := true // until the deadline passes or ctx ends
	var total float64
	for i, e := range t.ended {
		d := max(e.end.Sub(e.start), 0) // monotonic
		total += d.Seconds()
		if i >= lqMaxOutages {
			// Only with a Period hundreds of times SendInterval: the
			// first are listed, the rest only counted.
			lq.OutagesDropped++
			continue
		}
		cause := wire.CauseUnknown
		select {
		case <-e.check.done:
			cause = e.check.cause
		default:
			if waiting {
				select {
				case <-e.check.done:
					cause = e.check.cause
				case <-ctx.Done(): // cut short: no waiting
					waiting = false
				case <-wait.C:
					waiting = false
				}
			}
		}
		end := e.end.UTC()
		o := wire.Outage{
			Start:           end.Add(-d),
			End:             end,
			DurationSeconds: d.Seconds(),
			Cause:           cause,
			LostProbes:      e.lost,
		}
		lq.Outages = append(lq.Outages, o)
		p.log.Info("line outage ended", "start", o.Start.Format(time.RFC3339Nano),
			"duration_seconds", o.DurationSeconds, "lost_probes", o.LostProbes, "cause", o.Cause)
	}
	lq.OutageSecondsTotal = wire.Float(total)

	p.mu.Lock()
	if p.outage.lost >= p.outageAfter {
		// Wall time now, less the monotonic time since the start.
		since := time.Now().Add(-time.Since(p.outage.start)).UTC()
		lq.OutageSince = &since
	}
	p.mu.Unlock()
}

// lqStats are the round-trip statistics of a run.
type lqStats struct {
	min, p50, p95, max time.Duration
	// jitter is the mean absolute difference of consecutive RTTs; -1 with
	// fewer than two.
	jitter time.Duration
}

// lqRTTStats computes the statistics of rtts (in sending order); nil for none.
// Percentiles are nearest-rank: the smallest RTT with at least p of them at
// or below it.
func lqRTTStats(rtts []time.Duration) *lqStats {
	if len(rtts) == 0 {
		return nil
	}
	s := &lqStats{jitter: -1}
	if len(rtts) >= 2 {
		var sum float64
		for i := 1; i < len(rtts); i++ {
			sum += math.Abs(float64(rtts[i] - rtts[i-1]))
		}
		s.jitter = time.Duration(math.Round(sum / float64(len(rtts)-1)))
	}
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	s.min, s.max = sorted[0], sorted[len(sorted)-1]
	s.p50, s.p95 = lqNearestRank(sorted, 0.50), lqNearestRank(sorted, 0.95)
	return s
}

func lqNearestRank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
