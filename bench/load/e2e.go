package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/hubmon/hubmon/bench/internal/fleetsim"
	"github.com/hubmon/hubmon/bench/internal/rig"
)

// e2e publishes at the fleet's nominal rate (every site on the agent's
// default schedule) and measures, per measurement, the time from its
// measured_at to the first scrape of /metrics that shows it, by polling
// hubmon_agent_last_seen_timestamp_seconds{site}, whose value is when the
// collector received the site's latest message: a scrape shows a
// measurement once that value has reached its measured_at (the moment it
// was published), since the collector updates it only after the message
// and everything before it from that site is committed and applied.
func (b *bench) e2e(ctx context.Context, n int, sim *fleetsim.Sim, coll *rig.Collector, m *meter) error {
	rate := fleetsim.NominalRate(n)
	count := int(rate*b.e2eDuration.Seconds()) + 1
	b.log.Info("end-to-end delay", "sites", n, "rate", rate, "seconds", b.e2eDuration.Seconds())
	p := &poller{coll: coll, series: map[string]*series{}}
	pctx, stop := context.WithCancel(ctx)
	pollDone := make(chan error, 1)
	go func() { pollDone <- p.run(pctx) }()
	m.start()
	_, err := sim.Run(ctx, fleetsim.Phase{Name: "e2e", Rate: rate, Count: count, Duration: b.e2eDuration, Track: true, OnSent: p.add})
	if err != nil {
		stop()
		return err
	}
	r := sim.WaitAcks(ctx, "e2e", time.Minute)
	// every measurement acknowledged is in the collector's memory: the
	// poller sees it at its next scrape that succeeds
	rig.WaitFor("every measurement to show in /metrics", 90*time.Second, func() (bool, error) {
		v, t := p.counts()
		// give up once three scrapes in a row failed and none ever succeeded
		return v == t || p.hopeless(), nil
	})
	stop()
	if perr := <-pollDone; perr != nil {
		return perr
	}
	m.record("e2e", m.stop())
	upper, lower, res, scrapes, failed, scrapeSecs, unseen := p.results()
	// a measurement never seen counts as later than every other
	for range unseen {
		upper, lower = append(upper, math.Inf(1)), append(lower, math.Inf(1))
	}
	up, lo := fleetsim.Summarise(upper), fleetsim.Summarise(lower)
	sq := fleetsim.Summarise(scrapeSecs)
	common := map[string]any{"measurements": up.N, "rate_per_second": rate, "seconds": b.e2eDuration.Seconds(),
		"method":                      "poll /metrics (hubmon_agent_last_seen_timestamp_seconds) back to back; value: response headers of the first scrape showing it minus measured_at",
		"poll_resolution_p50_seconds": fleetsim.Summarise(res).P50, "scrapes": scrapes, "scrape_p50_seconds": sq.P50}
	if unseen > 0 || failed > 0 {
		common["unseen"], common["failed_scrapes"] = unseen, failed
	}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	b.emit("e2e_delay_p50_seconds", n, up.P50, with(map[string]any{"lower_bound_seconds": lo.P50,
		"measured_to_ack_seconds": r.MeasuredToAck.P50}))
	b.emit("e2e_delay_p99_seconds", n, up.P99, with(map[string]any{"lower_bound_seconds": lo.P99,
		"measured_to_ack_seconds": r.MeasuredToAck.P99, "max_seconds": up.Max}))
	if r.Unacked > 0 {
		return fmt.Errorf("e2e: %d of %d measurements not acknowledged", r.Unacked, r.Tracked)
	}
	return nil
}

// poller scrapes /metrics back to back and notes when each measurement the
// simulator sent first shows.
type poller struct {
	coll *rig.Collector

	mu             sync.Mutex
	series         map[string]*series // by site
	total, visible int
	failed         int       // scrapes that did not answer 200
	upper, lower   []float64 // seconds from measured_at
	resolution     []float64 // seconds between the scrapes that bound each sighting
	scrapeSecs     []float64
}

// series is what one site sent, in order of measured_at.
type series struct {
	measured []float64 // Unix seconds, computed as the collector does
	next     int       // the first not yet seen
}

func (p *poller) add(site, probe string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := site // every probe: last_seen is per site
	s := p.series[k]
	if s == nil {
		s = &series{}
		p.series[k] = s
	}
	s.measured = append(s.measured, float64(at.UnixNano())/1e9)
	p.total++
}

// hopeless reports that no scrape has answered and three have failed.
func (p *poller) hopeless() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.scrapeSecs) == 0 && p.failed >= 3
}

func (p *poller) counts() (visible, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.visible, p.total
}

func (p *poller) results() (upper, lower, resolution []float64, scrapes, failed int, scrapeSecs []float64, unseen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upper, p.lower, p.resolution, len(p.scrapeSecs), p.failed, p.scrapeSecs, p.total - p.visible
}

var lastRun = []byte("\nhubmon_agent_last_seen_timestamp_seconds{")

func (p *poller) run(ctx context.Context) error {
	var prev time.Time // when the previous scrape was sent
	for ctx.Err() == nil {
		sc, err := p.coll.Scrape()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// at 20,000 sites a scrape can take longer than the
			// collector's 20 s bound (503): count it and go on
			p.mu.Lock()
			p.failed++
			p.mu.Unlock()
			prev = sc.Start
			continue
		}
		body := sc.Body
		i := bytes.Index(body, lastRun)
		p.mu.Lock()
		p.scrapeSecs = append(p.scrapeSecs, sc.Seconds())
		for i >= 0 && bytes.HasPrefix(body[i:], lastRun) {
			body = body[i+1:]
			end := bytes.IndexByte(body, '\n')
			if end < 0 {
				end = len(body)
			}
			line := body[:end]
			i = end
			s := p.series[label(line, "site")]
			if s == nil || s.next == len(s.measured) {
				continue
			}
			sp := bytes.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(string(line[sp+1:]), 64)
			if err != nil {
				continue
			}
			headers := float64(sc.Headers.UnixNano()) / 1e9
			for s.next < len(s.measured) && s.measured[s.next] <= v {
				at := s.measured[s.next]
				p.upper = append(p.upper, headers-at)
				if !prev.IsZero() {
					from := max(float64(prev.UnixNano())/1e9, at)
					p.lower = append(p.lower, from-at)
					p.resolution = append(p.resolution, sc.Headers.Sub(prev).Seconds())
				}
				s.next++
				p.visible++
			}
		}
		p.mu.Unlock()
		prev = sc.Start
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// label returns the value of label name in an exposition line.
func label(line []byte, name string) string {
	i := bytes.Index(line, []byte(name+`="`))
	for i > 0 && line[i-1] != '{' && line[i-1] != ',' {
		j := bytes.Index(line[i+1:], []byte(name+`="`))
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}
