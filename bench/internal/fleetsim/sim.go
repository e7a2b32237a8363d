// Package fleetsim simulates a fleet of hubmon agents for load benchmarks: it
// publishes realistic messages of the wire schema for many sites through a
// real MQTT broker from a few connections, at a set rate or as fast as the
// broker takes them, and listens on the ack topics to count what the
// collector committed and how long it took.
//
// It is not an agent: it keeps no outbox and never re-sends, so anything not
// acknowledged shows as unacked instead of arriving late. A Sim is safe for
// concurrent use, but runs one phase at a time.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubmon/hubmon/agent/wire"
)

// MaxDuration bounds every phase, whatever its options say.
const MaxDuration = 10 * time.Minute

// Credential is an MQTT user. The broker binds the client id to the user name
// (use_username_as_clientid), so each connection needs a user of its own.
type Credential struct{ Username, Password string }

// Options configure a Sim.
type Options struct {
	BrokerURL string
	// Publishers are the users of the publishing connections, one
	// connection each; site i publishes on connection i mod len. Each must
	// be allowed to write every site's measurement and status topics.
	Publishers []Credential
	// Acks, if set, is the user of a connection that subscribes to every
	// site's ack topic. Without it nothing is acknowledged.
	Acks *Credential
	// Sites is the fleet size; sites are named SitePrefix-0..N-1.
	Sites      int
	SitePrefix string
	// Window bounds the QoS 1 publishes awaiting a PUBACK per connection
	// (default 500).
	Window int
	// Seed makes the fleet (line profiles, kinds) repeatable; ids are random.
	Seed uint64
	// ConnectTimeout bounds connecting (default 10s); PublishTimeout bounds
	// the wait for one PUBACK (default 30s): later counts as a publish error.
	ConnectTimeout, PublishTimeout time.Duration
	Logger                         *slog.Logger
}

// record is what is known of one tracked measurement; times are Unix
// nanoseconds.
type record struct {
	phase      int32
	site       int32
	acks       int32
	rejected   bool
	sentAt     int64
	measuredAt int64
	ackedAt    int64
}

type phaseState struct {
	name                              string
	tracked, acked, rejected, dupAcks int
	firstAck, lastAck                 int64
	recs                              []*record
	res                               Result
}

// Sim is a simulated fleet connected to a broker.
type Sim struct {
	opts Options
	log  *slog.Logger

	genMu sync.Mutex
	gen   *generator

	pubs []mqtt.Client
	ack  mqtt.Client

	run sync.Mutex // one phase at a time

	mu            sync.Mutex
	recs          map[string]*record
	phases        []*phaseState
	unknownAcks   int
	malformedAcks int
}

// New connects the publishing connections and the ack listener.
func New(opts Options) (*Sim, error) {
	if opts.Sites < 1 {
		return nil, errors.New("fleetsim: at least one site")
	}
	if len(opts.Publishers) == 0 {
		return nil, errors.New("fleetsim: at least one publisher")
	}
	if opts.SitePrefix == "" {
		opts.SitePrefix = "sim"
	}
	if !wire.ValidSite(fmt.Sprintf("%s-%d", opts.SitePrefix, opts.Sites-1)) {
		return nil, fmt.Errorf("fleetsim: site prefix %q makes invalid site ids", opts.SitePrefix)
	}
	if opts.Window <= 0 {
		opts.Window = 500
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{opts: opts, log: opts.Logger, recs: map[string]*record{},
		gen: newGenerator(opts.SitePrefix, opts.Sites, opts.Seed, time.Now())}
	if opts.Acks != nil {
		c, err := s.connect(*opts.Acks)
		if err != nil {
			return nil, err
		}
		s.ack = c
		t := c.Subscribe(wire.TopicRoot+"/+/"+wire.TopicAck, 1, s.onAck)
		if err := wait(t, opts.ConnectTimeout, "subscribe to acks"); err != nil {
			s.Close()
			return nil, err
		}
		if st, ok := t.(*mqtt.SubscribeToken); ok {
			for topic, code := range st.Result() {
				if code >= 0x80 {
					s.Close()
					return nil, fmt.Errorf("fleetsim: the broker refused %s to %s (code %#x): check the bench ACL", topic, opts.Acks.Username, code)
				}
			}
		}
	}
	for _, cr := range opts.Publishers {
		c, err := s.connect(cr)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.pubs = append(s.pubs, c)
	}
	return s, nil
}

func (s *Sim) connect(cr Credential) (mqtt.Client, error) {
	co := mqtt.NewClientOptions().AddBroker(s.opts.BrokerURL).
		SetClientID(cr.Username).SetUsername(cr.Username).SetPassword(cr.Password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(s.opts.ConnectTimeout).SetWriteTimeout(s.opts.ConnectTimeout).
		SetKeepAlive(30 * time.Second).SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.log.Error("broker connection lost", "user", cr.Username, "err", err)
		})
	c := mqtt.NewClient(co)
	if err := wait(c.Connect(), s.opts.ConnectTimeout+time.Second, "connect "+cr.Username+" to "+s.opts.BrokerURL); err != nil {
		c.Disconnect(0)
		return nil, err
	}
	return c, nil
}

func wait(t mqtt.Token, d time.Duration, what string) error {
	if !t.WaitTimeout(d) {
		return fmt.Errorf("fleetsim: %s: no answer within %s", what, d)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("fleetsim: %s: %w", what, err)
	}
	return nil
}

// Close disconnects every connection.
func (s *Sim) Close() {
	for _, c := range s.pubs {
		c.Disconnect(250)
	}
	if s.ack != nil {
		s.ack.Disconnect(250)
	}
}

// Site returns the name of site i.
func (s *Sim) Site(i int) string { return s.gen.sites[i].name }

func (s *Sim) onAck(_ mqtt.Client, msg mqtt.Message) {
	now := time.Now().UnixNano()
	site, kind, err := wire.ParseTopic(msg.Topic())
	var a *wire.Ack
	if err == nil && kind == wire.TopicAck {
		a, err = wire.DecodeAck(msg.Payload(), site)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a == nil || err != nil {
		s.malformedAcks++
		if a == nil {
			return
		}
	}
	mark := func(id string, rejected bool) {
		r := s.recs[id]
		if r == nil {
			s.unknownAcks++
			return
		}
		r.acks++
		ph := s.phases[r.phase]
		if r.acks > 1 {
			ph.dupAcks++
			return
		}
		r.ackedAt, r.rejected = now, rejected
		if rejected {
			ph.rejected++
		} else {
			ph.acked++
		}
		if ph.firstAck == 0 {
			ph.firstAck = now
		}
		ph.lastAck = max(ph.lastAck, now)
	}
	for _, id := range a.Stored {
		mark(id, false)
	}
	for _, r := range a.Rejected {
		mark(r.MessageID, true)
	}
}

// Phase is one bounded stretch of publishing.
type Phase struct {
	Name string
	// Count bounds the messages published (0: only Duration bounds it).
	Count int
	// Duration bounds the time spent publishing (0: only Count bounds it);
	// MaxDuration bounds every phase.
	Duration time.Duration
	// Rate is messages per second; 0 publishes as fast as the broker
	// acknowledges, with every message built before the clock starts (so
	// Count is then required). At a set rate messages are built as they go
	// and measured_at is the moment of publishing.
	Rate float64
	// Track makes the phase's measurements expected on the ack topics.
	Track bool
	// Kinds says which kinds of message to publish (default Mixed).
	Kinds Kinds
	// OnSent, if set, is called (concurrently) for every measurement just
	// before it is published.
	OnSent func(site, probe string, measuredAt time.Time)
}

// Result is what one phase did.
type Result struct {
	Phase                    string
	Sent                     int // publishes that got a PUBACK
	Measurements, Statuses   int // of Sent
	PublishErrors            int
	Bytes                    int64
	Start, PublishEnd        time.Time // first publish, last PUBACK
	Tracked                  int       // measurements expected to be acknowledged
	Acked, Rejected, Unacked int
	DuplicateAcks            int
	FirstAck, LastAck        time.Time
	// seconds: from publishing to the ack, and from measured_at to the ack
	AckDelay, MeasuredToAck Quantiles
}

// PublishRate is the messages per second the broker took.
func (r Result) PublishRate() float64 {
	d := r.PublishEnd.Sub(r.Start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.Sent) / d
}

// Quantiles summarise durations in seconds.
type Quantiles struct {
	N             int
	P50, P99, Max float64
}

// Quantile returns the q-quantile of sorted values (nearest rank).
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Summarise sorts v and returns its quantiles.
func Summarise(v []float64) Quantiles {
	slices.Sort(v)
	q := Quantiles{N: len(v), P50: Quantile(v, 0.5), P99: Quantile(v, 0.99)}
	if len(v) > 0 {
		q.Max = v[len(v)-1]
	}
	return q
}

type pending struct {
	tok mqtt.Token
	msg *message
}

// Run publishes one phase and returns when every publish of it has its
// PUBACK (or failed). Acks may still be coming: see WaitAcks.
func (s *Sim) Run(ctx context.Context, ph Phase) (Result, error) {
	s.run.Lock()
	defer s.run.Unlock()
	if ph.Rate <= 0 && ph.Count <= 0 {
		return Result{}, errors.New("fleetsim: a phase as fast as possible needs a count")
	}
	if ph.Duration <= 0 || ph.Duration > MaxDuration {
		ph.Duration = MaxDuration
	}
	s.mu.Lock()
	idx := len(s.phases)
	st := &phaseState{name: ph.Name}
	s.phases = append(s.phases, st)
	s.mu.Unlock()

	var pre []*message
	if ph.Rate <= 0 {
		s.genMu.Lock()
		now := time.Now()
		pre = make([]*message, ph.Count)
		for i := range pre {
			pre[i] = s.gen.make(now, ph.Kinds)
		}
		s.genMu.Unlock()
	}

	ctx, cancel := context.WithTimeout(ctx, ph.Duration)
	defer cancel()
	var (
		sent, meas, stats, errs atomic.Int64
		bytes                   atomic.Int64
		lastPuback              atomic.Int64
		wg                      sync.WaitGroup
	)
	ins := make([]chan *message, len(s.pubs))
	for i, c := range s.pubs {
		ins[i] = make(chan *message, 1024)
		sem := make(chan struct{}, s.opts.Window)
		inflight := make(chan pending, s.opts.Window)
		wg.Add(2)
		go func() { // publish
			defer wg.Done()
			defer close(inflight)
			for m := range ins[i] {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					continue // drain without publishing
				}
				now := time.Now()
				if m.id != "" && ph.Track {
					s.mu.Lock()
					r := &record{phase: int32(idx), site: int32(m.site), sentAt: now.UnixNano(), measuredAt: m.measuredAt.UnixNano()}
					s.recs[m.id] = r
					st.recs = append(st.recs, r)
					st.tracked++
					s.mu.Unlock()
				}
				if m.id != "" && ph.OnSent != nil {
					ph.OnSent(s.gen.sites[m.site].name, m.probe, m.measuredAt)
				}
				inflight <- pending{c.Publish(m.topic, 1, m.retained, m.payload), m}
			}
		}()
		go func() { // wait for PUBACKs, in order
			defer wg.Done()
			for p := range inflight {
				ok := p.tok.WaitTimeout(s.opts.PublishTimeout) && p.tok.Error() == nil
				<-sem
				if !ok {
					if errs.Add(1) <= 3 {
						s.log.Error("publish failed", "topic", p.msg.topic, "err", p.tok.Error())
					}
					continue
				}
				lastPuback.Store(time.Now().UnixNano())
				sent.Add(1)
				bytes.Add(int64(len(p.msg.payload)))
				if p.msg.id != "" {
					meas.Add(1)
				} else {
					stats.Add(1)
				}
			}
		}()
	}

	start := time.Now()
	if ph.Rate <= 0 {
	feed:
		for _, m := range pre {
			select {
			case ins[m.site%len(ins)] <- m:
			case <-ctx.Done():
				break feed
			}
		}
	} else {
		tick := time.NewTicker(5 * time.Millisecond)
		n := 0
	paced:
		for ph.Count <= 0 || n < ph.Count {
			select {
			case <-ctx.Done():
				break paced
			case <-tick.C:
			}
			due := int(ph.Rate * time.Since(start).Seconds())
			if ph.Count > 0 {
				due = min(due, ph.Count)
			}
			s.genMu.Lock()
			batch := make([]*message, 0, max(due-n, 0))
			for ; n < due; n++ {
				batch = append(batch, s.gen.make(time.Now(), ph.Kinds))
			}
			s.genMu.Unlock()
			for _, m := range batch {
				ins[m.site%len(ins)] <- m
			}
		}
		tick.Stop()
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()

	res := Result{Phase: ph.Name, Sent: int(sent.Load()), Measurements: int(meas.Load()), Statuses: int(stats.Load()),
		PublishErrors: int(errs.Load()), Bytes: bytes.Load(), Start: start}
	if t := lastPuback.Load(); t > 0 {
		res.PublishEnd = time.Unix(0, t)
	}
	s.mu.Lock()
	st.res = res
	s.mu.Unlock()
	if res.PublishErrors > 0 {
		return res, fmt.Errorf("fleetsim: phase %s: %d publishes failed", ph.Name, res.PublishErrors)
	}
	return res, nil
}

// WaitAcks waits until every tracked measurement of the named phase is
// acknowledged (stored or rejected), ctx is done or timeout passes, and
// returns the phase's result with its acks.
func (s *Sim) WaitAcks(ctx context.Context, phase string, timeout time.Duration) Result {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		st := s.phase(phase)
		done := st == nil || st.acked+st.rejected >= st.tracked
		s.mu.Unlock()
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			return s.Result(phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Sim) phase(name string) *phaseState {
	for i := len(s.phases) - 1; i >= 0; i-- {
		if s.phases[i].name == name {
			return s.phases[i]
		}
	}
	return nil
}

// Result returns the named phase's result with the acks received so far.
func (s *Sim) Result(phase string) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.phase(phase)
	if st == nil {
		return Result{Phase: phase}
	}
	res := st.res
	res.Tracked, res.Acked, res.Rejected, res.DuplicateAcks = st.tracked, st.acked, st.rejected, st.dupAcks
	res.Unacked = st.tracked - st.acked - st.rejected
	if st.firstAck > 0 {
		res.FirstAck, res.LastAck = time.Unix(0, st.firstAck), time.Unix(0, st.lastAck)
	}
	var delay, measured []float64
	for _, r := range st.recs {
		if r.ackedAt > 0 {
			delay = append(delay, float64(r.ackedAt-r.sentAt)/1e9)
			measured = append(measured, float64(r.ackedAt-r.measuredAt)/1e9)
		}
	}
	res.AckDelay, res.MeasuredToAck = Summarise(delay), Summarise(measured)
	return res
}

// Sent is a tracked measurement and what became of it.
type Sent struct {
	Site, MessageID string
	Acks            int // times acknowledged (stored or rejected)
	Rejected        bool
}

// Tracked returns every tracked measurement of every phase.
func (s *Sim) Tracked() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sent, 0, len(s.recs))
	for id, r := range s.recs {
		out = append(out, Sent{Site: s.gen.sites[r.site].name, MessageID: id, Acks: int(r.acks), Rejected: r.rejected})
	}
	return out
}

// StrayAcks counts acks for ids this Sim never tracked, and ack messages
// that did not decode.
func (s *Sim) StrayAcks() (unknown, malformed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unknownAcks, s.malformedAcks
}
