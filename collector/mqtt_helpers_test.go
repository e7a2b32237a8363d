package main_test

// An MQTT client for tests that publish what a real agent would not: crafted,
// replayed, spoofed and hostile messages, with a site's own credentials.

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubmon/hubmon/agent/wire"
)

type mqttConn struct {
	tb   testing.TB
	c    mqtt.Client
	mu   sync.Mutex
	acks []wire.Ack
}

// connectAs connects as user (client id = user, as the brokers require)
// and subscribes to the site's ack topic.
func connectAs(tb testing.TB, brokerURL, user, password string) *mqttConn {
	tb.Helper()
	m := &mqttConn{tb: tb}
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(user).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true).
		SetWriteTimeout(10 * time.Second)
	m.c = mqtt.NewClient(opts)
	if tok := m.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect as %s: %v", user, tok.Error())
	}
	tb.Cleanup(func() { m.c.Disconnect(100) })
	tok := m.c.Subscribe(wire.Topic(user, wire.TopicAck), 1, func(_ mqtt.Client, msg mqtt.Message) {
		var a wire.Ack
		if json.Unmarshal(msg.Payload(), &a) == nil {
			m.mu.Lock()
			m.acks = append(m.acks, a)
			m.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe to the acks of %s: %v", user, tok.Error())
	}
	return m
}

// publish publishes payload on topic and waits for the broker's PUBACK
// (QoS 1) or the write (QoS 0). It returns the token's error.
func (m *mqttConn) publish(topic string, qos byte, payload []byte) error {
	tok := m.c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(20 * time.Second) {
		m.tb.Fatalf("publish on %s: no answer within 20s", topic)
	}
	return tok.Error()
}

// publishJSON publishes v as JSON at QoS 1 and fails the test if the broker
// does not acknowledge it.
func (m *mqttConn) publishJSON(topic string, v any) {
	m.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		m.tb.Fatal(err)
	}
	if err := m.publish(topic, 1, b); err != nil {
		m.tb.Fatalf("publish on %s: %v", topic, err)
	}
}

// acked returns the message ids acknowledged as stored, and as rejected.
func (m *mqttConn) acked() (stored, rejected map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, rejected = map[string]int{}, map[string]int{}
	for _, a := range m.acks {
		for _, id := range a.Stored {
			stored[id]++
		}
		for _, r := range a.Rejected {
			rejected[r.MessageID]++
		}
	}
	return stored, rejected
}

// dnsMeasurement is a valid measurement of site: a DNS lookup that worked.
func dnsMeasurement(site, agentID string, seq int64, at time.Time) wire.Measurement {
	return wire.Measurement{Version: wire.Version, MessageID: "msg-" + agentID + "-" + itoa(seq), Site: site, AgentID: agentID,
		Seq: seq, Probe: "dns", Kind: wire.KindDNS, MeasuredAt: at.UTC(), DurationSeconds: 0.05, Success: true,
		DNS: &wire.DNS{Results: []wire.DNSResult{{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: wire.Float(0.02), Addresses: 1}}}}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
