package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// startMosquitto runs the real broker, anonymous, with the shipped in-flight
// window, and returns its URL.
func startMosquitto(t *testing.T) string {
	t.Helper()
	return startMosquittoConf(t, "", "tcp")
}

// startMosquittoConf runs the broker with more listener settings (extra)
// and returns its URL with scheme.
func startMosquittoConf(t *testing.T, extra, scheme string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Fatal("mosquitto not found: install Debian's mosquitto package (.ci/run does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("listener %s 127.0.0.1\n%sallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 200000\n", port, extra)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	waitUntil(t, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return scheme + "://" + addr
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectAgents connects a client that publishes as the agents do. The
// caller disconnects it.
func connectAgents(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-agents").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	return c
}

func publishN(t *testing.T, url string, n int) {
	t.Helper()
	c := connectAgents(t, url)
	// connected until the test ends: the broker has another client to serve
	// while the subscriber closes (TestSubscriberOneAtATime failed that way
	// before bufferedConn.Close waited for the broker)
	t.Cleanup(func() { c.Disconnect(250) })
	toks := make([]mqtt.Token, n)
	for i := range toks {
		toks[i] = c.Publish(fmt.Sprintf("hubmon/v1/site-%d/measurement", i%50), 1, false, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

func subscribe(t *testing.T, url string, handler func(ctx context.Context, site, kind string, payload []byte, done func(error)), fatal func(error)) *Subscriber {
	t.Helper()
	return subscribeWith(t, SubscriberOptions{URL: url, Handler: handler, Fatal: fatal})
}

// subscribeWith subscribes with o, as "collector" to every site's
// measurements unless o says otherwise, and waits for the subscription.
func subscribeWith(t *testing.T, o SubscriberOptions) *Subscriber {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID = "collector"
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.Topics == nil {
		o.Topics = []string{"hubmon/v1/+/measurement"}
	}
	s, err := Subscribe(o)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the subscription", s.Connected)
	return s
}

// The subscriber hands over one message at a time and no more while the
// handler blocks (a full commit queue); each message is acknowledged to the
// broker when its done is called, even out of order and from another
// goroutine.
func TestSubscriberOneAtATime(t *testing.T) {
	url := startMosquitto(t)
	const total, held = 2000, 50
	var (
		mu             sync.Mutex
		calls, active  int
		maxActive      int
		waiting        []func(error)
		queueFull      = make(chan struct{})
		blockedHandler = held + 1
	)
	s := subscribe(t, url, func(_ context.Context, _, _ string, _ []byte, done func(error)) {
		mu.Lock()
		calls++
		n := calls
		active++
		maxActive = max(maxActive, active)
		if n <= held {
			waiting = append(waiting, done) // committed later, by "the batcher"
			active--
			mu.Unlock()
			return
		}
		mu.Unlock()
		if n == blockedHandler {
			<-queueFull
		}
		mu.Lock()
		active--
		mu.Unlock()
		done(nil)
	}, nil)
	publishN(t, url, total)

	waitUntil(t, "the handler to block", func() bool { mu.Lock(); defer mu.Unlock(); return calls == blockedHandler })
	time.Sleep(300 * time.Millisecond) // the broker has more; the handler must not get it
	mu.Lock()
	if calls != blockedHandler || maxActive != 1 {
		t.Errorf("while the handler blocked: %d messages taken, %d handlers at once; want %d and 1", calls, maxActive, blockedHandler)
	}
	pending := waiting
	mu.Unlock()

	close(queueFull)
	go func() {
		for i := len(pending) - 1; i >= 0; i-- { // out of order
			pending[i](nil)
		}
	}()
	waitUntil(t, "every message", func() bool { mu.Lock(); defer mu.Unlock(); return calls == total })
	s.Close()

	// all acknowledged: the session has nothing to deliver again
	var again sync.Map
	s2 := subscribe(t, url, func(_ context.Context, _, _ string, p []byte, done func(error)) {
		again.Store(string(p), true)
		done(nil)
	}, nil)
	time.Sleep(500 * time.Millisecond)
	s2.Close()
	n := 0
	again.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d messages delivered again after every one was done: not acknowledged", n)
	}
}

// A message that cannot be committed is tried again with back-off, then
// reported as fatal, and never acknowledged: the next session gets it again.
func TestSubscriberRetriesThenFatal(t *testing.T) {
	url := startMosquitto(t)
	var mu sync.Mutex
	tries := 0
	fatal := make(chan error, 1)
	s := subscribe(t, url, func(_ context.Context, _, _ string, _ []byte, done func(error)) {
		mu.Lock()
		tries++
		mu.Unlock()
		done(errors.New("store: disk I/O error"))
	}, func(err error) { fatal <- err })
	publishN(t, url, 1)
	select {
	case err := <-fatal:
		t.Logf("fatal: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fatal error after the store failed")
	}
	s.Close()
	mu.Lock()
	if tries != 5 {
		t.Errorf("tried %d times, want 5", tries)
	}
	mu.Unlock()

	got := make(chan struct{}, 1)
	s2 := subscribe(t, url, func(_ context.Context, _, _ string, _ []byte, done func(error)) {
		done(nil)
		select {
		case got <- struct{}{}:
		default:
		}
	}, nil)
	defer s2.Close()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the message that failed was not delivered again: it was acknowledged")
	}
}

// While the handler blocks with a backlog behind it, what the collector
// publishes on the same connection (acks to agents) still completes: paho
// keeps reading, so the broker's PUBACKs do not queue behind unread
// messages. (A reader that waited for the handler starved them: at 65,535
// acks in flight paho had no packet id left and acks were lost.)
func TestSubscriberAcksFlowWhileHandlerBlocks(t *testing.T) {
	url := startMosquitto(t)
	unblock := make(chan struct{})
	var once sync.Once
	s := subscribe(t, url, func(_ context.Context, _, _ string, _ []byte, done func(error)) {
		once.Do(func() { <-unblock })
		done(nil)
	}, nil)
	defer s.Close()
	defer close(unblock)
	publishN(t, url, 3000)
	var toks []mqtt.Token
	for i := range 200 {
		toks = append(toks, s.client.Publish(fmt.Sprintf("hubmon/v1/site-%d/ack", i), 1, false, []byte(`{"version":1}`)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("ack %d: no PUBACK from the broker within 5 s while the handler blocked (%v)", i, tok.Error())
		}
	}
}

// The messages taken from the broker and not yet handed over stay within
// MaxQueuedBytes while the handler blocks, whatever the broker has queued
// (Mosquitto 2.0.11 sends far beyond max_inflight_messages); then every one
// is handed over and acknowledged.
func TestSubscriberQueueBounded(t *testing.T) {
	url := startMosquitto(t)
	const total, size, limit = 400, 500, 4000
	unblock := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	handled := 0
	s := subscribeWith(t, SubscriberOptions{URL: url, MaxQueuedBytes: limit,
		Handler: func(_ context.Context, _, _ string, _ []byte, done func(error)) {
			once.Do(func() { <-unblock })
			mu.Lock()
			handled++
			mu.Unlock()
			done(nil)
		}})
	c := connectAgents(t, url)
	defer c.Disconnect(250)
	payload := bytes.Repeat([]byte("x"), size)
	for i := range total {
		c.Publish(fmt.Sprintf("hubmon/v1/site-%d/measurement", i%50), 1, false, payload)
	}
	// the broker sends while the handler blocks; the queue stops at the bound
	waitUntil(t, "the queue to fill", func() bool { s.qmu.Lock(); defer s.qmu.Unlock(); return s.queued+size > limit })
	time.Sleep(500 * time.Millisecond)
	s.qmu.Lock()
	queued, n := s.queued, len(s.queue)
	s.qmu.Unlock()
	if queued > limit || n > limit/size {
		t.Errorf("while the handler blocked: %d messages (%d bytes) queued, bound %d bytes", n, queued, limit)
	}
	close(unblock)
	waitUntil(t, "every message", func() bool { mu.Lock(); defer mu.Unlock(); return handled == total })
	s.Close()
}

// The subscriber dials the broker itself (for its read buffer): over TLS it
// checks the broker's certificate against the configured CA and the URL's
// host, as paho's own dialer does, and takes messages through it.
func TestSubscriberTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test council CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: leafDER}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	url := startMosquittoConf(t, fmt.Sprintf("cafile %[1]s/ca.pem\ncertfile %[1]s/cert.pem\nkeyfile %[1]s/key.pem\n", dir), "ssl")
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	// a CA that did not sign the broker's certificate: refused
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &otherKey.PublicKey, otherKey)
	otherCA, _ := x509.ParseCertificate(otherDER)
	other := x509.NewCertPool()
	other.AddCert(otherCA)
	if _, err := Subscribe(SubscriberOptions{URL: url, ClientID: "collector-wrong-ca", ConnectTimeout: 5 * time.Second,
		TLS: &tls.Config{RootCAs: other}, Handler: func(context.Context, string, string, []byte, func(error)) {}}); err == nil {
		t.Fatal("connected with a CA that did not sign the broker's certificate")
	} else {
		t.Logf("foreign CA: %v", err)
	}

	got := make(chan string, 10)
	s, err := Subscribe(SubscriberOptions{URL: url, ClientID: "collector", ConnectTimeout: 5 * time.Second,
		TLS: &tls.Config{RootCAs: pool}, Topics: []string{"hubmon/v1/+/measurement"},
		Handler: func(_ context.Context, site, _ string, _ []byte, done func(error)) { got <- site; done(nil) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitUntil(t, "the subscription", s.Connected)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-agent").SetTLSConfig(&tls.Config{RootCAs: pool}))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("agent connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	c.Publish("hubmon/v1/leeds-1/measurement", 1, false, []byte(`{}`))
	select {
	case site := <-got:
		if site != "leeds-1" {
			t.Errorf("site %q", site)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message through the TLS connection")
	}
}

// While the subscriber's queue is full paho reads nothing, the broker's
// PUBACKs for our acks included: Publish stops at MaxAcksInFlight with
// ErrAckBusy (the acker keeps those acks) instead of using up paho's packet
// ids, and takes acks again once the PUBACKs are read.
func TestSubscriberAcksInFlightBounded(t *testing.T) {
	url := startMosquitto(t)
	unblock := make(chan struct{})
	var once sync.Once
	s := subscribeWith(t, SubscriberOptions{URL: url, MaxQueuedBytes: 2000,
		Handler: func(_ context.Context, _, _ string, _ []byte, done func(error)) {
			once.Do(func() { <-unblock })
			done(nil)
		}})
	defer s.Close()
	c := connectAgents(t, url)
	defer c.Disconnect(250)
	for i := range 200 {
		c.Publish(fmt.Sprintf("hubmon/v1/site-%d/measurement", i), 1, false, bytes.Repeat([]byte("x"), 500))
	}
	waitUntil(t, "the queue to fill", func() bool { s.qmu.Lock(); defer s.qmu.Unlock(); return s.queued+500 > 2000 })
	time.Sleep(200 * time.Millisecond) // paho's reader is now waiting for room
	published, busy := 0, 0
	for i := range MaxAcksInFlight + 1000 {
		switch err := s.Publish(fmt.Sprintf("hubmon/v1/site-%d/ack", i), []byte(`{"version":1}`)); {
		case err == nil:
			published++
		case errors.Is(err, ErrAckBusy):
			busy++
		default:
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	t.Logf("while paho's reader waited: %d acks published, %d refused as busy", published, busy)
	if busy == 0 || published > MaxAcksInFlight+500 {
		t.Errorf("%d acks published and %d refused while no PUBACK could be read; want at most about %d in flight", published, busy, MaxAcksInFlight)
	}
	close(unblock)
	waitUntil(t, "acks to be taken again", func() bool {
		return s.Publish("hubmon/v1/site-0/ack", []byte(`{"version":1}`)) == nil
	})
}

// slowProxy forwards TCP connections to addr, holding what clients send for
// delay before the broker gets it (in order): a broker slow to read. When a
// client closes its side, the proxy closes the broker's side after
// forwarding the rest; when the broker closes, it closes the client's.
func slowProxy(t *testing.T, addr string, delay time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			type chunk struct {
				at time.Time
				p  []byte
			}
			up := make(chan chunk, 1024)
			go func() { // client -> broker, delayed
				defer close(up)
				for {
					p := make([]byte, 32<<10)
					n, err := c.Read(p)
					if n > 0 {
						up <- chunk{time.Now(), p[:n]}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				for ch := range up {
					time.Sleep(time.Until(ch.at.Add(delay)))
					if _, err := b.Write(ch.p); err != nil {
						break
					}
				}
				b.(*net.TCPConn).CloseWrite()
			}()
			go func() { // broker -> client
				buf := make([]byte, 32<<10)
				for {
					n, err := b.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				b.Close()
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

// Close returns only once the broker has read the PUBACKs it wrote: a
// collector restarted at once, whose new session takes the old one over,
// gets no committed message again, even from a broker slow to read its
// connection. Without the wait, all 200 came again.
func TestSubscriberCloseWaitsForBroker(t *testing.T) {
	url := startMosquitto(t)
	const total = 200
	var handled atomic.Int64
	s := subscribeWith(t, SubscriberOptions{URL: slowProxy(t, strings.TrimPrefix(url, "tcp://"), 400*time.Millisecond),
		Handler: func(_ context.Context, _, _ string, _ []byte, done func(error)) {
			handled.Add(1)
			done(nil)
		}})
	publishN(t, url, total)
	waitUntil(t, "every message", func() bool { return handled.Load() == total })
	start := time.Now()
	s.Close()
	t.Logf("Close took %s", time.Since(start))

	var again atomic.Int64
	s2 := subscribe(t, url, func(_ context.Context, _, _ string, _ []byte, done func(error)) {
		again.Add(1)
		done(nil)
	}, nil)
	time.Sleep(500 * time.Millisecond)
	s2.Close()
	if n := again.Load(); n != 0 {
		t.Errorf("%d of %d committed messages delivered again to the next session: the broker had not read their PUBACKs", n, total)
	}
}

// stalledTLSBroker is a TLS server on 127.0.0.1 that shakes hands and then
// reads nothing, and a client config that trusts it.
func stalledTLSBroker(t *testing.T) (addr string, cfg *tls.Config) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker"}},
		&key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.(*tls.Conn).Handshake()
		time.Sleep(20 * time.Second)
	}()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return l.Addr().String(), &tls.Config{RootCAs: pool}
}

// A graceful close over TLS while a send is stuck (a broker that reads
// nothing) ends within lingerTimeout: the send, and TLS's close_notify,
// which gives itself 5 s, are cut short by closing the socket under them.
func TestCloseTLSWithWriteStalled(t *testing.T) {
	defer func(d time.Duration) { lingerTimeout = d }(lingerTimeout)
	lingerTimeout = 500 * time.Millisecond
	addr, cfg := stalledTLSBroker(t)
	u, _ := neturl.Parse("ssl://" + addr)
	c, err := dialBuffered(u, mqtt.ClientOptions{TLSConfig: cfg, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var leaving atomic.Bool
	leaving.Store(true)
	c.leaving = &leaving
	c.Write(make([]byte, 64<<20)) // fills the socket's buffers, then the send waits
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Logf("Close took %s", time.Since(start))
	case <-time.After(lingerTimeout + 3*time.Second):
		t.Fatal("Close still waiting for the stuck send")
	}
}

// A send that times out over TLS ends the connection at once, so that
// paho's reader fails and paho reconnects (left open, the reader would wait
// for the broker, or for the next keep-alive to fail).
func TestSendTimeoutTLSEndsReader(t *testing.T) {
	addr, cfg := stalledTLSBroker(t)
	u, _ := neturl.Parse("ssl://" + addr)
	c, err := dialBuffered(u, mqtt.ClientOptions{TLSConfig: cfg, ConnectTimeout: 5 * time.Second, WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	start := time.Now()
	c.Write(make([]byte, 64<<20))
	select {
	case err := <-read:
		t.Logf("reader ended %s after the write: %v", time.Since(start), err)
	case <-time.After(3 * time.Second): // the send times out at 0.2 s
		t.Fatal("the reader still waits after the send timed out")
	}
}

// slowConn counts the writes that reach the connection, each taking a
// millisecond, and fails them from failAfter on (0: never).
type slowConn struct {
	net.Conn
	writes    atomic.Int64
	failAfter int64
}

var errSendFailed = errors.New("send failed")

func (c *slowConn) Write(p []byte) (int, error) {
	n := c.writes.Add(1)
	if c.failAfter > 0 && n >= c.failAfter {
		return 0, errSendFailed
	}
	time.Sleep(time.Millisecond)
	return c.Conn.Write(p)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Packets written one at a time (as paho writes PUBACKs) reach the socket
// in a few large writes, in order, and a leaving Close sends them all
// before it closes.
func TestBufferedConnGathersWrites(t *testing.T) {
	client, server := tcpPair(t)
	slow := &slowConn{Conn: client}
	c := newBufferedConn(slow, client, 5*time.Second)
	var leaving atomic.Bool
	leaving.Store(true)
	c.leaving = &leaving
	const packets = 2000
	var want bytes.Buffer
	for i := range packets {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	got := make(chan []byte)
	go func() {
		b, _ := readAll(server)
		got <- b
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the broker read %d bytes, want the %d written, in order", len(b), want.Len())
	}
	if n := slow.writes.Load(); n > packets/10 {
		t.Errorf("%d writes reached the socket for %d packets, want them gathered", n, packets)
	}
	t.Logf("%d packets in %d writes", packets, slow.writes.Load())
	if _, err := c.Write([]byte{0xc0, 0}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func readAll(c net.Conn) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(c)
	return b.Bytes(), err
}

// A send that fails closes the connection, so paho's reader fails as well
// (and paho reconnects), and later writes return the error.
func TestBufferedConnSendFails(t *testing.T) {
	client, _ := tcpPair(t)
	c := newBufferedConn(&slowConn{Conn: client, failAfter: 1}, client, 5*time.Second)
	c.Write([]byte{0x40, 0x02, 0, 1})
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still waits after the send failed")
	}
	if _, err := c.Write([]byte{0x40, 0x02, 0, 2}); !errors.Is(err, errSendFailed) {
		t.Fatalf("write after the failed send: %v, want %v", err, errSendFailed)
	}
	c.Close()
}
