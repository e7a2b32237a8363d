package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/hubmon/hubmon/bench/internal/fleetsim"
)

// summary is the JSON line fleet prints.
type summary struct {
	Sites                    int     `json:"sites"`
	Sent                     int     `json:"sent"`
	Measurements             int     `json:"measurements"`
	Statuses                 int     `json:"statuses"`
	PublishErrors            int     `json:"publish_errors"`
	PublishSeconds           float64 `json:"publish_seconds"`
	PublishMessagesPerSecond float64 `json:"publish_messages_per_second"`
	Acked                    int     `json:"acked"`
	Rejected                 int     `json:"rejected"`
	Unacked                  int     `json:"unacked"`
	DuplicateAcks            int     `json:"duplicate_acks"`
	StrayAcks                int     `json:"stray_acks"`
	// measurements acknowledged per second, from the first publish to the last ack
	AckedPerSecond   float64 `json:"acked_per_second,omitempty"`
	AckDelayP50      float64 `json:"ack_delay_p50_seconds,omitempty"`
	AckDelayP99      float64 `json:"ack_delay_p99_seconds,omitempty"`
	MeasuredToAckP50 float64 `json:"measured_to_ack_p50_seconds,omitempty"`
	MeasuredToAckP99 float64 `json:"measured_to_ack_p99_seconds,omitempty"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	userPrefix := fs.String("user-prefix", "hubmon-fleetsim", "MQTT users: PREFIX-0..C-1 publish, PREFIX-acks listens for acks; password in $HUBMON_FLEETSIM_PASSWORD")
	conns := fs.Int("connections", 4, "publishing connections (1 to 64)")
	sites := fs.Int("sites", 1000, "sites in the fleet")
	prefix := fs.String("site-prefix", "sim", "site ids are PREFIX-0..N-1")
	count := fs.Int("count", 10000, "messages to publish at most (0: only -duration bounds it; needed without -rate)")
	duration := fs.Duration("duration", time.Minute, "time to publish at most (at most 10m)")
	rate := fs.Float64("rate", 0, "messages per second; 0 as fast as the broker takes them")
	window := fs.Int("window", 500, "QoS 1 publishes awaiting a PUBACK per connection")
	ackTimeout := fs.Duration("ack-timeout", time.Minute, "after publishing, wait this long at most for the collector's acks; 0 listens for none")
	idsOut := fs.String("ids-out", "", "write each measurement's site, message id and times acknowledged to this file")
	seed := fs.Uint64("seed", 1, "seed of the fleet's line profiles and message kinds")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *conns < 1 || *conns > 64 || *sites < 1 || (*count <= 0 && (*rate <= 0 || *duration <= 0)) {
		fmt.Fprintln(stderr, "fleet: need 1-64 connections, at least one site, and -count (or -rate with -duration)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	password := getenv("HUBMON_FLEETSIM_PASSWORD")
	opts := fleetsim.Options{BrokerURL: *broker, Sites: *sites, SitePrefix: *prefix, Window: *window, Seed: *seed, Logger: log}
	for i := range *conns {
		opts.Publishers = append(opts.Publishers, fleetsim.Credential{Username: *userPrefix + "-" + strconv.Itoa(i), Password: password})
	}
	if *ackTimeout > 0 {
		opts.Acks = &fleetsim.Credential{Username: *userPrefix + "-acks", Password: password}
	}
	sim, err := fleetsim.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "fleet: %v\n", err)
		return 1
	}
	defer sim.Close()

	res, runErr := sim.Run(ctx, fleetsim.Phase{Name: "run", Count: *count, Duration: *duration, Rate: *rate, Track: *ackTimeout > 0})
	if *ackTimeout > 0 {
		res = sim.WaitAcks(ctx, "run", *ackTimeout)
	}
	s := summary{Sites: *sites, Sent: res.Sent, Measurements: res.Measurements, Statuses: res.Statuses, PublishErrors: res.PublishErrors,
		PublishSeconds: res.PublishEnd.Sub(res.Start).Seconds(), PublishMessagesPerSecond: res.PublishRate(),
		Acked: res.Acked, Rejected: res.Rejected, Unacked: res.Unacked, DuplicateAcks: res.DuplicateAcks}
	unknown, malformed := sim.StrayAcks()
	s.StrayAcks = unknown + malformed
	if res.Acked > 0 {
		s.AckedPerSecond = float64(res.Acked) / res.LastAck.Sub(res.Start).Seconds()
		s.AckDelayP50, s.AckDelayP99 = res.AckDelay.P50, res.AckDelay.P99
		s.MeasuredToAckP50, s.MeasuredToAckP99 = res.MeasuredToAck.P50, res.MeasuredToAck.P99
	}
	if *idsOut != "" {
		if err := writeIDs(*idsOut, sim.Tracked()); err != nil {
			fmt.Fprintf(stderr, "fleet: %v\n", err)
			return 1
		}
	}
	b, _ := json.Marshal(s)
	fmt.Fprintln(stdout, string(b))
	switch {
	case runErr != nil:
		fmt.Fprintf(stderr, "fleet: %v\n", runErr)
		return 1
	case ctx.Err() != nil:
		return 1
	case *ackTimeout > 0 && (res.Unacked > 0 || res.Rejected > 0):
		fmt.Fprintf(stderr, "fleet: %d of %d measurements not acknowledged as stored (%d rejected)\n", res.Unacked+res.Rejected, res.Tracked, res.Rejected)
		return 1
	}
	return 0
}

func writeIDs(path string, sent []fleetsim.Sent) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write ids: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, s := range sent {
		fmt.Fprintf(w, "%s %s %d\n", s.Site, s.MessageID, s.Acks)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write ids %q: %w", path, err)
	}
	return f.Close()
}
