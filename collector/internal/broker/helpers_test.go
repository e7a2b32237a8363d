package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not
// a measurement.
const waitLimit = 10 * time.Second

// Users of the default test password file.
var testUsers = map[string]string{
	"site-a": "pass-a",
	"site-b": "pass-b",
	"ops":    "pass-ops", // a reader
	"Site_C": "pass-c",   // neither a reader nor a valid site id
}

const testReader = "ops"

type call struct {
	site, kind, payload string
}

// recorder is a Handler that records its calls and fails on demand.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	fail   atomic.Bool
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(_ context.Context, site, kind string, payload []byte) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{site, kind, string(payload)})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if r.fail.Load() {
		return errors.New("database is locked")
	}
	return nil
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// waitCalls waits until the Handler has been called at least n times.
func (r *recorder) waitCalls(tb testing.TB, n int) []call {
	tb.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		if c := r.snapshot(); len(c) >= n {
			return c
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			tb.Fatalf("handler called %d times, want %d: %v", len(r.snapshot()), n, r.snapshot())
		}
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type env struct {
	b      *Broker
	rec    *recorder
	pwfile string
	logs   *syncBuffer
}

// writePasswords writes a password file with users, made by AddUser.
func writePasswords(tb testing.TB, users map[string]string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "passwd")
	for u, p := range users {
		if err := AddUser(path, u, p); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// newEnv starts a broker on 127.0.0.1 with the test users. Its log is
// checked at the end: no password may appear in it.
func newEnv(tb testing.TB, mod ...func(*Options)) *env {
	tb.Helper()
	e := &env{rec: newRecorder(), pwfile: writePasswords(tb, testUsers), logs: &syncBuffer{}}
	opts := Options{
		Listen:       "127.0.0.1:0",
		PasswordFile: e.pwfile,
		Readers:      []string{testReader},
		Handler:      e.rec.handle,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&opts)
	}
	b, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	e.b = b
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Error(err)
		}
		logs := e.logs.String()
		for _, p := range testUsers {
			if strings.Contains(logs, p) {
				tb.Errorf("password %q appears in the log:\n%s", p, logs)
			}
		}
		if tb.Failed() {
			tb.Logf("broker log:\n%s", logs)
		}
	})
	return e
}

// client is a paho client set up as hubmon's agent is: no automatic
// reconnect, clean session, MQTT 3.1.1.
type client struct {
	paho.Client
	lost chan error // receives once when the connection is lost
	conn atomic.Pointer[net.Conn]
	msgs chan paho.Message
}

// dial connects to addr. clientID "" means the user name.
func dial(tb testing.TB, addr net.Addr, user, pass, clientID string, mod ...func(*paho.ClientOptions)) (*client, error) {
	tb.Helper()
	if clientID == "" {
		clientID = user
	}
	c := &client{lost: make(chan error, 1), msgs: make(chan paho.Message, 100)}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + addr.String()).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(pass).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetOrderMatters(true). // messages reach msgs in the order they arrive
		SetConnectTimeout(waitLimit).
		SetWriteTimeout(waitLimit).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, waitLimit)
			if err == nil {
				c.conn.Store(&conn)
			}
			return conn, err
		})
	for _, m := range mod {
		m(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	waitToken(tb, tok)
	if err := tok.Error(); err != nil {
		return nil, err
	}
	tb.Cleanup(c.disconnect)
	return c, nil
}

// mustDial is dial that fails the test on error.
func mustDial(tb testing.TB, addr net.Addr, user, pass string, mod ...func(*paho.ClientOptions)) *client {
	tb.Helper()
	c, err := dial(tb, addr, user, pass, "", mod...)
	if err != nil {
		tb.Fatalf("connect as %q: %v", user, err)
	}
	return c
}

// disconnect sends DISCONNECT and closes the connection. The quiesce time is
// only an upper bound: paho returns once DISCONNECT is written.
func (c *client) disconnect() {
	if c.IsConnected() {
		c.Disconnect(uint(waitLimit.Milliseconds()))
	}
}

// killConn closes the client's TCP connection under it, as a power cut or a
// dead link would (without DISCONNECT).
func (c *client) killConn(tb testing.TB) {
	tb.Helper()
	p := c.conn.Load()
	if p == nil {
		tb.Fatal("no connection to kill")
	}
	(*p).Close()
}

func waitToken(tb testing.TB, tok paho.Token) {
	tb.Helper()
	select {
	case <-tok.Done():
	case <-time.After(waitLimit):
		tb.Fatalf("token not complete after %s", waitLimit)
	}
}

// waitLost waits for the client to notice that the broker closed the connection.
func (c *client) waitLost(tb testing.TB) {
	tb.Helper()
	select {
	case <-c.lost:
	case <-time.After(waitLimit):
		tb.Fatalf("connection still up after %s", waitLimit)
	}
}

// waitMessage waits for the next message delivered to the client.
func (c *client) waitMessage(tb testing.TB) paho.Message {
	tb.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitLimit):
		tb.Fatalf("no message after %s", waitLimit)
		return nil
	}
}

// waitClients polls until the broker has n connected clients.
func waitClients(tb testing.TB, b *Broker, n int) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for b.ConnectedClients() != n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d clients connected, want %d", b.ConnectedClients(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}
