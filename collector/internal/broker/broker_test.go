package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestPublishOwnTopicsIsStoredBeforePuback(t *testing.T) {
	tests := []struct {
		name   string
		topic  string
		qos    byte
		retain bool
		want   call
	}{
		{"measurement", "hubmon/v1/site-a/measurement", 1, false, call{"site-a", "measurement", `{"m":1}`}},
		{"status retained", "hubmon/v1/site-a/status", 1, true, call{"site-a", "status", `{"m":1}`}},
		{"measurement qos2", "hubmon/v1/site-a/measurement", 2, false, call{"site-a", "measurement", `{"m":1}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := mustDial(t, e.b.Addr(), "site-a", "pass-a")
			tok := c.Publish(tt.topic, tt.qos, tt.retain, `{"m":1}`)
			waitToken(t, tok)
			if err := tok.Error(); err != nil {
				t.Fatalf("publish: %v", err)
			}
			// The PUBACK completed the token: the Handler must have run already.
			got := e.rec.snapshot()
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("handler calls = %v, want [%v]", got, tt.want)
			}
		})
	}
}

func TestPublishDenied(t *testing.T) {
	tests := []struct {
		name, user, pass, topic string
	}{
		{"another site's measurement", "site-a", "pass-a", "hubmon/v1/site-b/measurement"},
		{"another site's status", "site-a", "pass-a", "hubmon/v1/site-b/status"},
		{"own ack", "site-a", "pass-a", "hubmon/v1/site-a/ack"},
		{"own unknown kind", "site-a", "pass-a", "hubmon/v1/site-a/other"},
		{"outside hubmon", "site-a", "pass-a", "elsewhere/site-a/measurement"},
		{"reader", testReader, "pass-ops", "hubmon/v1/site-a/measurement"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" qos1", func(t *testing.T) {
			e := newEnv(t)
			c := mustDial(t, e.b.Addr(), tt.user, tt.pass)
			tok := c.Publish(tt.topic, 1, false, "x")
			// mochi answers a denied QoS 1 publish from an MQTT 3.1.1 client
			// by closing the connection: no PUBACK, and the token fails.
			c.waitLost(t)
			waitToken(t, tok)
			if tok.Error() == nil {
				t.Fatal("denied publish was acknowledged")
			}
			if got := e.rec.snapshot(); len(got) != 0 {
				t.Fatalf("handler called for a denied publish: %v", got)
			}
		})
	}
	t.Run("denied qos1 sends the will", func(t *testing.T) {
		// mochi ends the connection with an error, as if the link died.
		e := newEnv(t)
		c := mustDial(t, e.b.Addr(), "site-a", "pass-a", func(o *paho.ClientOptions) {
			o.SetWill("hubmon/v1/site-a/status", "offline", 1, true)
		})
		c.Publish("hubmon/v1/site-b/measurement", 1, false, "denied")
		c.waitLost(t)
		got := e.rec.waitCalls(t, 1)
		if want := (call{"site-a", "status", "offline"}); len(got) != 1 || got[0] != want {
			t.Fatalf("handler calls = %v, want [%v]", got, want)
		}
	})
	t.Run("qos0 dropped silently", func(t *testing.T) {
		e := newEnv(t)
		c := mustDial(t, e.b.Addr(), "site-a", "pass-a")
		waitToken(t, c.Publish("hubmon/v1/site-b/measurement", 0, false, "denied"))
		tok := c.Publish("hubmon/v1/site-a/measurement", 1, false, "allowed")
		waitToken(t, tok)
		if err := tok.Error(); err != nil {
			t.Fatal(err)
		}
		want := []call{{"site-a", "measurement", "allowed"}}
		if got := e.rec.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("handler calls = %v, want %v", got, want)
		}
	})
}

func TestHandlerErrorWithholdsPubackAndDisconnects(t *testing.T) {
	e := newEnv(t)
	e.rec.fail.Store(true)
	c := mustDial(t, e.b.Addr(), "site-a", "pass-a", func(o *paho.ClientOptions) {
		o.SetWill("hubmon/v1/site-a/status", "offline", 1, true)
	})
	tok := c.Publish("hubmon/v1/site-a/measurement", 1, false, "m1")
	c.waitLost(t)
	// paho fails pending tokens when the connection is lost: a PUBACK would
	// have completed it without error first.
	waitToken(t, tok)
	if tok.Error() == nil {
		t.Fatal("publish acknowledged although the handler failed")
	}
	waitClients(t, e.b, 0)
	// The broker closed the connection itself: mochi treats that as a clean
	// end and does not send the will.
	if got, want := fmt.Sprint(e.rec.snapshot()), fmt.Sprint([]call{{"site-a", "measurement", "m1"}}); got != want {
		t.Fatalf("handler calls = %s, want %s", got, want)
	}

	// The agent reconnects and re-sends from its outbox.
	e.rec.fail.Store(false)
	c2 := mustDial(t, e.b.Addr(), "site-a", "pass-a")
	tok = c2.Publish("hubmon/v1/site-a/measurement", 1, false, "m1")
	waitToken(t, tok)
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.snapshot(); len(got) != 2 || got[1] != (call{"site-a", "measurement", "m1"}) {
		t.Fatalf("handler calls = %v", got)
	}
}

func TestHandlerPanicIsAnError(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Handler = func(_ context.Context, site, kind string, payload []byte) error { panic("boom") }
	})
	c := mustDial(t, e.b.Addr(), "site-a", "pass-a")
	tok := c.Publish("hubmon/v1/site-a/measurement", 1, false, "m1")
	c.waitLost(t)
	waitToken(t, tok)
	if tok.Error() == nil {
		t.Fatal("publish acknowledged although the handler panicked")
	}
	// The broker survived.
	c2 := mustDial(t, e.b.Addr(), "site-b", "pass-b")
	c2.disconnect()
}

func TestReaderReceivesEverything(t *testing.T) {
	e := newEnv(t)
	agent := mustDial(t, e.b.Addr(), "site-a", "pass-a")
	waitToken(t, agent.Publish("hubmon/v1/site-a/status", 1, true, "online"))

	r := mustDial(t, e.b.Addr(), testReader, "pass-ops", func(o *paho.ClientOptions) { o.SetClientID("") })
	tok := r.Subscribe("hubmon/v1/#", 1, nil)
	waitToken(t, tok)
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if m := r.waitMessage(t); m.Topic() != "hubmon/v1/site-a/status" || string(m.Payload()) != "online" {
		t.Fatalf("retained: got %s %q", m.Topic(), m.Payload())
	}
	waitToken(t, agent.Publish("hubmon/v1/site-a/measurement", 1, false, "m1"))
	// mochi writes the PUBACK before it forwards the message, so the reader
	// may have subscribed in between and get the status live as well.
	for i := 0; ; i++ {
		m := r.waitMessage(t)
		if m.Topic() == "hubmon/v1/site-a/measurement" && string(m.Payload()) == "m1" {
			break
		}
		if i > 0 || m.Topic() != "hubmon/v1/site-a/status" {
			t.Fatalf("got %s %q", m.Topic(), m.Payload())
		}
	}
	if err := e.b.Publish("hubmon/v1/site-a/ack", []byte("ack1")); err != nil {
		t.Fatal(err)
	}
	if m := r.waitMessage(t); m.Topic() != "hubmon/v1/site-a/ack" || string(m.Payload()) != "ack1" {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
}

func TestPublishAckReachesOnlyItsSite(t *testing.T) {
	e := newEnv(t)
	a := mustDial(t, e.b.Addr(), "site-a", "pass-a")
	b := mustDial(t, e.b.Addr(), "site-b", "pass-b")
	waitToken(t, a.Subscribe("hubmon/v1/site-a/ack", 1, nil))
	waitToken(t, b.Subscribe("hubmon/v1/site-a/ack", 1, nil)) // refused (0x80)
	waitToken(t, b.Subscribe("hubmon/v1/site-b/ack", 1, nil))

	if err := e.b.Publish("hubmon/v1/site-a/ack", []byte(`{"for":"a"}`)); err != nil {
		t.Fatal(err)
	}
	m := a.waitMessage(t)
	if m.Topic() != "hubmon/v1/site-a/ack" || string(m.Payload()) != `{"for":"a"}` || m.Qos() != 1 || m.Retained() {
		t.Fatalf("a got %s %q qos %d retained %t", m.Topic(), m.Payload(), m.Qos(), m.Retained())
	}
	// Messages to one client arrive in order: if b had received a's ack, it
	// would come before its own.
	if err := e.b.Publish("hubmon/v1/site-b/ack", []byte(`{"for":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if m := b.waitMessage(t); string(m.Payload()) != `{"for":"b"}` {
		t.Fatalf("b got %s %q first", m.Topic(), m.Payload())
	}
	if got := e.rec.snapshot(); len(got) != 0 {
		t.Fatalf("acks went to the handler: %v", got)
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for _, topic := range []string{"", "hubmon/v1/+/ack", "hubmon/v1/site-a/#", "other/topic", "$SYS/x", "hubmon/v1/Site_C/ack"} {
		if err := e.b.Publish(topic, []byte("x")); err == nil {
			t.Errorf("Publish(%q) succeeded", topic)
		}
	}
	if err := e.b.Publish("hubmon/v1/site-a/ack", make([]byte, 64<<10+1)); err == nil {
		t.Error("Publish of an oversized payload succeeded")
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Publish("hubmon/v1/site-a/ack", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}

func TestWillGoesToHandler(t *testing.T) {
	e := newEnv(t)
	c := mustDial(t, e.b.Addr(), "site-a", "pass-a", func(o *paho.ClientOptions) {
		o.SetWill("hubmon/v1/site-a/status", `{"state":"offline"}`, 1, true)
	})
	r := mustDial(t, e.b.Addr(), testReader, "pass-ops", func(o *paho.ClientOptions) { o.SetClientID("watcher") })
	waitToken(t, r.Subscribe("hubmon/v1/+/status", 1, nil))

	c.killConn(t)
	got := e.rec.waitCalls(t, 1)
	if want := (call{"site-a", "status", `{"state":"offline"}`}); len(got) != 1 || got[0] != want {
		t.Fatalf("handler calls = %v, want [%v]", got, want)
	}
	if m := r.waitMessage(t); m.Topic() != "hubmon/v1/site-a/status" || string(m.Payload()) != `{"state":"offline"}` {
		t.Fatalf("reader got %s %q", m.Topic(), m.Payload())
	}
}

func TestNoWillOnCleanDisconnect(t *testing.T) {
	e := newEnv(t)
	c := mustDial(t, e.b.Addr(), "site-a", "pass-a", func(o *paho.ClientOptions) {
		o.SetWill("hubmon/v1/site-a/status", "offline", 1, true)
	})
	waitClients(t, e.b, 1)
	c.disconnect()
	// mochi handles the will before it counts the client as gone.
	waitClients(t, e.b, 0)
	if got := e.rec.snapshot(); len(got) != 0 {
		t.Fatalf("handler calls = %v, want none", got)
	}
}

func TestOversizedPacketRefused(t *testing.T) {
	e := newEnv(t)
	t.Run("largest payload fits", func(t *testing.T) {
		c := mustDial(t, e.b.Addr(), "site-a", "pass-a")
		tok := c.Publish("hubmon/v1/site-a/measurement", 1, false, make([]byte, 64<<10))
		waitToken(t, tok)
		if err := tok.Error(); err != nil {
			t.Fatal(err)
		}
		c.disconnect()
	})
	t.Run("200 KiB publish", func(t *testing.T) {
		before := len(e.rec.snapshot())
		c := mustDial(t, e.b.Addr(), "site-b", "pass-b")
		tok := c.Publish("hubmon/v1/site-b/measurement", 1, false, make([]byte, 200<<10))
		c.waitLost(t)
		waitToken(t, tok)
		if tok.Error() == nil {
			t.Fatal("oversized publish acknowledged")
		}
		if got := e.rec.snapshot(); len(got) != before {
			t.Fatalf("handler called for an oversized publish")
		}
	})
	t.Run("huge CONNECT closed before its body", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", e.b.Addr().String(), waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// A CONNECT header announcing 190 MiB, and no body: the broker must
		// close the connection without waiting for (or allocating) it.
		hdr := []byte{0x10}
		for n := 190 << 20; ; {
			b := byte(n % 128)
			n /= 128
			if n > 0 {
				b |= 0x80
			}
			hdr = append(hdr, b)
			if n == 0 {
				break
			}
		}
		if _, err := conn.Write(hdr); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(waitLimit))
		_, err = conn.Read(make([]byte, 16))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open: the broker waits for the body")
		}
		if err == nil {
			t.Fatal("broker answered a 190 MiB CONNECT")
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Logf("read: %v", err)
		}
	})
}

func TestCloseDoesNotReportWills(t *testing.T) {
	e := newEnv(t)
	c := mustDial(t, e.b.Addr(), "site-a", "pass-a", func(o *paho.ClientOptions) {
		o.SetWill("hubmon/v1/site-a/status", "offline", 1, true)
	})
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitLost(t)
	if got := e.rec.snapshot(); len(got) != 0 {
		t.Fatalf("handler calls during Close: %v", got)
	}
	if err := e.b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", e.b.Addr().String(), waitLimit); err == nil {
		t.Fatal("still listening after Close")
	}
}

func TestCloseWithPendingConnection(t *testing.T) {
	e := newEnv(t)
	// A TCP connection that never sends CONNECT is unknown to mochi; Close
	// must still end it rather than wait for it.
	conn, err := net.DialTimeout("tcp", e.b.Addr().String(), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustDial(t, e.b.Addr(), "site-a", "pass-a") // the raw connection was accepted before this one
	done := make(chan error, 1)
	go func() { done <- e.b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close waits for a connection that never sent CONNECT")
	}
}

func TestConcurrentPublishers(t *testing.T) {
	e := newEnv(t)
	const sites, perSite = 6, 25
	users := map[string]string{}
	for i := range sites {
		users[fmt.Sprintf("hub-%d", i)] = fmt.Sprintf("pw-%d", i)
	}
	for u, p := range users {
		if err := AddUser(e.pwfile, u, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, sites*perSite)
	for u, p := range users {
		c := mustDial(t, e.b.Addr(), u, p)
		waitToken(t, c.Subscribe("hubmon/v1/"+u+"/ack", 1, nil))
		wg.Go(func() {
			for i := range perSite {
				tok := c.Publish("hubmon/v1/"+u+"/measurement", 1, false, fmt.Sprintf("%s-%d", u, i))
				select {
				case <-tok.Done():
					if tok.Error() != nil {
						errs <- tok.Error()
					}
				case <-time.After(waitLimit):
					errs <- fmt.Errorf("%s: publish %d not acknowledged", u, i)
					return
				}
				if err := e.b.Publish("hubmon/v1/"+u+"/ack", []byte("ack")); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := e.rec.snapshot()
	if len(got) != sites*perSite {
		t.Fatalf("handler called %d times, want %d", len(got), sites*perSite)
	}
	seen := map[string]bool{}
	for _, c := range got {
		if !strings.HasPrefix(c.payload, c.site+"-") || seen[c.payload] {
			t.Fatalf("bad or duplicate call %v", c)
		}
		seen[c.payload] = true
	}
}

func TestStartErrors(t *testing.T) {
	pw := writePasswords(t, map[string]string{"site-a": "x"})
	h := newRecorder().handle
	tests := []struct {
		name string
		opts Options
	}{
		{"no handler", Options{Listen: "127.0.0.1:0", PasswordFile: pw}},
		{"no password file", Options{Listen: "127.0.0.1:0", Handler: h}},
		{"missing password file", Options{Listen: "127.0.0.1:0", PasswordFile: pw + ".missing", Handler: h}},
		{"negative max packet", Options{Listen: "127.0.0.1:0", PasswordFile: pw, Handler: h, MaxPacketBytes: -1}},
		{"bad reader name", Options{Listen: "127.0.0.1:0", PasswordFile: pw, Handler: h, Readers: []string{"a:b"}}},
		{"bad address", Options{Listen: "127.0.0.1:99999", PasswordFile: pw, Handler: h}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Start(tt.opts)
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestMochiLogRedactsPackets(t *testing.T) {
	var buf syncBuffer
	log := slog.New(mochiLog{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect:     packets.ConnectParams{Password: []byte("hunter2"), Username: []byte("site-a")},
		Payload:     []byte("secret-payload"),
	}
	log.Info("suppressed", "pk", pk)
	log.Warn("error processing packet", "pk", pk, "ptr", &pk, slog.Group("g", "packet", pk))
	log.With("pk", pk).Error("with")
	out := buf.String()
	for _, s := range []string{"hunter2", "secret-payload", "suppressed"} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "error processing packet") || !strings.Contains(out, "Connect") {
		t.Errorf("log lost the message:\n%s", out)
	}
}
