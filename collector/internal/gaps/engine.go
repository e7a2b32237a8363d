// Package gaps works out, for each hub, how far its line falls short of
// what its users need: over the last 7 and 30 days, within its opening hours
// and within each peak window, the share of speed tests that met each
// threshold profile, median and 10th-percentile rates, availability during
// opening hours, outage time and the measured rate against the contract. The
// figures come from the collector's history (package store), not from
// Prometheus, and are served as metrics on their own endpoint
// (MetricsHandler: /metrics/gaps, which Prometheus scrapes less often than
// /metrics) and as a report (CSV, JSON, HTML; over HTTP and by the report
// command).
//
// The Engine keeps, per site, what the figures need in memory: the speed
// tests and the spans of time the line was seen up or down, for the
// retention (30 days). It loads them once from the history, then reads only
// the rows stored since (by row id), so the cost of an update does not grow
// with the history. The figures are recomputed in the background every
// interval and written once, to a compressed exposition that each scrape
// sends as it is: at 20,000 sites they are 1.44 million series, with the
// sites' series (Options.Extra) 161 MB of text, 14 MB compressed, which no
// scrape could afford to encode.
//
// # Definitions
//
// A speed test counts when it measured a download rate (a test that failed
// before that is left out: the line's availability says whether it was up).
// It falls in a window by the wall-clock time of its start in the site's
// time zone.
//
// Online: a time is online when a line-quality summary of the site covers it
// and, for at least one of its streams (probe and method), the summary did
// not lose every idle probe and no disconnection was going on. Where no
// summary covers a time (an agent without a line-quality probe, or one
// that was off), the time within Presence after a successful measurement of
// any other kind counts as online. A time with no data is not online.
// Availability is the share of the opening hours in the period that was
// online. Outage time is the opening-hours time within disconnections the
// line-quality probes reported (ended or still going on) during which no
// stream saw the line up.
//
// A period ends when it is computed, but availability and outage time leave
// out its last Settle: the line-quality summary of the last minutes may
// still be on its way, and must not read as offline.
package gaps

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// Settle is the end of a period that availability and outage time leave
// out.
const Settle = 5 * time.Minute

// Period is a named length of time the metrics are computed over.
type Period struct {
	Name   string
	Length time.Duration
}

// Periods are the periods of the metrics.
var Periods = []Period{{"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// Options configure an Engine.
type Options struct {
	Store *store.Store
	Sites *sites.Registry
	// Rules are the threshold profiles (config.Thresholds.Rules).
	Rules []config.Rule
	// BelowRatio is the compliance under which a site is below a profile.
	BelowRatio float64
	// Presence is how long a successful measurement shows a site online
	// where no line-quality summary covers it. Default 15m.
	Presence time.Duration
	// Interval is how often Run brings the figures up to date. Default 5m.
	Interval time.Duration
	// Extra, if set, writes more series to the gap endpoint (MetricsHandler),
	// before the gap figures: series that change as seldom, such as what the
	// sites file says about each hub. It is called at each refresh, and
	// once before the history is loaded.
	Extra func(w *exposition.Writer)
	// Retention is how far back the engine keeps history: the longest
	// period it can compute. Default 30 days.
	Retention time.Duration
	// Now is the clock; time.Now if nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Engine keeps the history the gap figures need and computes them. It is
// safe for concurrent use. Run owns the background updates; the report and
// the metrics read what the last update left.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // guards the fields below
	loaded  bool
	lastRow int64 // the last row read
	// added: the rows up to it are in sites, and none after. A row at or
	// before it that is read again is skipped, for the history keeps no
	// row ids to tell a test read twice from two tests of the same time.
	added int64
	sites map[string]*siteHistory

	// what a scrape sends, replaced whole by each refresh: a scrape never
	// waits for a refresh
	published atomic.Pointer[published]
	kick      chan struct{}
}

// New returns an Engine with no history: call Load (Run does).
func New(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Presence <= 0 {
		opts.Presence = 15 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Minute
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, log: opts.Logger, sites: map[string]*siteHistory{}, kick: make(chan struct{}, 1)}
}

// horizon is the oldest time the engine keeps.
func (e *Engine) horizon(now time.Time) time.Time {
	return now.Add(-e.opts.Retention - Settle - time.Hour)
}

// Load reads the history of the retention, site by site, through the
// (site, kind, measured_at) index, up to the last row stored when it starts.
// Rows stored while it runs are left to the next Update, so that each is
// added once (see Engine.added). Call it once, before Update.
func (e *Engine) Load(ctx context.Context) error {
	last, err := e.opts.Store.MaxRowID(ctx)
	if err != nil {
		return err
	}
	ids, err := e.opts.Store.Sites(ctx)
	if err != nil {
		return err
	}
	from := e.horizon(e.opts.Now())
	to := time.Unix(0, math.MaxInt64) // the end of time
	for _, id := range ids {
		h := newSiteHistory()
		// speed tests first, so that the line-quality summaries read next
		// find the tests they cover
		for _, kind := range []string{wire.KindSpeedtest, wire.KindLineQuality} {
			err := e.opts.Store.Points(ctx, id, kind, from, to, func(p *store.Point) error {
				if p.RowID <= last {
					h.add(p, e.opts.Presence)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		// the other kinds only show presence
		for _, kind := range []string{wire.KindDNS, wire.KindHTTP, wire.KindWiFi} {
			err := e.opts.Store.Successes(ctx, id, kind, from, to, func(at time.Time) { h.addPresence(at, e.opts.Presence) })
			if err != nil {
				return err
			}
		}
		if h.empty() {
			continue // nothing in the retention
		}
		h.trim()
		e.mu.Lock()
		e.sites[id] = h
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.lastRow, e.added, e.loaded = last, last, true
	e.mu.Unlock()
	return nil
}

// updateBatch is how many rows Update reads per query.
const updateBatch = 5000

// Update reads the rows stored since the last Load or Update, and adds
// those not added yet. A speed test stored after the line-quality summary
// of its time gets that summary's loss and jitter from the history.
func (e *Engine) Update(ctx context.Context) error {
	e.mu.Lock()
	if !e.loaded {
		e.mu.Unlock()
		return errors.New("gaps: update before load")
	}
	after := e.lastRow
	e.mu.Unlock()
	type newTest struct {
		site string
		at   time.Time
	}
	for {
		var tests []newTest
		n := 0
		e.mu.Lock()
		horizon := e.horizon(e.opts.Now()).UnixNano()
		last, err := e.opts.Store.PointsAfter(ctx, after, updateBatch, func(p *store.Point) error {
			n++
			if p.RowID <= e.added || p.MeasuredAt.UnixNano() < horizon {
				return nil
			}
			h := e.sites[p.Site]
			if h == nil {
				h = newSiteHistory()
				e.sites[p.Site] = h
			}
			if h.add(p, e.opts.Presence) {
				tests = append(tests, newTest{p.Site, p.MeasuredAt})
			}
			return nil
		})
		e.lastRow, e.added = last, max(e.added, last)
		e.mu.Unlock()
		if err != nil {
			return err
		}
		for _, t := range tests {
			// the summaries that may cover the start of the test: one
			// interval is at most an hour
			var found []store.Point
			err := e.opts.Store.Points(ctx, t.site, wire.KindLineQuality, t.at.Add(-time.Hour), t.at.Add(time.Nanosecond), func(p *store.Point) error {
				q := *p
				found = append(found, q)
				return nil
			})
			if err != nil {
				return err
			}
			e.mu.Lock()
			if h := e.sites[t.site]; h != nil {
				for i := range found {
					h.addLine(&found[i])
				}
			}
			e.mu.Unlock()
		}
		after = last
		if n < updateBatch {
			return nil
		}
	}
}

// prune forgets what is older than the retention.
func (e *Engine) prune(now time.Time) {
	h := e.horizon(now).UnixNano()
	for id, s := range e.sites {
		if s.prune(h); s.empty() {
			delete(e.sites, id) // a site that stopped reporting long ago
		}
	}
}

// siteList returns the sites to compute: those of the sites file and, when
// sites not in it are accepted, those with history. Call with e.mu held.
func (e *Engine) siteList() []config.Site {
	list := e.opts.Sites.Sites()
	if !e.opts.Sites.AutoRegister() {
		return list
	}
	out := append([]config.Site(nil), list...)
	for id := range e.sites {
		if _, ok := e.opts.Sites.Lookup(id); !ok {
			out = append(out, config.UnknownSite(id))
		}
	}
	sortSites(out)
	return out
}

// Compute works out the figures of every site over [to-length, to).
func (e *Engine) Compute(to time.Time, length time.Duration) []*Figures {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.computeLocked(e.siteList(), to, length)
}

func (e *Engine) computeLocked(list []config.Site, to time.Time, length time.Duration) []*Figures {
	out := make([]*Figures, len(list))
	for i := range list {
		out[i] = compute(&list[i], e.sites[list[i].ID], e.opts.Rules, to.Add(-length), to)
	}
	return out
}

// Loaded reports whether the history has been loaded.
func (e *Engine) Loaded() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loaded
}

// Refresh brings the history up to date and recomputes the metrics.
func (e *Engine) Refresh(ctx context.Context) error {
	if err := e.Update(ctx); err != nil {
		return err
	}
	e.recompute()
	return nil
}

// recompute works out the metrics from the history in memory.
func (e *Engine) recompute() {
	start := time.Now()
	now := e.opts.Now()
	to := now
	e.mu.Lock()
	e.prune(now)
	list := e.siteList()
	figs := make([][]*Figures, len(Periods))
	for i, p := range Periods {
		figs[i] = e.computeLocked(list, to, p.Length)
	}
	tracked := len(e.sites)
	e.mu.Unlock()
	blob, err := exposition.NewBlob(func(w *exposition.Writer) {
		if e.opts.Extra != nil {
			e.opts.Extra(w)
		}
		e.writeFigures(w, figs)
	})
	if err != nil { // cannot happen: the blob is written to memory
		e.log.Error("gap figures not written", "err", err)
		return
	}
	e.published.Store(&published{blob: blob, computed: now, took: time.Since(start), tracked: tracked})
}

// publishExtra publishes Options.Extra's series alone, before the history
// is loaded.
func (e *Engine) publishExtra() {
	if e.opts.Extra == nil {
		return
	}
	blob, err := exposition.NewBlob(e.opts.Extra)
	if err != nil {
		e.log.Error("series not written", "err", err)
		return
	}
	e.published.CompareAndSwap(nil, &published{blob: blob})
}

// published is the result of a refresh: the gap endpoint's text.
type published struct {
	blob     *exposition.Blob
	computed time.Time // zero before the history is loaded
	took     time.Duration
	tracked  int // sites whose history is in memory
}

// Kick asks Run to refresh now (after the sites file changed).
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run loads the history, then refreshes the figures every Interval (and
// when kicked) until ctx is done. Errors are logged; a failed refresh is
// tried again at the next tick.
func (e *Engine) Run(ctx context.Context) {
	e.publishExtra()
	start := time.Now()
	for {
		err := e.Load(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		e.log.Error("loading the history for the gap figures failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.opts.Interval):
		}
	}
	e.log.Info("history loaded for the gap figures", "duration_seconds", time.Since(start).Seconds())
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for {
		if err := e.Refresh(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("gap figures not refreshed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.kick:
		}
	}
}
