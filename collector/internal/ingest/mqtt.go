package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"

	"github.com/hubmon/hubmon/agent/wire"
)

// SubscriberOptions configure the connection to an external broker.
type SubscriberOptions struct {
	URL            string
	ClientID       string
	Username       string
	Password       string
	TLS            *tls.Config
	ConnectTimeout time.Duration
	// Topics are the topic filters to subscribe to (QoS 1); nil for
	// DefaultTopics. config.MQTT.Topics checks them.
	Topics []string
	Logger *slog.Logger
	// Handler is Ingester.HandleAsync: it calls done exactly once, nil when
	// the message is dealt with (committed or refused for good), and may
	// block while the commit queue is full.
	Handler func(ctx context.Context, site, kind string, payload []byte, done func(error))
	// Fatal receives the error when messages cannot be committed even after
	// retries: the collector should exit (non-zero) and leave them in its
	// persistent session on the broker for the next start.
	Fatal func(error)
	// MaxQueuedBytes bounds the payload bytes taken from the broker and not
	// yet handed to Handler (default DefaultMaxQueuedBytes). When it is
	// reached the subscriber stops reading from the connection until the
	// commits catch up, and TCP holds the broker back.
	MaxQueuedBytes int
}

// DefaultMaxQueuedBytes is the default SubscriberOptions.MaxQueuedBytes:
// some 1,400 typical messages, more than a full transaction (MaxBatch)
// beside the one committing. More only costs memory: the commits, not the
// queue, set the pace (4 MiB held 25 MB of messages in flight at 20,000
// sites, and drained a backlog no faster: bench/README.md).
const DefaultMaxQueuedBytes = 1 << 20

// Subscriber takes agents' messages from an external broker (Mosquitto in
// production) through a persistent session, and acknowledges each message to
// the broker only after Handler has committed it.
//
// Messages are handed to Handler one at a time, from a queue of their own,
// and Handler does not wait for the commit (the batcher acknowledges each
// message when it is committed), so a message waiting for its commit costs
// its bytes, not a goroutine. Paho's own reader never waits for Handler: the
// broker's PUBACKs for the acks the collector publishes on the same
// connection must not queue behind unread messages. (With a goroutine per
// message, a backlog held 25,000 goroutines and 240 MB of stacks; with a
// reader that waited, acks stopped at 65,535 in flight: bench/README.md.)
// The broker's max_inflight_messages is meant to bound the queue, but
// Mosquitto 2.0.11 (Debian 12) sent 9,000 of 10,000 queued QoS 1 messages at
// once to a subscriber acknowledging each after 500 ms, with
// max_inflight_messages 1000, and a backlog of 100,000 messages took the
// collector to 190 MB. So the queue has its own bound (MaxQueuedBytes): when
// it is full, paho's reader waits for the feed to hand messages over, which
// takes one commit, milliseconds, not the minutes a backlog takes to drain;
// the PUBACKs for our acks are read as soon as it goes on.
type Subscriber struct {
	opts       SubscriberOptions
	client     mqtt.Client
	ctx        context.Context
	cancel     context.CancelFunc
	subscribed atomic.Bool
	mu         sync.RWMutex // guards closing against wg.Add after Close started waiting
	closing    bool
	wg         sync.WaitGroup // messages taken and not yet acknowledged (or given up)

	qmu    sync.Mutex
	queue  []mqtt.Message // taken from paho, not yet handed to Handler
	queued int            // payload bytes in queue and in the feed's hands
	room   *sync.Cond     // on qmu: queued went down
	wake   chan struct{}  // a message was queued

	pubMu        sync.Mutex
	acksInFlight chan mqtt.Token // acks awaiting the broker's PUBACK, in order (reapAcks)

	// leaving: Close is disconnecting, so the connection is closed
	// gracefully (bufferedConn.Close)
	leaving atomic.Bool
	conn    atomic.Pointer[bufferedConn] // the latest connection
}

// DefaultTopics are every site's measurement and status topics.
var DefaultTopics = []string{
	wire.TopicRoot + "/+/" + wire.TopicMeasurement,
	wire.TopicRoot + "/+/" + wire.TopicStatus,
}

// Subscribe connects to the broker and starts taking messages. It returns
// once the first connection is up, or with the reason it could not connect.
func Subscribe(opts SubscriberOptions) (*Subscriber, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Topics == nil {
		opts.Topics = DefaultTopics
	}
	subscriptions := make(map[string]byte, len(opts.Topics))
	for _, t := range opts.Topics {
		subscriptions[t] = 1
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	s := &Subscriber{opts: opts, wake: make(chan struct{}, 1), acksInFlight: make(chan mqtt.Token, MaxAcksInFlight-1)}
	s.room = sync.NewCond(&s.qmu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.feed()
	go s.reapAcks()
	log := opts.Logger
	co := mqtt.NewClientOptions().
		AddBroker(opts.URL).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(false). // the broker queues for us while we are down
		SetAutoReconnect(true).
		SetConnectRetry(false). // the first attempt reports the real reason (a wrong password, say)
		SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).    // onMessage only queues the message: no goroutine per message
		SetAutoAckDisabled(true). // we ack after the commit
		SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
			c, err := dialBuffered(u, o)
			if err != nil {
				return nil, err
			}
			c.leaving = &s.leaving
			s.conn.Store(c)
			return c, nil
		}).
		SetDefaultPublishHandler(s.onMessage). // before Connect: queued messages arrive before Subscribe
		SetOnConnectHandler(func(c mqtt.Client) {
			// subscribe on every connect: the session may be new
			s.subscribed.Store(false)
			t := c.SubscribeMultiple(subscriptions, s.onMessage)
			go func() { // not in the handler: paho's callbacks must not block on tokens
				if !t.WaitTimeout(opts.ConnectTimeout) || t.Error() != nil {
					log.Error("subscribe failed", "broker", opts.URL, "err", t.Error())
					return
				}
				// paho completes a refused subscription (0x80) with no error
				for topic, code := range t.(*mqtt.SubscribeToken).Result() {
					if code >= 0x80 {
						err := fmt.Errorf("the broker refused the subscription to %s (code %#x): check its ACL lets %q read it (deploy/mosquitto/hubmon.acl)", topic, code, opts.Username)
						if opts.Fatal != nil {
							opts.Fatal(err)
						}
						log.Error("subscription refused", "err", err)
						return
					}
				}
				s.subscribed.Store(true)
				log.Info("connected to broker and subscribed", "broker", opts.URL)
			}()
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			log.Warn("broker connection lost; reconnecting", "err", err)
		})
	if opts.TLS != nil {
		co.SetTLSConfig(opts.TLS)
	}
	s.client = mqtt.NewClient(co)
	t := s.client.Connect()
	if !t.WaitTimeout(opts.ConnectTimeout + time.Second) {
		s.client.Disconnect(0)
		s.cancel()
		return nil, fmt.Errorf("connect to %s: no answer within %s", opts.URL, opts.ConnectTimeout)
	}
	if err := t.Error(); err != nil {
		s.client.Disconnect(0)
		s.cancel()
		return nil, fmt.Errorf("connect to %s: %w", opts.URL, err)
	}
	return s, nil
}

// onMessage runs on paho's router goroutine: it queues the message for feed
// and returns, so that paho keeps reading the connection; while the queue is
// full (MaxQueuedBytes) it waits for room first.
func (s *Subscriber) onMessage(_ mqtt.Client, m mqtt.Message) {
	s.mu.RLock()
	if s.closing {
		s.mu.RUnlock()
		return // not acknowledged: the broker delivers it again next session
	}
	s.wg.Add(1)
	s.mu.RUnlock()
	s.qmu.Lock()
	// the feed runs until Close has waited for every message taken, so
	// there is always room in the end
	for s.queued > 0 && s.queued+len(m.Payload()) > s.opts.MaxQueuedBytes {
		s.room.Wait()
	}
	s.queue = append(s.queue, m)
	s.queued += len(m.Payload())
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// feed hands the queued messages to Handler, in order, one at a time, until
// Close (which waits for every queued message first).
func (s *Subscriber) feed() {
	for {
		s.qmu.Lock()
		batch := s.queue
		s.queue = nil
		s.qmu.Unlock()
		for i, m := range batch {
			batch[i] = nil // let it go once handled
			site, kind, err := wire.ParseTopic(m.Topic())
			if err != nil {
				// not ours to store (the ACL should have stopped it): count and drop
				s.opts.Handler(s.ctx, "", "other", nil, func(error) {})
				m.Ack()
				s.wg.Done()
			} else {
				s.handle(site, kind, m, 1) // waits while the commit queue is full
			}
			s.qmu.Lock()
			s.queued -= len(m.Payload())
			s.qmu.Unlock()
			s.room.Signal() // one reader: paho's router
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

// handle hands m to Handler; done acknowledges it, or retries it (with
// back-off, in a goroutine of its own) when it could not be committed.
func (s *Subscriber) handle(site, kind string, m mqtt.Message, attempt int) {
	s.opts.Handler(s.ctx, site, kind, m.Payload(), func(err error) {
		if err == nil {
			m.Ack()
			s.wg.Done()
			return
		}
		go s.retry(site, kind, m, attempt, err) // rare: the store failed
	})
}

func (s *Subscriber) retry(site, kind string, m mqtt.Message, attempt int, err error) {
	if s.ctx.Err() == nil && attempt < 5 {
		select {
		case <-s.ctx.Done():
		case <-time.After(100 * time.Millisecond << (attempt - 1)):
		}
		if s.ctx.Err() == nil {
			s.handle(site, kind, m, attempt+1)
			return
		}
	}
	// not acknowledged: the broker keeps it in our session
	if s.ctx.Err() == nil && s.opts.Fatal != nil {
		s.opts.Fatal(fmt.Errorf("message on %s not committed after retries: %w", m.Topic(), err))
	}
	s.wg.Done()
}

// dialBuffered opens the connection to the broker as paho would for the
// schemes the configuration allows (tcp, ssl; config.MQTT canonicalises
// them), with a read buffer: paho reads each packet's header a byte at a
// time, and without one a message cost up to four read system calls, a
// quarter of the collector's CPU while draining a backlog.
func dialBuffered(u *url.URL, o mqtt.ClientOptions) (*bufferedConn, error) {
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	conn, err := proxy.FromEnvironmentUsing(d).Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	raw := conn
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if cfg.ServerName == "" { // as tls.Dial does
			cfg.ServerName = u.Hostname()
		}
		c := tls.Client(conn, cfg)
		if o.ConnectTimeout > 0 {
			c.SetDeadline(time.Now().Add(o.ConnectTimeout))
		}
		if err := c.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		c.SetDeadline(time.Time{})
		conn = c
	default:
		conn.Close()
		return nil, fmt.Errorf("unknown scheme %q (tcp or ssl)", u.Scheme)
	}
	return newBufferedConn(conn, raw, o.WriteTimeout), nil
}

// newBufferedConn wraps conn, whose socket is raw (conn itself without
// TLS), and starts its sender.
func newBufferedConn(conn, raw net.Conn, writeTimeout time.Duration) *bufferedConn {
	c := &bufferedConn{Conn: conn, raw: raw, r: bufio.NewReaderSize(conn, 64<<10), writeTimeout: writeTimeout,
		ended: make(chan struct{}), closed: make(chan struct{}), sent: make(chan struct{})}
	c.wcond.L = &c.wmu
	go c.send()
	return c
}

// bufferedConn is a net.Conn whose reads go through a buffer, whose writes
// are gathered and sent by a goroutine of its own (see Write), and whose
// Close, when the subscriber is leaving, lets the broker read everything
// first (see Close).
type bufferedConn struct {
	net.Conn
	// raw is the socket under Conn (Conn itself without TLS): closed to end
	// the connection at once, where closing a TLS connection that has not
	// failed first sends close_notify, waiting up to 5 s on a broker that
	// reads nothing
	raw     net.Conn
	r       *bufio.Reader
	leaving *atomic.Bool  // Subscriber.leaving; nil: never
	ended   chan struct{} // closed when a read fails: the broker closed its side
	endOnce sync.Once
	closed  chan struct{} // closed when Close has closed the connection
	closeMu sync.Mutex    // paho may close a connection twice, at once

	writeTimeout time.Duration // bounds each send; 0: none
	wmu          sync.Mutex
	wcond        sync.Cond     // on wmu: bytes to send, or room for more
	unsent       []byte        // written by paho, not yet sent
	werr         error         // why a send failed: every later Write returns it
	wclosing     bool          // Close has begun: no more writes, send what is left
	sent         chan struct{} // closed when the sender has ended
}

// maxUnsent bounds the bytes Write holds before it waits for the sender (a
// Write larger than that waits until everything before it is sent).
const maxUnsent = 256 << 10

// Write hands p to the connection's sender and returns; it waits only while
// maxUnsent bytes are not yet sent. Paho writes each packet on its own, and
// the collector's PUBACKs come a transaction's worth at once (one per
// committed message, up to 1,024): sent as written, each was a system call
// of its own and a segment the broker woke up for. The sender sends
// whatever has gathered while its previous send was in the kernel, in one
// system call (bench/README.md). A send that fails (or takes longer than the
// write timeout) closes the connection, so paho's reader fails too and paho
// reconnects; what was not sent was not acknowledged, and the broker
// delivers it again. Bytes keep their order, as one stream.
func (c *bufferedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.werr == nil && !c.wclosing && len(c.unsent) > 0 && len(c.unsent)+len(p) > maxUnsent {
		c.wcond.Wait()
	}
	switch {
	case c.werr != nil:
		return 0, c.werr
	case c.wclosing:
		return 0, net.ErrClosed
	}
	c.unsent = append(c.unsent, p...)
	c.wcond.Broadcast()
	return len(p), nil
}

// SetWriteDeadline does nothing: writes return before they are sent, and the
// sender gives each send its own deadline (writeTimeout).
func (c *bufferedConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only (see SetWriteDeadline).
func (c *bufferedConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// send sends what Write gathers until Close, or until a send fails.
func (c *bufferedConn) send() {
	defer close(c.sent)
	var out []byte
	for {
		c.wmu.Lock()
		for len(c.unsent) == 0 && !c.wclosing {
			c.wcond.Wait()
		}
		if len(c.unsent) == 0 { // closing, and everything is sent
			c.wmu.Unlock()
			return
		}
		if cap(out) > 4*maxUnsent {
			out = nil // a large write's buffer is not kept
		}
		out, c.unsent = c.unsent, out[:0]
		c.wcond.Broadcast() // room for Write
		c.wmu.Unlock()
		var deadline time.Time
		if c.writeTimeout > 0 {
			deadline = time.Now().Add(c.writeTimeout)
		}
		c.Conn.SetWriteDeadline(deadline)
		if _, err := c.Conn.Write(out); err != nil {
			c.wmu.Lock()
			c.werr = err
			c.unsent = nil
			c.wcond.Broadcast()
			c.wmu.Unlock()
			c.raw.Close() // paho's reader fails now, not at the next keep-alive
			return
		}
		// no deadline between sends: a write of TLS's own (the answer to
		// a key update, made by Read) must not find one long expired
		c.Conn.SetWriteDeadline(time.Time{})
	}
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		c.endOnce.Do(func() { close(c.ended) })
	}
	return n, err
}

// lingerTimeout bounds how long a leaving Close takes: the last send, our
// side's close (TLS's close_notify) and the wait for the broker's.
// (Subscriber.Close waits a second more.)
var lingerTimeout = 5 * time.Second // a variable for tests

// Close closes the connection. When the subscriber is leaving (paho closes
// the connection right after writing DISCONNECT), it first sends what paho
// wrote, closes only our side for writing and waits until the broker has
// closed its own, all within lingerTimeout: the broker reads a connection
// in order, so by then it has handled every PUBACK written before the
// DISCONNECT. Closed at once, a
// broker slow to read (Mosquitto on a busy machine) lost those PUBACKs when
// the next session with our client id took the old one over, or when our
// close reset the connection with its messages unread, and delivered up to
// 1,338 committed messages again (stored once, but counted as duplicates:
// TestSubscriberOneAtATime failed 7 times in 40 under CPU load). Paho's
// reader goes on reading meanwhile; what it reads now is not acknowledged
// (Subscriber.onMessage), so the broker keeps it for the next session.
// Otherwise (the connection lost) it closes the socket at once.
func (c *bufferedConn) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	select {
	case <-c.closed:
		return nil
	default:
	}
	defer close(c.closed)
	c.wmu.Lock()
	c.wclosing = true // the sender sends what is left, then ends
	c.wcond.Broadcast()
	c.wmu.Unlock()
	if c.leaving != nil && c.leaving.Load() {
		// all of it within lingerTimeout: the sender's last send and
		// TLS's CloseWrite (close_notify, which gives itself 5 s) block
		// on a broker that reads nothing, and closing the socket under
		// them when the time is up ends both
		graceful := make(chan struct{})
		go func() {
			defer close(graceful)
			select {
			case <-c.sent:
			case <-c.closed:
				return
			}
			if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				select {
				case <-c.ended:
				case <-c.closed:
				}
			}
		}()
		t := time.NewTimer(lingerTimeout)
		select {
		case <-graceful:
		case <-t.C:
			c.raw.Close()
		}
		t.Stop()
	} else {
		c.raw.Close() // the connection is lost or given up: no close_notify
	}
	err := c.Conn.Close() // TLS's closes raw too
	if errors.Is(err, net.ErrClosed) {
		err = nil // the socket closed under it above, as intended
	}
	return err
}

// MaxAcksInFlight bounds the acks published and not yet acknowledged by the
// broker (paho has 65,535 packet ids for them and for nothing else).
const MaxAcksInFlight = 4096

// Publish sends an ack to an agent. It does not wait for the broker: a lost
// ack only makes the agent re-send. It reports what paho refuses at once
// (no free packet id, say), so that the acks metric counts it, and returns
// ErrAckBusy, publishing nothing, while MaxAcksInFlight acks await the
// broker's PUBACK: while the subscriber's queue is full (MaxQueuedBytes) paho
// reads nothing, PUBACKs included, and acks published then would use up
// paho's packet ids and be lost (a 20,000-site warm-up lost 17 that way).
func (s *Subscriber) Publish(topic string, payload []byte) error {
	if !s.client.IsConnectionOpen() {
		return fmt.Errorf("publish %s: not connected", topic)
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if len(s.acksInFlight) == cap(s.acksInFlight) {
		return ErrAckBusy
	}
	t := s.client.Publish(topic, 1, false, payload)
	s.acksInFlight <- t // never blocks: only Publish sends, under pubMu
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
	default:
	}
	return nil
}

// reapAcks frees an ack's place in acksInFlight once the broker has
// acknowledged it. The broker answers one connection's publishes in order,
// so it waits for them in order, each for at most two minutes (a token paho
// never completes must not hold its place for good). One goroutine and one
// timer for all of them: a goroutine and a timer for each ack cost
// measurably more CPU per message at 1,000 sites (bench/load).
func (s *Subscriber) reapAcks() {
	timer := time.NewTimer(time.Hour)
	for {
		select {
		case t := <-s.acksInFlight:
			timer.Reset(2 * time.Minute)
			select {
			case <-t.Done():
			case <-timer.C:
			case <-s.ctx.Done():
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// Connected reports whether the broker connection is up and subscribed.
func (s *Subscriber) Connected() bool { return s.client.IsConnectionOpen() && s.subscribed.Load() }

// Close stops taking messages: those taken are handed over, committed and
// acknowledged first; messages arriving now are left unacknowledged, for the
// next session. The subscriptions stay in the
// broker's persistent session, so it keeps queueing while we are away.
func (s *Subscriber) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.wg.Wait()
	s.cancel()
	s.leaving.Store(true)
	s.client.Disconnect(500)
	// Disconnect returns after 500 ms at most; the connection's graceful
	// close may take longer (bufferedConn.Close), and a session started
	// before it ends would take the old one over with our PUBACKs unread
	if c := s.conn.Load(); c != nil {
		t := time.NewTimer(lingerTimeout + time.Second)
		select {
		case <-c.closed:
		case <-t.C:
		}
		t.Stop()
	}
}
