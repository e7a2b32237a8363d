package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// Line-quality defaults: SamKnows' continuous UDP test (REFERENCE.md) sends a
// packet about every 1.5 s, counts one not back within 2 s as lost, and two or
// more consecutive losses as a disconnection.
const (
	defaultLQSendInterval = 1500 * time.Millisecond
	defaultLQTimeout      = 2 * time.Second
	defaultLQPeriod       = 60 * time.Second
	defaultLQOutageAfter  = 2

	// minLQSendInterval is the fastest the prober ever sends, whatever the
	// configuration says.
	minLQSendInterval = 10 * time.Millisecond
	// lqResolveTimeout bounds the lookup of a target's name.
	lqResolveTimeout = 5 * time.Second
	// lqCheckTimeout bounds one gateway check.
	lqCheckTimeout = 5 * time.Second
	// lqSummaryGrace is how long after Period + Timeout a run still waits
	// for the gateway checks of the outages it reports (a check dials for
	// gatewayDialTimeout); a check not done by then reads "unknown".
	lqSummaryGrace = 2 * time.Second
	// lqReadRetry is the pause after an unexpected read error.
	lqReadRetry = 50 * time.Millisecond
	// lqMaxOutages is wire's bound on the outages of one summary.
	lqMaxOutages = 64
)

// NewLineQuality returns the line-quality prober: a steady stream of small UDP
// probes from one unprivileged socket to cfg.UDPTarget, a hubmon echo
// responder (the collector's echo_server), summarised once per Period.
//
// Each Probe call is one summary, and its period starts when the call does:
// it sends probes every SendInterval while the Period lasts (so about
// Period/SendInterval probes: 40 with the defaults), and never faster. The
// cadence carries over from one call to the next: the first probe of a run
// goes out SendInterval after the previous run's last one (at once when that
// time has passed), within the run's own period, so back-to-back runs keep
// one steady stream and lose no time waiting. A probe is answered when the
// responder's reply, matched by sequence number and a per-run random nonce,
// arrives within Timeout of its sending; a probe not answered in time is
// lost, and a reply that comes later, or a second time, is ignored. The probes
// sent near the end of the period are waited for (at most Timeout after the
// last one), so every probe counted in a summary has its fate decided in it:
// received <= sent, lost = sent - received, nothing carried over. A call so
// lasts at most Period + Timeout, plus up to lqSummaryGrace (2 s) waiting for
// the gateway check of a disconnection that ended at its very end: give the
// job a timeout of at least Period + Timeout + 5 s, and run it back to back.
// (The name lookup happens within the period.) A probe is 29 bytes of UDP
// payload each way: about 0.2 GB a month at the defaults, counting IP and UDP
// headers.
//
// Figures: sent, received, RTT min / p50 / p95 / max of the answered probes
// (nearest-rank percentiles), jitter (the mean absolute difference of
// consecutive RTTs, needing two), and the disconnections (see below).
// IntervalSeconds is the time from the start of the call to its end, so
// back-to-back summaries tile time. A probe the system refuses to send
// (network unreachable while the link is down) counts as sent and lost: the
// line could not carry it. So does every probe of a run that has no address
// for the target (its name could not be resolved, and no earlier address is
// known): the stream goes on, unsent, and an outage that takes DNS down with
// it is seen. Total loss is not an error: it is the measurement.
//
// Under load: probes sent while cfg.Busy says the agent itself is loading
// the line (see LineQualityConfig.Busy) are counted apart, in SentUnderLoad
// and ReceivedUnderLoad, and left out of everything else, so that the
// agent's own speed tests do not read as loss, latency or disconnections.
//
// Disconnections: OutageAfter consecutive lost probes (in sending order,
// skipping those under load) make one. It starts at the sending of the first
// lost probe and ends at the sending of the first probe answered after them
// (the first moment the line is known to carry traffic again); LostProbes
// counts the lost probes between (not those under load). The duration comes
// from the monotonic clock, and the start is placed that long before the
// end's wall time, so a clock step (NTP on a Pi without a real-time clock)
// cannot make an outage end before it starts. The run of losses is kept
// across Probe calls, so a disconnection may span summaries: it is reported
// in Outages of the summary it ended in, and every summary it is still going
// on at the end of carries OutageSince (its start). A summary lists at most
// 64 outages, the first; OutagesDropped counts the others and
// OutageSecondsTotal sums the durations of all of them. When a disconnection
// is declared, the prober checks once, in the background, whether the
// default gateway still answers (see gatewayChecker): Cause is "wan" when it
// does, "lan" when it does not (or the agent has no route at all) and
// "unknown" when that could not be told. cfg.NoGatewayCheck turns the check
// off (Cause is then always "unknown").
//
// Errors: only a target that is invalid in itself (not host:port, a bad port,
// a host name that is not a valid name) or a socket the system will not open
// fails the run. When ctx ends early Probe returns at once with the figures of
// the probes decided so far and an error saying the run was cut short; probes
// still in flight are not counted.
//
// Probe calls are serialised: a second call waits for the first to return.
// A Probe returns only after its socket is closed, its reader has ended and
// its name lookup has returned; only a gateway check (bounded by
// lqCheckTimeout) can outlive it, and that touches the shared outage state
// under the prober's mutex.
//
// cfg.ICMPTarget is not used here: NewLineQualityICMP makes its prober.
func NewLineQuality(cfg LineQualityConfig) Prober {
	p := newLineQuality(cfg, "udp", cfg.UDPTarget)
	p.open = openUDP
	return p
}

// lineQuality is the engine shared by the UDP and ICMP streams.
type lineQuality struct {
	method, target string
	interval       time.Duration
	timeout        time.Duration
	period         time.Duration
	outageAfter    int64
	log            *slog.Logger

	// busy reports whether the agent loads the line itself; nil for never.
	busy func() bool

	// open starts a run's stream: one socket to the target's address.
	open func(to netip.AddrPort) (lqStream, error)
	// checkGateway returns the cause of a disconnection (wire.Cause...). It
	// runs in its own goroutine with a bounded context.
	checkGateway func(ctx context.Context) string
	// observeGateway, when set, notes the default gateway at the start of
	// each run, for checks made after its route is gone.
	observeGateway func()
	// resolver looks up the target's name; nil for the system's. A test
	// hook, like httpProber.resolver.
	resolver *net.Resolver

	running chan struct{} // holds a token while a Probe runs

	mu  sync.Mutex // guards what follows
	seq uint64     // the last sequence number used
	// nextSend is the earliest sending of the next probe: SendInterval
	// after the last one, carried over from one run to the next.
	nextSend time.Time
	// cached is the target's last resolved address, used when a lookup
	// fails (during an outage the DNS server is out of reach too).
	cached netip.AddrPort
	outage lqOutage
}

// lqOutage is the current run of consecutive lost probes.
type lqOutage struct {
	lost  int64     // consecutive lost probes so far
	start time.Time // sending of the first of them (with its monotonic reading)
	check *lqCheck  // started when lost reached outageAfter
}

// lqCheck is one gateway check; cause is written before done is closed.
type lqCheck struct {
	done  chan struct{}
	cause string
}

// lqEnded is a disconnection that ended during a run.
type lqEnded struct {
	start, end time.Time // sending of the first lost and the first answered probe
	lost       int64
	check      *lqCheck
}

// lqStream is one run's socket. send and recv are called from different
// goroutines; close makes recv return an error wrapping net.ErrClosed.
type lqStream interface {
	// send sends probe seq.
	send(seq uint64) error
	// recv blocks until an answer to one of this stream's probes arrives and
	// returns its sequence number and arrival time. It skips anything else.
	recv() (seq uint64, at time.Time, err error)
	close() error
}

func newLineQuality(cfg LineQualityConfig, method, target string) *lineQuality {
	p := &lineQuality{
		method:      method,
		target:      target,
		interval:    cfg.SendInterval,
		timeout:     cfg.Timeout,
		period:      cfg.Period,
		outageAfter: int64(cfg.OutageAfter),
		log:         cfg.Logger,
		busy:        cfg.Busy,
		running:     make(chan struct{}, 1),
	}
	if p.interval <= 0 {
		p.interval = defaultLQSendInterval
	}
	p.interval = max(p.interval, minLQSendInterval)
	if p.timeout <= 0 {
		p.timeout = defaultLQTimeout
	}
	if p.period <= 0 {
		p.period = defaultLQPeriod
	}
	if p.outageAfter <= 0 {
		p.outageAfter = defaultLQOutageAfter
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("method", method, "target", target)
	if cfg.NoGatewayCheck {
		p.checkGateway = func(context.Context) string { return wire.CauseUnknown }
	} else {
		g := newGatewayChecker(cfg.RouteFile, cfg.IPv6RouteFile)
		p.checkGateway, p.observeGateway = g.cause, g.observe
	}
	return p
}

// isBusy reports whether the line is under the agent's own load now.
func (p *lineQuality) isBusy() bool { return p.busy != nil && p.busy() }

// lqProbe is one probe sent in a run.
type lqProbe struct {
	seq      uint64
	sent     time.Time
	deadline time.Time
	state    int // lqPending, lqAnswered or lqLost
	rtt      time.Duration
	// loaded: the line was under the agent's own load when the probe was
	// sent or when its fate was decided.
	loaded bool
}

const (
	lqPending = iota
	lqAnswered
	lqLost
)

type lqReply struct {
	seq uint64
	at  time.Time
}

// lqTally is what a run measured.
type lqTally struct {
	sent, received int64 // not under load
	// sentLoaded and receivedLoaded count the probes under load.
	sentLoaded, receivedLoaded int64
	rtts                       []time.Duration // of the answered probes not under load, in sending order
	ended                      []lqEnded
	inFlight                   int // probes not counted because the run was cut short
	sendErrors                 int64
}

func (p *lineQuality) Probe(ctx context.Context) (Result, error) {
	lq := &wire.LineQuality{Method: p.method, Target: p.target}
	res := Result{Kind: wire.KindLineQuality, LineQuality: lq}
	select {
	case p.running <- struct{}{}:
	case <-ctx.Done():
		return res, fmt.Errorf("cancelled before start: %w", context.Cause(ctx))
	}
	defer func() { <-p.running }()
	if ctx.Err() != nil {
		return res, fmt.Errorf("cancelled before start: %w", context.Cause(ctx))
	}

	t0 := time.Now() // the period starts now, lookup included
	to, refreshed, err := p.address(ctx)
	if err != nil {
		return res, err
	}
	defer refreshed()
	var st lqStream
	if to.IsValid() {
		if st, err = p.open(to); err != nil {
			return res, err
		}
	} else {
		p.log.Debug("line quality: no address for the target; this run's probes count as lost")
		st = newLQNoAddress()
	}
	if p.observeGateway != nil {
		p.observeGateway()
	}
	p.mu.Lock()
	first := p.nextSend
	p.mu.Unlock()
	if first.Before(t0) {
		first = t0 // at once
	}
	t, cut := p.stream(ctx, st, t0, first)
	refreshed()
	p.summarise(ctx, lq, t, t0.Add(p.period+p.timeout+lqSummaryGrace))
	lq.IntervalSeconds = max(time.Since(t0), 0).Seconds()
	if cut {
		return res, fmt.Errorf("line quality run cut short after %.1fs (%d probes in flight not counted): %w",
			lq.IntervalSeconds, t.inFlight, context.Cause(ctx))
	}
	return res, nil
}

// stream sends and times the probes of one run on st, in the period from t0
// (the first not before first), until the period has ended and every probe is
// decided, then closes st. It reports cut when ctx ended before the run did.
func (p *lineQuality) stream(ctx context.Context, st lqStream, t0, first time.Time) (t lqTally, cut bool) {
	replies := make(chan lqReply, 16)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			seq, at, err := st.recv()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				p.log.Debug("line quality: read failed", "err", err)
				select {
				case <-stop:
					return
				case <-time.After(lqReadRetry):
				}
				continue
			}
			select {
			case replies <- lqReply{seq, at}:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		_ = st.close()
		<-readerDone
	}()

	end := t0.Add(p.period)
	next := first // the next sending; zero when the period is over
	var queue []*lqProbe
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if !next.IsZero() && !now.Before(next) && now.Before(end) {
			queue = append(queue, p.sendOne(st, now, &t))
			next = now.Add(p.interval) // never faster, even after a late wake-up
		}
		if !next.IsZero() && (!next.Before(end) || !now.Before(end)) {
			next = time.Time{} // the period is over: no more probes
		}
		// Take replies that are already waiting before declaring probes lost.
		for drained := false; !drained; {
			select {
			case r := <-replies:
				p.mark(queue, r)
			default:
				drained = true
			}
		}
		now = time.Now()
		wake := next
		for _, q := range queue {
			if q.state != lqPending {
				continue
			}
			if !now.Before(q.deadline) {
				q.state = lqLost
				q.loaded = q.loaded || p.isBusy()
			} else if wake.IsZero() || q.deadline.Before(wake) {
				wake = q.deadline
			}
		}
		queue = p.settle(queue, &t)
		if next.IsZero() && len(queue) == 0 {
			if !now.Before(end) {
				return t, false
			}
			wake = end
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			t.inFlight = len(queue)
			return t, true
		case r := <-replies:
			p.mark(queue, r)
		case <-timer.C:
		}
	}
}

// sendOne sends the next probe at now.
func (p *lineQuality) sendOne(st lqStream, now time.Time, t *lqTally) *lqProbe {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.nextSend = now.Add(p.interval)
	p.mu.Unlock()
	q := &lqProbe{seq: seq, sent: now, deadline: now.Add(p.timeout), loaded: p.isBusy()}
	if err := st.send(seq); err != nil {
		q.state = lqLost
		if t.sendErrors == 0 {
			p.log.Debug("line quality: send failed; the probe counts as lost", "err", err)
		}
		t.sendErrors++
	}
	return q
}

// mark records reply r: answered if its probe is still pending and r came in
// time, lost if it came late; ignored if its probe is decided or unknown.
func (p *lineQuality) mark(queue []*lqProbe, r lqReply) {
	for _, q := range queue {
		if q.seq != r.seq {
			continue
		}
		if q.state != lqPending {
			return // a duplicate, or late
		}
		if r.at.After(q.deadline) {
			q.state = lqLost
		} else {
			q.state = lqAnswered
			q.rtt = max(r.at.Sub(q.sent), 0)
		}
		q.loaded = q.loaded || p.isBusy()
		return
	}
}

// settle takes the decided probes at the head of queue, in sending order, into
// t and the outage state, and returns the rest.
func (p *lineQuality) settle(queue []*lqProbe, t *lqTally) []*lqProbe {
	for len(queue) > 0 && queue[0].state != lqPending {
		q := queue[0]
		queue = queue[1:]
		if q.loaded {
			// Under the agent's own load: counted apart. A lost one says
			// nothing about the line; an answered one proves it works.
			t.sentLoaded++
			if q.state == lqAnswered {
				t.receivedLoaded++
				if e := p.noteAnswered(q.sent); e != nil {
					t.ended = append(t.ended, *e)
				}
			}
			continue
		}
		t.sent++
		if q.state == lqAnswered {
			t.received++
			t.rtts = append(t.rtts, q.rtt)
			if e := p.noteAnswered(q.sent); e != nil {
				t.ended = append(t.ended, *e)
			}
		} else {
			p.noteLost(q.sent)
		}
	}
	return queue
}

// noteLost records a lost probe sent at sent, and declares a disconnection
// when it makes OutageAfter in a row.
func (p *lineQuality) noteLost(sent time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.outage
	o.lost++
	if o.lost == 1 {
		o.start = sent
	}
	if o.lost == p.outageAfter {
		o.check = p.startCheck()
		p.log.Info("line outage began", "since", o.start.UTC().Format(time.RFC3339Nano))
	}
}

// noteAnswered records an answered probe sent at sent; it returns the
// disconnection this ends, if one was going on.
func (p *lineQuality) noteAnswered(sent time.Time) *lqEnded {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.outage
	p.outage = lqOutage{}
	if o.lost < p.outageAfter {
		return nil
	}
	return &lqEnded{start: o.start, end: sent, lost: o.lost, check: o.check}
}

// startCheck checks the gateway in the background. The check has its own
// bounded context: it must outlast a run that ends while it goes on, as its
// disconnection does.
func (p *lineQuality) startCheck() *lqCheck {
	c := &lqCheck{done: make(chan struct{}), cause: wire.CauseUnknown}
	check := p.checkGateway
	go func() {
		defer close(c.done)
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("line quality: gateway check panicked", "panic", fmt.Sprint(r))
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), lqCheckTimeout)
		defer cancel()
		switch cause := check(ctx); cause {
		case wire.CauseWAN, wire.CauseLAN, wire.CauseUnknown:
			c.cause = cause
		}
	}()
	return c
}
