package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/wire"
)

const site = "leeds-central-library"

// mosquitto is a real Mosquitto broker on a random 127.0.0.1 port.
type mosquitto struct {
	tb   testing.TB
	port int
	conf string
	cmd  *exec.Cmd
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startMosquitto(tb testing.TB) *mosquitto {
	tb.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		tb.Fatal("mosquitto not found: install Debian's mosquitto package (.ci/run does)")
	}
	m := &mosquitto{tb: tb, port: freePort(tb)}
	m.conf = filepath.Join(tb.TempDir(), "mosquitto.conf")
	os.WriteFile(m.conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", m.port), 0o644)
	m.start()
	tb.Cleanup(m.stop)
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

func (m *mosquitto) start() {
	m.tb.Helper()
	m.cmd = exec.Command("mosquitto", "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.tb.Fatalf("mosquitto did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

// fakeCollector subscribes like the collector and acks what it sees (if ack).
// It stands in for the collector's ack protocol only; the real collector is
// tested end to end elsewhere.
type fakeCollector struct {
	mu       sync.Mutex
	received map[string]int
	statuses []wire.Status
	ack      bool
}

func (f *fakeCollector) count() (distinct, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.received {
		distinct++
		total += n
	}
	return
}

func startFakeCollector(tb testing.TB, url string, ack bool) *fakeCollector {
	tb.Helper()
	f := &fakeCollector{received: map[string]int{}, ack: ack}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("fake-collector").SetOrderMatters(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(100 * time.Millisecond)
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		c.Subscribe("hubmon/v1/+/+", 1, func(c mqtt.Client, msg mqtt.Message) {
			s, kind, err := wire.ParseTopic(msg.Topic())
			if err != nil {
				return
			}
			switch kind {
			case wire.TopicMeasurement:
				m, err := wire.DecodeMeasurement(msg.Payload(), s, time.Now())
				if err != nil {
					tb.Errorf("agent published an invalid measurement: %v", err)
					return
				}
				f.mu.Lock()
				f.received[m.MessageID]++
				f.mu.Unlock()
				if f.ack {
					b, _ := json.Marshal(wire.Ack{Version: 1, Site: s, Stored: []string{m.MessageID}})
					c.Publish(wire.Topic(s, wire.TopicAck), 1, false, b)
				}
			case wire.TopicStatus:
				st, err := wire.DecodeStatus(msg.Payload(), s, time.Now())
				if err != nil {
					tb.Errorf("agent published an invalid status: %v", err)
					return
				}
				f.mu.Lock()
				f.statuses = append(f.statuses, *st)
				f.mu.Unlock()
			}
		})
	})
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		tb.Fatalf("fake collector connect: %v", t.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return f
}

func newOutbox(tb testing.TB) *outbox.Outbox {
	tb.Helper()
	o, err := outbox.Open(filepath.Join(tb.TempDir(), "outbox.db"), site, 10000)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

func add(tb testing.TB, o *outbox.Outbox, n int) {
	tb.Helper()
	for i := range n {
		m := &wire.Measurement{Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: time.Now().Add(-time.Duration(n-i) * time.Second),
			Success: false, Error: "test", Speedtest: &wire.Speedtest{}}
		if err := o.Add(context.Background(), m); err != nil {
			tb.Fatal(err)
		}
	}
}

func backlog(o *outbox.Outbox) int64 {
	s, _ := o.Stats(context.Background())
	return s.Backlog
}

func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(tb testing.TB, opts Options) (*Publisher, context.CancelFunc) {
	tb.Helper()
	opts.Site, opts.Username = site, site
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 2 * time.Second
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 30 * time.Second
	}
	opts.StatusInterval = time.Hour
	opts.AgentVersion, opts.OS, opts.Arch, opts.Started = "test", "linux", "amd64", time.Now()
	p := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Error("publisher did not stop within 10s")
		}
	})
	return p, cancel
}

func TestDeletesOnlyWhenAcked(t *testing.T) {
	mq := startMosquitto(t)
	f := startFakeCollector(t, mq.url(), false) // receives but never acks
	o := newOutbox(t)
	add(t, o, 20)
	run(t, Options{BrokerURL: mq.url(), Outbox: o, AckTimeout: 300 * time.Millisecond})
	// published, and published again after the ack timeout, but never deleted
	waitFor(t, "re-sends", 20*time.Second, func() bool { d, total := f.count(); return d == 20 && total >= 40 })
	if b := backlog(o); b != 20 {
		t.Fatalf("backlog %d without any ack, want 20 (a PUBACK is not an ack)", b)
	}
}

func TestAckedMeasurementsLeaveTheOutbox(t *testing.T) {
	mq := startMosquitto(t)
	f := startFakeCollector(t, mq.url(), true)
	o := newOutbox(t)
	add(t, o, 1200) // more than one window
	p, _ := run(t, Options{BrokerURL: mq.url(), Outbox: o})
	waitFor(t, "outbox to drain", 30*time.Second, func() bool { return backlog(o) == 0 })
	if d, _ := f.count(); d != 1200 {
		t.Fatalf("collector saw %d distinct, want 1200", d)
	}
	add(t, o, 1)
	p.Notify()
	waitFor(t, "a new measurement", 10*time.Second, func() bool { return backlog(o) == 0 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.statuses) == 0 || f.statuses[0].State != wire.StateOnline {
		t.Fatalf("no online status: %+v", f.statuses)
	}
}

// TestAckedHook: the Acked hook sees every ack, after the outbox has
// deleted what it names.
func TestAckedHook(t *testing.T) {
	mq := startMosquitto(t)
	startFakeCollector(t, mq.url(), true)
	o := newOutbox(t)
	add(t, o, 3)
	var mu sync.Mutex
	acked := map[string]bool{}
	run(t, Options{BrokerURL: mq.url(), Outbox: o, Acked: func(a *wire.Ack) {
		for _, id := range a.Stored {
			es, err := o.Pending(context.Background(), 0, 10, nil)
			for _, e := range es {
				if err != nil || e.MessageID == id {
					t.Errorf("ack of %s seen before the outbox deleted it (%v)", id, err)
				}
			}
			mu.Lock()
			acked[id] = true
			mu.Unlock()
		}
	}})
	waitFor(t, "three acks", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) == 3 })
}

// TestBrokerOutage kills Mosquitto while measurements are being added; the
// agent reconnects by itself and nothing is lost.
func TestBrokerOutage(t *testing.T) {
	mq := startMosquitto(t)
	f := startFakeCollector(t, mq.url(), true)
	o := newOutbox(t)
	p, _ := run(t, Options{BrokerURL: mq.url(), Outbox: o, AckTimeout: 2 * time.Second})
	add(t, o, 50)
	p.Notify()
	waitFor(t, "first batch", 10*time.Second, func() bool { return backlog(o) == 0 })
	mq.stop()
	add(t, o, 50) // taken while the broker is down
	p.Notify()
	waitFor(t, "disconnect noticed", 10*time.Second, func() bool { return !p.Connected() })
	if b := backlog(o); b != 50 {
		t.Fatalf("backlog %d during outage, want 50", b)
	}
	mq.start()
	waitFor(t, "drain after outage", 30*time.Second, func() bool { return backlog(o) == 0 })
	if d, _ := f.count(); d != 100 {
		t.Fatalf("collector saw %d distinct, want 100", d)
	}
}

func TestWrongBrokerKeepsEverything(t *testing.T) {
	o := newOutbox(t)
	add(t, o, 3)
	run(t, Options{BrokerURL: fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), Outbox: o, ConnectTimeout: 200 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	if b := backlog(o); b != 3 {
		t.Fatalf("backlog %d, want 3", b)
	}
}
