// Package ingest validates agents' messages, commits them to the history in
// batches, updates the metrics and tells each agent which of its measurements
// are committed.
//
// Both broker paths go through the same pipeline: the embedded broker calls
// Handle from its publish hook before it sends the PUBACK; the MQTT subscriber
// calls HandleAsync and acknowledges the message to Mosquitto in its done
// callback. Either way a message is acknowledged only once it is committed (or
// refused for good), so "acknowledged" always means "in the history".
// Concurrent messages are grouped into one transaction each.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// ErrClosed is returned by Handle after Close.
var ErrClosed = errors.New("ingest: closed")

// Sites says which sites may publish (the sites file). Known must be safe
// for concurrent use and fast: it is asked for every message.
type Sites interface {
	Known(site string) bool
}

// Publisher sends an ack message to an agent. It must not block for long;
// a lost ack only makes the agent re-send (the history stores it once). It
// returns ErrAckBusy when it cannot take an ack now: the ack is kept, with
// the site's later ones, and tried again.
type Publisher func(topic string, payload []byte) error

// ErrAckBusy is what a Publisher returns when too many acks await the
// broker (Subscriber.Publish).
var ErrAckBusy = errors.New("ingest: too many acks in flight")

// Options configure an Ingester.
type Options struct {
	Store  *store.Store
	Fleet  *metrics.Fleet
	Health *metrics.Health
	// Sites, if set, refuses messages from sites it does not know: they
	// are counted as rejected with reason "unknown_site" and not
	// acknowledged, so the agent keeps them until its site is added.
	// nil accepts every site.
	Sites  Sites
	Logger *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// MaxBatch bounds the messages per transaction (default 1024: one
	// fsync for up to 1024 messages while a backlog drains).
	MaxBatch int
	// AckDelay is how long acks for one site are gathered before they are
	// published (default 100ms).
	AckDelay time.Duration
	// GroupWait is how long a transaction waits for more messages while
	// they come fast (default 20ms; see gather).
	GroupWait time.Duration
}

// groupMin is the batch from which a transaction waits for more (gather):
// fewer waiting messages mean they do not come fast.
const groupMin = 16

type result struct {
	outcome store.Outcome
	err     error
}

type request struct {
	item store.Item
	sync bool         // from Handle: its caller waits for the commit
	done func(result) // called once, by the batcher
}

type ackItem struct {
	site, id, rejected string
}

// Ingester is the collector's ingest pipeline. It is safe for concurrent use.
type Ingester struct {
	opts       Options
	log        *slog.Logger
	reqs       chan *request
	acks       chan ackItem
	closeOnce  sync.Once
	enqMu      sync.RWMutex  // held for reading while queueing, for writing by Close
	closed     bool          // guarded by enqMu: no new messages
	closing    chan struct{} // closed by Close after closed is set: the batcher drains and stops
	mu         sync.RWMutex  // guards acksClosed against sends on a closed acks channel
	acksClosed bool
	batchDone  chan struct{}
	ackDone    chan struct{}
	pubMu      sync.Mutex
	publish    Publisher
	logMu      sync.Mutex
	logged     map[string]time.Time // reason -> last logged, to keep a flood out of the log
	commitMu   sync.Mutex
	commitErr  error // the last commit's error; nil once one succeeds
	// waiting: requests of Handle's callers queued or being committed
	// (gather)
	waiting atomic.Int64
}

// New creates an Ingester and starts its batcher. Call SetPublisher before
// messages arrive so agents get their acks, and Close at shutdown.
func New(opts Options) *Ingester {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.AckDelay <= 0 {
		opts.AckDelay = 100 * time.Millisecond
	}
	if opts.GroupWait <= 0 {
		opts.GroupWait = 20 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	in := &Ingester{
		opts:      opts,
		log:       opts.Logger,
		reqs:      make(chan *request, opts.MaxBatch), // the next transaction, filling while one commits
		acks:      make(chan ackItem, 16384),          // a second of acks at 16,000 messages a second
		logged:    map[string]time.Time{},
		closing:   make(chan struct{}),
		batchDone: make(chan struct{}),
		ackDone:   make(chan struct{}),
	}
	go in.batcher()
	go in.acker()
	return in
}

// SetPublisher sets where acks go (the embedded broker or the MQTT client).
func (in *Ingester) SetPublisher(p Publisher) {
	in.pubMu.Lock()
	defer in.pubMu.Unlock()
	in.publish = p
}

// LoadState fills the metrics from the history, after a restart. With
// assumeOffline (the embedded broker, which starts with no sessions), every
// agent shows offline until it connects again: a hub that died while the
// collector was down must not read online for ever.
func (in *Ingester) LoadState(ctx context.Context, assumeOffline bool) error {
	agents, err := in.opts.Store.Agents(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if assumeOffline {
			a.State = wire.StateOffline
		}
		in.opts.Fleet.ObserveAgent(a)
	}
	totals, err := in.opts.Store.LineTotals(ctx)
	if err != nil {
		return err
	}
	for _, t := range totals {
		in.opts.Fleet.SetLineTotal(t)
	}
	return in.opts.Store.Recent(ctx, in.opts.Now().Add(-30*24*time.Hour), 50, func(r *store.Row) error {
		in.opts.Fleet.Observe(&r.Measurement)
		return nil
	})
}

// Handle validates, commits and acknowledges one message received on the
// topic of site. It returns nil when the message is dealt with: stored,
// already stored, or refused for good (counted and logged). It returns an
// error only when the message could not be committed, and then the caller
// must not acknowledge it to the broker, so that it is delivered again.
func (in *Ingester) Handle(ctx context.Context, site, kind string, payload []byte) error {
	res := make(chan error, 1)
	in.handle(ctx, site, kind, payload, true, func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		// it may still be committed; a re-send is then a harmless duplicate
		return ctx.Err()
	}
}

// HandleAsync is Handle without the wait for the commit. It validates the
// message, queues it for the next transaction and returns; done is called
// exactly once with what Handle would return: from the batcher's goroutine
// after the commit, or before HandleAsync returns when the message is refused,
// ctx is done or the Ingester is closed. done runs on the commit path, so it
// must not block for long.
//
// HandleAsync blocks while the commit queue is full: a caller that hands over
// one message at a time (the MQTT subscriber) then stops reading from the
// broker, and TCP pushes back, so the messages held in memory are bounded
// whatever the broker sends.
func (in *Ingester) HandleAsync(ctx context.Context, site, kind string, payload []byte, done func(error)) {
	in.handle(ctx, site, kind, payload, false, done)
}

// handle is HandleAsync; sync says the caller waits for done (Handle).
func (in *Ingester) handle(ctx context.Context, site, kind string, payload []byte, sync bool, done func(error)) {
	now := in.opts.Now().UTC()
	if in.opts.Sites != nil && !in.opts.Sites.Known(site) {
		// not acked back as rejected: the site may be added to the sites
		// file (and the collector reloaded), and then its outbox drains
		in.reject(site, kind, &wire.FieldError{Field: "site", Value: site, Msg: "not in the sites file", Reason: "unknown_site"})
		done(nil)
		return
	}
	var it store.Item
	switch kind {
	case wire.TopicMeasurement:
		m, err := wire.DecodeMeasurement(payload, site, now)
		if err != nil {
			in.reject(site, kind, err)
			// Tell the agent to drop only what can never be accepted. What may
			// clear by itself (a clock that is wrong now, a kind or version a
			// newer collector takes) stays in its outbox and comes again.
			if m != nil && !wire.Retryable(err) && m.Site == site && wire.ValidID(m.MessageID) {
				in.queueAck(ackItem{site: site, id: m.MessageID, rejected: firstLine(err)})
			}
			done(nil)
			return
		}
		it = store.Item{Measurement: m, Payload: payload, ReceivedAt: now}
	case wire.TopicStatus:
		st, err := wire.DecodeStatus(payload, site, now)
		if err != nil {
			in.reject(site, kind, err)
			done(nil)
			return
		}
		it = store.Item{Status: st, Payload: payload, ReceivedAt: now}
	default:
		in.reject(site, kind, &wire.FieldError{Field: "topic", Value: kind, Msg: "agents may publish only measurement and status", Reason: "bad_topic"})
		done(nil)
		return
	}
	if sync {
		in.waiting.Add(1) // until its commit (finish), not until Handle returns
	}
	if err := in.submit(ctx, &request{item: it, sync: sync, done: func(r result) { done(r.err) }}); err != nil {
		if sync {
			in.waiting.Add(-1)
		}
		done(err)
	}
}

func firstLine(err error) string {
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func (in *Ingester) reject(site, kind string, err error) {
	reason := wire.Reason(err)
	in.opts.Health.Messages.WithLabelValues(kindLabel(kind), "rejected").Inc()
	in.opts.Health.Rejected.WithLabelValues(reason).Inc()
	// Log the first of each reason and then at most one a minute: the counter
	// has the totals, the log has an example to act on.
	in.logMu.Lock()
	last, seen := in.logged[reason]
	now := time.Now()
	logIt := !seen || now.Sub(last) >= time.Minute
	if logIt {
		in.logged[reason] = now
	}
	in.logMu.Unlock()
	if logIt {
		in.log.Warn("message rejected", "site", site, "topic_kind", kind, "reason", reason, "err", err)
	}
}

func kindLabel(kind string) string {
	if kind == wire.TopicMeasurement || kind == wire.TopicStatus {
		return kind
	}
	return "other"
}

// submit queues r for the batcher, which calls r.done after the commit. It
// returns an error (and r.done is never called) when it could not queue it.
func (in *Ingester) submit(ctx context.Context, r *request) error {
	// Close waits for queueing to finish, so everything queued is committed
	in.enqMu.RLock()
	defer in.enqMu.RUnlock()
	if in.closed {
		return ErrClosed
	}
	select {
	case in.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (in *Ingester) batcher() {
	defer close(in.batchDone)
	batch := make([]*request, 0, in.opts.MaxBatch)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		select {
		case first := <-in.reqs:
			batch = in.gather(append(batch[:0], first), wait)
			in.commit(batch)
		case <-in.closing:
			// commit what was queued before Close, then stop
			for {
				if batch = in.gather(batch[:0], nil); len(batch) == 0 {
					return
				}
				in.commit(batch)
			}
		}
	}
}

// gather adds queued messages to batch, up to MaxBatch, and returns it.
// While messages come fast (groupMin or more in the batch already), it waits
// up to GroupWait for more, with wait (nil: it does not wait). A commit's
// cost is mostly per transaction, not per message: at 20,000 sites, each
// message of a transaction of 48 cost 69 µs of CPU, of one of 1,024, 42
// (BenchmarkCommitFleet); every transaction writes the pages it touched,
// and its fsync. Without the wait the batcher took whatever had come during
// the last commit, 48 messages on average while draining a backlog at 20,000
// sites (bench/README.md). A message that comes alone is not delayed, nor a
// batch that holds every caller of Handle waiting (the embedded broker's
// clients, one message in flight each): nothing more can come from them.
func (in *Ingester) gather(batch []*request, wait *time.Timer) []*request {
	synced := 0 // requests of Handle's callers in batch
	for _, r := range batch {
		if r.sync {
			synced++
		}
	}
	waiting := false
	for len(batch) < in.opts.MaxBatch {
		var r *request
		select {
		case r = <-in.reqs:
		default:
			if wait == nil || len(batch) < groupMin || (synced > 0 && int64(synced) >= in.waiting.Load()) {
				break
			}
			if !waiting {
				wait.Reset(in.opts.GroupWait)
				waiting = true
			}
			select {
			case r = <-in.reqs:
			case <-wait.C:
				return batch
			case <-in.closing:
			}
		}
		if r == nil {
			break
		}
		batch = append(batch, r)
		if r.sync {
			synced++
		}
	}
	if waiting {
		wait.Stop()
	}
	return batch
}

func (in *Ingester) commit(batch []*request) {
	items := make([]store.Item, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	start := time.Now()
	outcomes, err := in.opts.Store.Commit(context.Background(), items)
	in.opts.Health.CommitSeconds.Observe(time.Since(start).Seconds())
	in.opts.Health.BatchSize.Observe(float64(len(batch)))
	in.commitMu.Lock()
	in.commitErr = err
	in.commitMu.Unlock()
	if err != nil {
		in.log.Error("commit to history failed; messages will be re-sent", "messages", len(batch), "err", err)
		for _, r := range batch {
			in.opts.Health.Messages.WithLabelValues(itemKind(r.item), "store_error").Inc()
			in.finish(r, result{err: fmt.Errorf("store: %w", err)})
		}
		return
	}
	now := in.opts.Now()
	for i, r := range batch {
		o := outcomes[i]
		it := r.item
		label := map[store.Outcome]string{store.Stored: "stored", store.Duplicate: "duplicate", store.Stale: "stale"}[o]
		in.opts.Health.Messages.WithLabelValues(itemKind(it), label).Inc()
		switch {
		case it.Measurement != nil:
			m := it.Measurement
			if o == store.Stored {
				if m.ClockUnsynced {
					in.opts.Health.ClockUnsynced.Inc()
				}
				in.opts.Fleet.Observe(m)
				in.opts.Fleet.Count(m)
				in.opts.Health.IngestDelay.Observe(now.Sub(m.MeasuredAt).Seconds())
			}
			in.opts.Fleet.Seen(m.Site, it.ReceivedAt)
			in.queueAck(ackItem{site: m.Site, id: m.MessageID})
		case it.Status != nil:
			if o == store.Stored {
				in.opts.Fleet.ObserveAgent(store.Agent{Status: *it.Status, LastSeenAt: it.ReceivedAt})
			}
			in.opts.Fleet.Seen(it.Status.Site, it.ReceivedAt)
		}
		in.finish(r, result{outcome: o})
	}
}

// finish tells r's caller what became of it.
func (in *Ingester) finish(r *request, res result) {
	if r.sync {
		in.waiting.Add(-1)
	}
	r.done(res)
}

func itemKind(it store.Item) string {
	if it.Measurement != nil {
		return wire.TopicMeasurement
	}
	return wire.TopicStatus
}

func (in *Ingester) queueAck(a ackItem) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.acksClosed {
		return
	}
	select {
	case in.acks <- a:
	default:
		// full: the agent will re-send after its ack timeout and get it then
		in.opts.Health.Acks.WithLabelValues("error").Inc()
	}
}

// pendingAck is a site's ack being gathered, and its size so far.
type pendingAck struct {
	wire.Ack
	size int
}

// acker gathers acks per site for AckDelay and publishes one message per site.
func (in *Ingester) acker() {
	defer close(in.ackDone)
	pending := map[string]*pendingAck{}
	// flush publishes the site's ack and reports false when the publisher
	// is busy: the ack is kept, growing, for a later tick
	flush := func(site string) bool {
		if !in.sendAck(site, &pending[site].Ack) {
			return false
		}
		delete(pending, site)
		return true
	}
	tick := time.NewTicker(in.opts.AckDelay)
	defer tick.Stop()
	for {
		select {
		case a, ok := <-in.acks:
			if !ok {
				for site := range pending {
					if !flush(site) { // lost: the agent re-sends after its timeout
						in.opts.Health.Acks.WithLabelValues("error").Inc()
					}
				}
				return
			}
			p := pending[a.site]
			if p == nil {
				p = &pendingAck{Ack: wire.Ack{Version: wire.Version, Site: a.site}}
				pending[a.site] = p
			}
			if p.size > wire.MaxPayloadBytes*3/4 {
				// held back this long (the publisher busy) and still
				// growing: the agent re-sends this one after its timeout
				in.opts.Health.Acks.WithLabelValues("error").Inc()
				continue
			}
			if a.rejected == "" {
				p.Stored = append(p.Stored, a.id)
				p.size += len(a.id) + 3
			} else {
				p.Rejected = append(p.Rejected, wire.Rejected{MessageID: a.id, Reason: a.rejected})
				p.size += len(a.id) + len(a.rejected) + 32
			}
			if p.size > wire.MaxPayloadBytes/2 {
				flush(a.site)
			}
		case <-tick.C:
			for site := range pending {
				if !flush(site) {
					break // busy: the rest wait for the next tick too
				}
			}
		}
	}
}

// sendAck publishes a and reports whether it is done with (published, or
// lost and counted); false when the publisher is busy and a should be kept.
func (in *Ingester) sendAck(site string, a *wire.Ack) bool {
	in.pubMu.Lock()
	pub := in.publish
	in.pubMu.Unlock()
	if pub == nil {
		in.opts.Health.Acks.WithLabelValues("error").Inc()
		return true
	}
	payload, err := json.Marshal(a)
	if err == nil {
		err = pub(wire.Topic(site, wire.TopicAck), payload)
	}
	if errors.Is(err, ErrAckBusy) {
		return false
	}
	if err != nil {
		in.opts.Health.Acks.WithLabelValues("error").Inc()
		in.log.Warn("ack not published; the agent will re-send", "site", site, "err", err)
		return true
	}
	in.opts.Health.Acks.WithLabelValues("ok").Inc()
	return true
}

// Ready returns why the last commit to the history failed, or nil if it
// succeeded (or none was tried yet): while commits fail, nothing is
// acknowledged and agents keep their measurements, and the collector should
// say it is not ready (/-/ready) so that someone looks.
func (in *Ingester) Ready() error {
	in.commitMu.Lock()
	defer in.commitMu.Unlock()
	if in.commitErr != nil {
		return fmt.Errorf("the last commit to the history failed: %w", in.commitErr)
	}
	return nil
}

// Close stops accepting messages, commits those already submitted, publishes
// the acks gathered so far and returns. Close the inputs first, the store after.
func (in *Ingester) Close() {
	in.closeOnce.Do(func() {
		in.enqMu.Lock() // waits for callers queueing now: the batcher still runs
		in.closed = true
		in.enqMu.Unlock()
		close(in.closing)
		<-in.batchDone // the batcher commits everything already queued
		in.mu.Lock()
		in.acksClosed = true
		close(in.acks)
		in.mu.Unlock()
		<-in.ackDone
	})
}
