package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// startMosquitto runs the real broker, anonymous, with the shipped in-flight
// window, and returns its URL.
func startMosquitto(t *testing.T) string {
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
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 200000\n", port)
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
	return "tcp://" + addr
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

func publishN(t *testing.T, url string, n int) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("test-agents").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
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
	s, err := Subscribe(SubscriberOptions{URL: url, ClientID: "collector", ConnectTimeout: 5 * time.Second,
		Topics: []string{"hubmon/v1/+/measurement"}, Handler: handler, Fatal: fatal})
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
