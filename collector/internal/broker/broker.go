// Package broker is the MQTT broker that hubmon-collector embeds when no
// external broker is configured (mochi-mqtt v2), so that one command runs the
// whole system.
//
// It is locked down for hubmon rather than open like mochi's defaults:
//
//   - Users and their password hashes come from a Mosquitto password file
//     (mosquitto_passwd, or AddUser); empty passwords never match.
//   - A user whose name is a site id (wire.ValidSite) is that site's agent: it
//     must connect with client id == user name, may publish only to
//     hubmon/v1/<site>/measurement and .../status, may subscribe only to
//     hubmon/v1/<site>/ack, and may set its Last Will only on its own
//     measurement or status topic.
//   - Users listed in Options.Readers (operators with mosquitto_sub) may
//     subscribe to any filter under hubmon/v1/ and publish nothing.
//   - No client may take over the session of another user's client id.
//   - Everything else is refused.
//
// Every message on a measurement or status topic is passed to the Handler
// before the broker acknowledges it: for this broker, unlike Mosquitto, a
// PUBACK means the collector has the message.
//
// The package also writes Mosquitto's own auth files, for `hubmon-collector
// passwd` and `enrol`: the password file (shared by both brokers) and the ACL
// file (acl.go), which must grant a site what this broker grants it.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hubmon/hubmon/agent/wire"
)

// Handler stores one message before the broker acknowledges it. site and kind
// come from the topic (already checked against the authenticated identity).
// Return nil when the message is dealt with (stored, duplicate, or rejected as
// invalid: the caller counts those); return an error only when it could not be
// stored (e.g. a database failure): the broker then does not acknowledge the
// message and disconnects the client, which re-sends it after reconnecting.
//
// The Handler runs on the publishing client's connection goroutine: calls for
// different clients run concurrently, calls for one client one after another.
// It must not modify payload (mochi shares it with subscribers). ctx is
// cancelled when the broker closes; the Handler must return promptly then.
// It may call Broker.Publish (to send an ack), which does not block.
type Handler func(ctx context.Context, site, kind string, payload []byte) error

// Options configure Start.
type Options struct {
	// Listen is the TCP address, e.g. ":1883" or "127.0.0.1:0"; default ":1883".
	Listen string
	// PasswordFile is a Mosquitto password file (mosquitto_passwd): lines
	// "user:$7$..." (PBKDF2-SHA512) and "user:$6$..." (salted SHA512). It must
	// exist; it is re-read on Reload.
	PasswordFile string
	// Readers are user names (also in the password file) that may subscribe to
	// every filter under hubmon/v1/ and publish nothing. A reader name takes
	// precedence over a site id of the same spelling.
	Readers []string
	// MaxPacketBytes is the largest MQTT packet accepted, CONNECT included
	// (Capabilities.MaximumPacketSize); default DefaultMaxPacketBytes. A larger
	// packet closes the connection before its body is read.
	MaxPacketBytes int
	// Handler receives every message published on a measurement or status
	// topic, and every Last Will sent on one. Required.
	Handler Handler
	// Logger receives the broker's own events, and mochi's at Warn and above
	// (packets in mochi's messages are reduced to a summary). Default: discard.
	Logger *slog.Logger
}

// DefaultMaxPacketBytes leaves room for a wire.MaxPayloadBytes payload, its
// topic and MQTT headers.
const DefaultMaxPacketBytes = 70000

const (
	defaultListen = ":1883"
	// connectTimeout bounds the time from accepting a connection to its
	// CONNECT packet; mochi sets no deadline until then.
	connectTimeout = 10 * time.Second
	// maxConnections bounds open TCP connections, authenticated or not.
	maxConnections = 1024
	// maxSessionExpirySeconds bounds how long mochi keeps the session of a
	// client that connected without a clean session.
	maxSessionExpirySeconds = 24 * 3600
	// maxQueued bounds, per client, both the QoS 1/2 messages held in flight
	// and the packets waiting to be written.
	maxQueued = 1024
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker closed")

// Broker is a running embedded broker. Its methods are safe for concurrent use.
type Broker struct {
	server  *mqtt.Server
	ln      *listener
	handler Handler
	log     *slog.Logger
	readers map[string]bool
	path    string

	users    atomic.Pointer[passwords]
	reloadMu sync.Mutex

	ctx       context.Context
	cancel    context.CancelFunc
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Start loads the password file, listens and serves. The broker is accepting
// connections when Start returns.
func Start(opts Options) (*Broker, error) {
	if opts.Handler == nil {
		return nil, errors.New("start broker: no Handler")
	}
	if opts.PasswordFile == "" {
		return nil, errors.New("start broker: no password file")
	}
	switch {
	case opts.MaxPacketBytes == 0:
		opts.MaxPacketBytes = DefaultMaxPacketBytes
	case opts.MaxPacketBytes < 0:
		return nil, fmt.Errorf("start broker: max packet bytes must be positive (got %d)", opts.MaxPacketBytes)
	}
	if opts.Listen == "" {
		opts.Listen = defaultListen
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	readers := make(map[string]bool, len(opts.Readers))
	for i, r := range opts.Readers {
		if err := checkUserName(r); err != nil {
			return nil, fmt.Errorf("start broker: readers[%d]: %w", i, err)
		}
		readers[r] = true
	}
	users, err := loadPasswords(opts.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("start broker: listen on %q: %w", opts.Listen, err)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(opts.MaxPacketBytes)
	caps.MaximumClients = maxConnections
	caps.MaximumSessionExpiryInterval = maxSessionExpirySeconds
	caps.MaximumInflight = maxQueued
	caps.MaximumClientWritesPending = maxQueued
	// Topic aliases are checked by ACL before mochi resolves them; refuse them.
	caps.TopicAliasMaximum = 0

	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		handler: opts.Handler,
		log:     opts.Logger,
		readers: readers,
		path:    opts.PasswordFile,
		ctx:     ctx,
		cancel:  cancel,
	}
	b.ln = newListener(ln, opts.Logger, b.disconnectAll)
	b.users.Store(users)
	b.server = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(mochiLog{opts.Logger.Handler()}),
		SysTopicResendInterval: 10,
	})
	fail := func(err error) (*Broker, error) {
		cancel()
		_ = ln.Close()
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := b.server.AddHook(&hook{b: b}, nil); err != nil {
		return fail(err)
	}
	if err := b.server.AddListener(b.ln); err != nil {
		return fail(err)
	}
	if err := b.server.Serve(); err != nil {
		_ = b.server.Close()
		return fail(err)
	}
	return b, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.ln.ln.Addr() }

// Publish sends a message from the collector to the subscribers of topic,
// which must be a hubmon topic (wire.ParseTopic), e.g. an ack to
// hubmon/v1/<site>/ack. It is not retained, and is delivered at QoS 1 to
// subscribers connected now (at most their subscription's QoS). It does not
// wait for them: a subscriber whose queue is full misses it, and one that is
// offline gets it only if its session is persistent.
func (b *Broker) Publish(topic string, payload []byte) error {
	if b.closing.Load() {
		return ErrClosed
	}
	if _, _, err := wire.ParseTopic(topic); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if len(payload) > wire.MaxPayloadBytes {
		return fmt.Errorf("publish to %q: payload of %d bytes is larger than %d", topic, len(payload), wire.MaxPayloadBytes)
	}
	if err := b.server.Publish(topic, payload, false, 1); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

// Reload re-reads the password file (on SIGHUP). If the file cannot be read or
// has a broken line, the broker keeps the users it had and Reload returns the
// error. Otherwise connected clients whose user was removed, or whose password
// entry changed, are disconnected (they may reconnect if their password still
// verifies), as Mosquitto does.
func (b *Broker) Reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	next, err := loadPasswords(b.path)
	if err != nil {
		return fmt.Errorf("reload broker users: %w", err)
	}
	prev := b.users.Swap(next)
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		user := string(cl.Properties.Username)
		old, cur := prev.users[user], next.users[user]
		if old != nil && cur != nil && old.text == cur.text {
			continue
		}
		b.log.Info("mqtt client disconnected: its password entry was removed or changed",
			"user", clip(user), "client_id", clip(cl.ID), "remote", cl.Net.Remote)
		b.kick(cl, packets.ErrNotAuthorized)
	}
	return nil
}

// ConnectedClients is the number of authenticated network clients connected now.
func (b *Broker) ConnectedClients() int {
	return int(atomic.LoadInt64(&b.server.Info.ClientsConnected))
}

// Close stops accepting connections, cancels the Handler's context,
// disconnects every client and returns when their connection goroutines (and
// so every Handler call) have finished. Clients' Last Wills are not passed to
// the Handler during Close: the agents are not offline, the collector is.
// Close may be called more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closing.Store(true)
		b.cancel()
		if err := b.server.Close(); err != nil {
			b.closeErr = fmt.Errorf("close broker: %w", err)
		}
	})
	return b.closeErr
}

// disconnectAll disconnects every registered network client.
func (b *Broker) disconnectAll() {
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			b.kick(cl, packets.ErrServerShuttingDown)
		}
	}
}

// kick disconnects cl: MQTT 5 clients get a DISCONNECT with code, older
// clients (where a server-sent DISCONNECT does not exist) lose the connection.
func (b *Broker) kick(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = b.server.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}

// listener is a mochi listener over a net.Listener opened by Start, so that
// Start fails early and Addr is known. Unlike mochi's TCP listener it bounds
// the number of connections and the wait for CONNECT, and on Close it closes
// every connection it accepted, including those not yet registered with mochi
// (which mochi's Close would otherwise wait for).
type listener struct {
	ln  net.Listener
	log *slog.Logger
	// disconnectAll replaces mochi's CloseFn, which can deadlock: in 2.7.9
	// Clients.GetByListener takes the clients' read lock twice, and a client
	// leaving at that moment (a writer) blocks both.
	disconnectAll func()

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	full   bool // logged that maxConnections was reached
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*listener)(nil)

func newListener(ln net.Listener, log *slog.Logger, disconnectAll func()) *listener {
	return &listener{ln: ln, log: log, disconnectAll: disconnectAll, conns: map[net.Conn]struct{}{}}
}

func (l *listener) ID() string                { return "hubmon-tcp" }
func (l *listener) Address() string           { return l.ln.Addr().String() }
func (l *listener) Protocol() string          { return "tcp" }
func (l *listener) Init(_ *slog.Logger) error { return nil }

func (l *listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()

	backoff := 5 * time.Millisecond
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("mqtt accept failed", "error", err, "retry_seconds", backoff.Seconds())
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond

		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			_ = conn.Close()
			return
		case len(l.conns) >= maxConnections:
			if !l.full {
				l.log.Warn("mqtt connections refused: limit reached", "limit", maxConnections)
				l.full = true
			}
			l.mu.Unlock()
			_ = conn.Close()
			continue
		}
		l.full = false
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()

		go l.handle(conn, establish)
	}
}

func (l *listener) handle(conn net.Conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		_ = conn.Close()
	}()
	// mochi replaces this deadline with the keepalive one after CONNECT.
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	if err := establish(l.ID(), conn); err != nil {
		l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
}

func (l *listener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()

	_ = l.ln.Close()
	l.disconnectAll()
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
