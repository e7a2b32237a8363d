package broker

import (
	"fmt"
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hubmon/hubmon/agent/wire"
)

// hook is the broker's only mochi hook: authentication, ACL, and the calls to
// the Handler. With no hook allowing them, mochi refuses every connection and
// denies every topic, so whatever hook does not allow is denied.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "hubmon" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished,
		mqtt.OnPublish, mqtt.OnWillSent, mqtt.OnDisconnect:
		return true
	}
	return false
}

// refusal says why a CONNECT was refused; level is how loudly to log it:
// scanners trying unknown names are Info, a known user failing is Warn.
type refusal struct {
	reason string
	level  slog.Level
}

// authenticate checks a CONNECT against the current password file and the
// identity rules. It returns nil if the client may connect.
func (b *Broker) authenticate(pk packets.Packet) *refusal {
	user := string(pk.Connect.Username)
	if !pk.Connect.UsernameFlag || user == "" {
		return &refusal{"no user name", slog.LevelInfo}
	}
	tbl := b.users.Load()
	c := tbl.users[user]
	if c == nil {
		dummy.verify(pk.Connect.Password)
		return &refusal{"unknown user", slog.LevelInfo}
	}
	if !c.verify(pk.Connect.Password) {
		return &refusal{"wrong or empty password", slog.LevelWarn}
	}
	id := pk.Connect.ClientIdentifier
	if id == mqtt.InlineClientId {
		return &refusal{fmt.Sprintf("client id %q is reserved", id), slog.LevelWarn}
	}
	if id != "" {
		if existing, ok := b.server.Clients.Get(id); ok && string(existing.Properties.Username) != user {
			return &refusal{"client id is in use by another user's session", slog.LevelWarn}
		}
	}
	if b.readers[user] {
		if id != "" && id != user && tbl.users[id] != nil {
			return &refusal{"a reader's client id must not be another user's name", slog.LevelWarn}
		}
		if pk.Connect.WillFlag {
			return &refusal{"readers may not set a will", slog.LevelWarn}
		}
		return nil
	}
	if !wire.ValidSite(user) {
		return &refusal{"user is neither a reader nor a valid site id", slog.LevelWarn}
	}
	if id != user {
		return &refusal{"client id must equal the user name", slog.LevelWarn}
	}
	if pk.Connect.WillFlag && !b.sitePublishes(user, pk.Connect.WillTopic) {
		return &refusal{fmt.Sprintf("will topic %q is not the site's own measurement or status topic", clip(pk.Connect.WillTopic)), slog.LevelWarn}
	}
	return nil
}

func (b *Broker) sitePublishes(site, topic string) bool {
	return topic == wire.Topic(site, wire.TopicMeasurement) || topic == wire.Topic(site, wire.TopicStatus)
}

// OnConnectAuthenticate admits a client. mochi answers a refusal with CONNACK
// "bad user name or password" whatever the reason; the reason is logged.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if r := h.b.authenticate(pk); r != nil {
		h.b.log.Log(h.b.ctx, r.level, "mqtt connection refused", "reason", r.reason,
			"user", clip(string(pk.Connect.Username)), "client_id", clip(pk.Connect.ClientIdentifier),
			"remote", cl.Net.Remote)
		return false
	}
	// mochi sends a delayed will (MQTT 5) from its event loop, without
	// OnWillSent if the session is gone: send every will at once instead.
	cl.Properties.Will.WillDelayInterval = 0
	// mochi 2.7.9 can deadlock when it holds QoS messages back for an MQTT 5
	// client's Receive Maximum (Inflight.NextImmediate takes its read lock
	// twice; a writer in between blocks both). Without a send quota it sends
	// at once, as it does to MQTT 3 clients; MaximumInflight still bounds them.
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
	return true
}

// OnSessionEstablished runs after mochi registered the client and sent
// CONNACK. If Reload replaced the password file between the authentication and
// the registration, Reload's sweep missed this client: check it again.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if r := h.b.authenticate(pk); r != nil {
		h.b.log.Info("mqtt client disconnected: refused after the password file was reloaded", "reason", r.reason,
			"user", clip(string(pk.Connect.Username)), "client_id", clip(cl.ID), "remote", cl.Net.Remote)
		h.b.kick(cl, packets.ErrNotAuthorized)
		return
	}
	h.b.log.Debug("mqtt client connected", "user", clip(string(cl.Properties.Username)),
		"client_id", clip(cl.ID), "remote", cl.Net.Remote, "protocol_version", cl.Properties.ProtocolVersion)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline {
		return
	}
	level := slog.LevelDebug
	if err != nil {
		level = slog.LevelInfo
	}
	h.b.log.Log(h.b.ctx, level, "mqtt client disconnected", "user", clip(string(cl.Properties.Username)),
		"client_id", clip(cl.ID), "remote", cl.Net.Remote, "error", err)
}

// OnACLCheck allows a site its own measurement and status topics (publish)
// and its own ack topic (subscribe, and delivery); a reader any filter under
// hubmon/v1/ (subscribe, and delivery). topic is a topic filter when
// subscribing.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	user := string(cl.Properties.Username)
	if h.b.readers[user] {
		return !write && strings.HasPrefix(topic, wire.TopicRoot+"/")
	}
	if !wire.ValidSite(user) {
		return false
	}
	if write {
		return h.b.sitePublishes(user, topic)
	}
	return topic == wire.Topic(user, wire.TopicAck)
}

// OnPublish passes a site's message to the Handler. mochi calls it after the
// ACL check and before it writes the PUBACK (or PUBREC), retains the message
// or forwards it. On a Handler error it returns ErrRejectPacket, which makes
// mochi drop the message without any acknowledgement, and disconnects the
// client so that it re-sends.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	site, kind, err := wire.ParseTopic(pk.TopicName)
	user := string(cl.Properties.Username)
	if err != nil || site != user || h.b.readers[user] || (kind != wire.TopicMeasurement && kind != wire.TopicStatus) {
		// OnACLCheck let it through: a bug; refuse rather than store it.
		h.b.log.Error("mqtt publish refused after the ACL allowed it", "user", clip(user), "topic", clip(pk.TopicName))
		h.b.kick(cl, packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	if err := h.b.call(site, kind, pk.Payload); err != nil {
		h.b.log.Warn("mqtt message not stored: not acknowledged, client disconnected to re-send",
			"site", site, "kind", kind, "client_id", clip(cl.ID), "error", err)
		h.b.kick(cl, packets.ErrServerBusy)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnWillSent passes a site's Last Will to the Handler. mochi sends a will
// straight to subscribers (and the retained store), never through OnPublish
// or the ACL, so authenticate allows wills only on the site's own topics. The
// client is gone: a Handler error can only be logged.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.b.closing.Load() {
		return
	}
	user := string(cl.Properties.Username)
	site, kind, err := wire.ParseTopic(pk.TopicName)
	if err != nil || site != user || (kind != wire.TopicMeasurement && kind != wire.TopicStatus) {
		h.b.log.Error("mqtt will not stored: unexpected topic", "user", clip(user), "topic", clip(pk.TopicName))
		return
	}
	if err := h.b.call(site, kind, pk.Payload); err != nil {
		h.b.log.Error("mqtt will not stored", "site", site, "kind", kind, "error", err)
	}
}

// call runs the Handler, turning a panic into an error: a panic on a mochi
// connection goroutine would end the collector.
func (b *Broker) call(site, kind string, payload []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return b.handler(b.ctx, site, kind, payload)
}

// clip shortens client-chosen strings for logs.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
