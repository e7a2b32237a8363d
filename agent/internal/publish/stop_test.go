package publish

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hubmon/hubmon/agent/wire"
)

// blackhole is a broker that never acknowledges a measurement (a PUBACK that
// never comes), optionally refusing the ack subscription.
type blackhole struct {
	mochi.HookBase
	denyAck bool
}

func (h *blackhole) ID() string { return "blackhole" }
func (h *blackhole) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (h *blackhole) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *blackhole) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	return write || !h.denyAck || !strings.HasSuffix(topic, "/ack")
}
func (h *blackhole) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline && bytes.HasSuffix([]byte(pk.TopicName), []byte("/measurement")) {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

func startBlackhole(t *testing.T, denyAck bool) (url string, states func() []string) {
	t.Helper()
	port := freePort(t)
	srv := mochi.New(&mochi.Options{InlineClient: true})
	srv.AddHook(&blackhole{denyAck: denyAck}, nil)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: fmt.Sprintf("127.0.0.1:%d", port)})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var mu sync.Mutex
	var seen []string
	srv.Subscribe(wire.Topic(site, wire.TopicStatus), 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		if st, err := wire.DecodeStatus(pk.Payload, site, time.Now()); err == nil {
			mu.Lock()
			seen = append(seen, st.State)
			mu.Unlock()
		}
	})
	return fmt.Sprintf("tcp://127.0.0.1:%d", port), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string{}, seen...)
	}
}

// TestStopWhileWaitingSaysOffline stops the agent while it waits for a
// PUBACK: it must still publish "offline" (a clean DISCONNECT discards the Will).
func TestStopWhileWaitingSaysOffline(t *testing.T) {
	url, states := startBlackhole(t, false)
	o := newOutbox(t)
	add(t, o, 5)
	p, cancel := run(t, Options{BrokerURL: url, Outbox: o, ConnectTimeout: 5 * time.Second})
	waitFor(t, "connected", 5*time.Second, p.Connected)
	time.Sleep(200 * time.Millisecond) // inside the wait for a PUBACK
	cancel()
	waitFor(t, "offline status", 5*time.Second, func() bool {
		s := states()
		return len(s) > 0 && s[len(s)-1] == wire.StateOffline
	})
}

// TestRefusedAckSubscription: a broker whose ACL refuses the ack topic makes
// a session useless; the agent must not believe it is connected.
func TestRefusedAckSubscription(t *testing.T) {
	url, _ := startBlackhole(t, true)
	o := newOutbox(t)
	p, _ := run(t, Options{BrokerURL: url, Outbox: o})
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if p.Connected() {
			t.Fatal("agent reports connected although its ack subscription was refused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
