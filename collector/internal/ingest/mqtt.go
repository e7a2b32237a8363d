package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

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
	// Handler is Ingester.Handle.
	Handler func(ctx context.Context, site, kind string, payload []byte) error
	// Fatal receives the error when messages cannot be committed even after
	// retries: the collector should exit (non-zero) and leave them in its
	// persistent session on the broker for the next start.
	Fatal func(error)
}

// Subscriber takes agents' messages from an external broker (Mosquitto in
// production) through a persistent session, and acknowledges each message to
// the broker only after Handler has committed it.
type Subscriber struct {
	opts       SubscriberOptions
	client     mqtt.Client
	ctx        context.Context
	cancel     context.CancelFunc
	subscribed atomic.Bool
	mu         sync.RWMutex // guards closing against wg.Add after Close started waiting
	closing    bool
	wg         sync.WaitGroup
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
	s := &Subscriber{opts: opts}
	s.ctx, s.cancel = context.WithCancel(context.Background())
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
		SetOrderMatters(false).                // handlers run concurrently; publishing from them cannot deadlock
		SetAutoAckDisabled(true).              // we ack after the commit
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
		return nil, fmt.Errorf("connect to %s: no answer within %s", opts.URL, opts.ConnectTimeout)
	}
	if err := t.Error(); err != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("connect to %s: %w", opts.URL, err)
	}
	return s, nil
}

func (s *Subscriber) onMessage(_ mqtt.Client, m mqtt.Message) {
	s.mu.RLock()
	if s.closing {
		s.mu.RUnlock()
		return // not acknowledged: the broker delivers it again next session
	}
	s.wg.Add(1)
	s.mu.RUnlock()
	defer s.wg.Done()
	site, kind, err := wire.ParseTopic(m.Topic())
	if err != nil {
		// not ours to store (the ACL should have stopped it): count and drop
		_ = s.opts.Handler(s.ctx, "", "other", nil)
		m.Ack()
		return
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = s.opts.Handler(s.ctx, site, kind, m.Payload())
		if err == nil {
			m.Ack()
			return
		}
		if s.ctx.Err() != nil || attempt == 5 {
			break
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	// not acknowledged: the broker keeps it in our session
	if s.ctx.Err() == nil && s.opts.Fatal != nil {
		s.opts.Fatal(fmt.Errorf("message on %s not committed after retries: %w", m.Topic(), err))
	}
}

// Publish sends an ack to an agent. It does not wait for the broker: a lost
// ack only makes the agent re-send.
func (s *Subscriber) Publish(topic string, payload []byte) error {
	if !s.client.IsConnectionOpen() {
		return fmt.Errorf("publish %s: not connected", topic)
	}
	s.client.Publish(topic, 1, false, payload)
	return nil
}

// Connected reports whether the broker connection is up and subscribed.
func (s *Subscriber) Connected() bool { return s.client.IsConnectionOpen() && s.subscribed.Load() }

// Close stops taking messages: handlers still running finish (their
// messages are committed and acknowledged); messages arriving now are left
// unacknowledged, for the next session. The subscriptions stay in the
// broker's persistent session, so it keeps queueing while we are away.
func (s *Subscriber) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.wg.Wait()
	s.cancel()
	s.client.Disconnect(500)
}
