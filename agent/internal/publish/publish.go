// Package publish carries the agent's outbox to the collector over MQTT.
//
// Delivery rule: a measurement leaves the outbox only when the collector says,
// on hubmon/v1/<site>/ack, that it is committed to its history (or refused for
// good). A broker's PUBACK proves nothing: Mosquitto acknowledges and then
// drops messages (ACL denials, queue limits, crashes before autosave), and
// paho completes a QoS 1 token with no error when it merely re-sends it after
// a reconnect. So paho's own reconnect and stores are switched off: each
// connection is a fresh client with a clean session, made by this package's
// loop with jittered back-off, and whatever the collector has not acknowledged
// within the ack timeout is published again. The collector stores a message id
// once, so a re-send is harmless.
package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/wire"
)

// Options configure a Publisher.
type Options struct {
	Site      string
	BrokerURL string // tcp://host:port or ssl://host:port
	Username  string
	Password  string
	TLS       *tls.Config // for ssl://; nil uses the system roots
	// ConnectTimeout bounds connecting and every wait for the broker.
	ConnectTimeout time.Duration
	// AckTimeout: a measurement published this long ago without the
	// collector's ack is published again.
	AckTimeout time.Duration
	// StatusInterval is how often the online status is refreshed.
	StatusInterval time.Duration
	// Window bounds the measurements published and not yet acknowledged.
	Window int
	Outbox *outbox.Outbox
	// AgentVersion, OS, Arch and Started describe this agent in its status.
	AgentVersion, OS, Arch string
	Started                time.Time
	// Lost, if set, reports measurements that never reached the outbox.
	Lost func() int64
	// ClockSynced, if set, says whether the system clock is synchronised
	// (Status.ClockUnsynced); nil for always.
	ClockSynced func() bool
	// Budget, if set, fills the data-budget fields of each status
	// (BudgetMonth, DataBudgetBytes, DataUsedBytes, SpeedtestsSkipped,
	// SpeedtestsShortened); it is called from the publisher's goroutine.
	Budget func(st *wire.Status)
	// Acked, if set, is called with each ack from the collector once the
	// outbox has deleted what it names (a rejected entry is deleted too),
	// from the publisher's goroutine; it must return quickly.
	Acked  func(a *wire.Ack)
	Logger *slog.Logger
	Now    func() time.Time
}

// Publisher moves measurements from the outbox to the collector. Run it in
// one goroutine; Notify may be called from any goroutine.
type Publisher struct {
	opts      Options
	log       *slog.Logger
	wake      chan struct{}
	mu        sync.Mutex
	connected bool
}

// New returns a Publisher; call Run to start it.
func New(opts Options) *Publisher {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Window <= 0 {
		opts.Window = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
}

// Notify tells the publisher that the outbox has something new.
func (p *Publisher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Connected reports whether a broker session is up.
func (p *Publisher) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

func (p *Publisher) setConnected(v bool) {
	p.mu.Lock()
	p.connected = v
	p.mu.Unlock()
}

// Run connects, publishes and reconnects until ctx is done. On the way out it
// publishes an offline status (a clean disconnect does not fire the Will).
func (p *Publisher) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := p.session(ctx)
		p.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second // the last session was healthy
		}
		// full jitter, so a fleet does not reconnect in step after an outage
		wait := time.Duration(rand.Int64N(int64(backoff))) + 500*time.Millisecond
		p.log.Warn("broker session ended; will reconnect", "err", err, "retry_in_seconds", wait.Seconds())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, time.Minute)
	}
	return nil
}

// waitToken waits for t with a deadline: paho tokens can stay pending for ever.
func waitToken(ctx context.Context, t mqtt.Token, d time.Duration, what string) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("%s: no answer from the broker within %s", what, d)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

func (p *Publisher) status(state string, session int64, connectedAt time.Time) []byte {
	now := p.opts.Now().UTC()
	st := wire.Status{
		Version: wire.Version, Site: p.opts.Site, AgentID: p.opts.Outbox.AgentID(), State: state, Session: session,
		ConnectedAt: connectedAt, SentAt: now, AgentVersion: p.opts.AgentVersion, OS: p.opts.OS, Arch: p.opts.Arch,
		UptimeSeconds: max(0, now.Sub(p.opts.Started).Seconds()),
	}
	if s, err := p.opts.Outbox.Stats(context.Background()); err == nil {
		st.OutboxBacklog, st.OutboxDroppedTotal = s.Backlog, s.DroppedTotal
	}
	if p.opts.Lost != nil {
		st.MeasurementsLostTotal = p.opts.Lost()
	}
	if p.opts.ClockSynced != nil {
		st.ClockUnsynced = !p.opts.ClockSynced()
	}
	if p.opts.Budget != nil {
		p.opts.Budget(&st)
	}
	b, _ := json.Marshal(st) // cannot fail: plain fields
	return b
}

// subscribed checks a SUBACK: paho completes a refused subscription (code
// 0x80, an ACL denial) with no error.
func subscribed(t mqtt.Token) error {
	st, ok := t.(*mqtt.SubscribeToken)
	if !ok {
		return nil
	}
	for topic, code := range st.Result() {
		if code >= 0x80 {
			return fmt.Errorf("the broker refused the subscription to %s (code %#x): check its ACL lets this site read its ack topic", topic, code)
		}
	}
	return nil
}

func (p *Publisher) session(ctx context.Context) error {
	o := p.opts
	session, err := o.Outbox.NextSession(ctx)
	if err != nil {
		return err
	}
	connectedAt := o.Now().UTC()
	statusTopic := wire.Topic(o.Site, wire.TopicStatus)
	lost := make(chan error, 1)
	acks := make(chan *wire.Ack, 256)

	co := mqtt.NewClientOptions().
		AddBroker(o.BrokerURL).
		SetClientID(o.Site). // the broker binds the client id to the user name
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetConnectTimeout(o.ConnectTimeout).
		SetWriteTimeout(o.ConnectTimeout).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(10*time.Second).
		SetBinaryWill(statusTopic, p.status(wire.StateOffline, session, connectedAt), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if o.TLS != nil {
		co.SetTLSConfig(o.TLS)
	}
	c := mqtt.NewClient(co)
	if err := waitToken(ctx, c.Connect(), o.ConnectTimeout+time.Second, "connect to "+o.BrokerURL); err != nil {
		c.Disconnect(0) // a late CONNACK must not leave a session behind
		return explainConnect(err, o)
	}
	defer func() {
		// Stopping (SIGTERM), whatever we were waiting for: say so. A clean
		// DISCONNECT makes the broker discard the Will.
		if ctx.Err() != nil && c.IsConnectionOpen() {
			t := c.Publish(statusTopic, 1, true, p.status(wire.StateOffline, session, connectedAt))
			_ = waitToken(context.Background(), t, 2*time.Second, "publish offline status")
		}
		c.Disconnect(250)
	}()

	ackTopic := wire.Topic(o.Site, wire.TopicAck)
	onAck := func(_ mqtt.Client, m mqtt.Message) {
		a, err := wire.DecodeAck(m.Payload(), o.Site)
		if a == nil {
			p.log.Warn("ignoring a malformed ack", "err", err)
			return
		}
		if err != nil {
			// keep what is usable: one bad id must not cost the others
			p.log.Warn("ack has invalid entries; using the rest", "err", err)
			a.Stored = slices.DeleteFunc(a.Stored, func(id string) bool { return !wire.ValidID(id) })
			a.Rejected = slices.DeleteFunc(a.Rejected, func(r wire.Rejected) bool { return !wire.ValidID(r.MessageID) })
		}
		select {
		case acks <- a:
		case <-ctx.Done():
		}
	}
	st := c.Subscribe(ackTopic, 1, onAck)
	if err := waitToken(ctx, st, o.ConnectTimeout, "subscribe to "+ackTopic); err != nil {
		return err
	}
	if err := subscribed(st); err != nil {
		return err
	}
	if err := waitToken(ctx, c.Publish(statusTopic, 1, true, p.status(wire.StateOnline, session, connectedAt)), o.ConnectTimeout, "publish status"); err != nil {
		return err
	}
	p.setConnected(true)
	p.log.Info("connected to broker", "broker", o.BrokerURL, "session", session)

	// inflight: message id -> when published in this session. cursor walks
	// the outbox, so entries that are never acknowledged (a collector that
	// refuses their schema version, say) cannot starve newer ones.
	inflight := map[string]time.Time{}
	var cursor int64
	// ackWait doubles while the collector acknowledges nothing (it is down
	// behind Mosquitto): re-sending a backlog every minute would fill a
	// capped line and the broker's queue with copies.
	ackWait := o.AckTimeout
	lastAck := time.Now()
	statusTick := time.NewTicker(o.StatusInterval)
	defer statusTick.Stop()
	retry := time.NewTicker(max(o.AckTimeout/4, 100*time.Millisecond))
	defer retry.Stop()
	measurementTopic := wire.Topic(o.Site, wire.TopicMeasurement)
	onAcked := func(a *wire.Ack) {
		p.handleAck(ctx, a, inflight)
		lastAck, ackWait = time.Now(), o.AckTimeout
	}

	for {
		now := time.Now()
		expired := false
		for id, at := range inflight {
			if now.Sub(at) >= ackWait {
				delete(inflight, id) // due again
				expired = true
			}
		}
		if expired && now.Sub(lastAck) >= ackWait {
			ackWait = min(ackWait*2, 32*o.AckTimeout)
			p.log.Warn("no acknowledgement from the collector; re-sending less often", "next_wait_seconds", ackWait.Seconds(), "in_flight", len(inflight))
		}
		if room := o.Window - len(inflight); room > 0 {
			limit := min(room, 100)
			entries, err := o.Outbox.Pending(ctx, cursor, limit, func(id string) bool { _, ok := inflight[id]; return ok })
			if err != nil {
				return err
			}
			toks := make([]mqtt.Token, len(entries))
			for i, e := range entries {
				toks[i] = c.Publish(measurementTopic, 1, false, e.Payload)
			}
			for i, t := range toks {
				if err := waitToken(ctx, t, o.ConnectTimeout, "publish measurement"); err != nil {
					return err
				}
				inflight[entries[i].MessageID] = time.Now()
				cursor = entries[i].Seq
			}
			if len(entries) < limit {
				cursor = 0 // reached the end: next time start from the oldest again
			}
			if len(entries) == limit {
				// more may be waiting: take acks that arrived, then go on
				p.drainAcks(acks, onAcked)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil // the deferred function says goodbye
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case a := <-acks:
			onAcked(a)
		case <-p.wake:
		case <-retry.C:
		case <-statusTick.C:
			if err := waitToken(ctx, c.Publish(statusTopic, 1, true, p.status(wire.StateOnline, session, connectedAt)), o.ConnectTimeout, "publish status"); err != nil {
				return err
			}
		}
	}
}

func (p *Publisher) drainAcks(acks chan *wire.Ack, onAcked func(*wire.Ack)) {
	for {
		select {
		case a := <-acks:
			onAcked(a)
		default:
			return
		}
	}
}

func (p *Publisher) handleAck(ctx context.Context, a *wire.Ack, inflight map[string]time.Time) {
	ids := append([]string{}, a.Stored...)
	for _, r := range a.Rejected {
		p.log.Warn("collector refused a measurement for good; dropping it", "message_id", r.MessageID, "reason", r.Reason)
		ids = append(ids, r.MessageID)
	}
	if _, err := p.opts.Outbox.Delete(ctx, ids); err != nil {
		p.log.Error("delete acknowledged measurements", "err", err)
		return // they stay; the next ack for them deletes them
	}
	for _, id := range ids {
		delete(inflight, id)
	}
	if p.opts.Acked != nil {
		p.opts.Acked(a)
	}
}

// TLSConfig builds the TLS settings for an ssl:// broker: caFile ("" for the
// system roots) and an optional client certificate.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %q: no PEM certificates in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
