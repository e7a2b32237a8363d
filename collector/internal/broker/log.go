package broker

import (
	"context"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLog wraps the collector's handler for mochi's own logger: it drops
// everything below Warn (mochi logs every hook and listener at Info) and
// replaces packets and wills, which mochi logs whole, by a summary: a logged
// CONNECT would carry the password, a PUBLISH up to 64 KiB of payload.
type mochiLog struct {
	h slog.Handler
}

func (m mochiLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && m.h.Enabled(ctx, l)
}

func (m mochiLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return m.h.Handle(ctx, out)
}

func (m mochiLog) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redact(a)
	}
	return mochiLog{m.h.WithAttrs(red)}
}

func (m mochiLog) WithGroup(name string) slog.Handler { return mochiLog{m.h.WithGroup(name)} }

func redact(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redact(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case packets.Packet:
			return slog.String(a.Key, summary(&x))
		case *packets.Packet:
			if x != nil {
				return slog.String(a.Key, summary(x))
			}
		case mqtt.Will:
			return slog.String(a.Key, fmt.Sprintf("will topic=%q qos=%d retain=%t payload_bytes=%d", x.TopicName, x.Qos, x.Retain, len(x.Payload)))
		case []byte:
			return slog.String(a.Key, fmt.Sprintf("%d bytes", len(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func summary(pk *packets.Packet) string {
	name, ok := packets.PacketNames[pk.FixedHeader.Type]
	if !ok {
		name = "packet"
	}
	if pk.FixedHeader.Type == packets.Publish {
		return fmt.Sprintf("%s topic=%q qos=%d retain=%t id=%d payload_bytes=%d", name, pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.PacketID, len(pk.Payload))
	}
	return fmt.Sprintf("%s id=%d", name, pk.PacketID)
}
