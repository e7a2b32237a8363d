package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/bench/internal/fleetsim"
	"github.com/hubmon/hubmon/bench/internal/rig"
)

// Users of the do-nothing subscribers (the bench ACL lets them read every
// site's measurement and status topics, as the collector does).
const (
	ceilingPaho = "hubmon-ceiling-paho"
	ceilingSub  = "hubmon-ceiling-sub"
)

var ceilingTopics = []string{wire.TopicRoot + "/+/" + wire.TopicMeasurement, wire.TopicRoot + "/+/" + wire.TopicStatus}

// ceiling measures what the broker delivers to one QoS 1 subscriber with a
// persistent session that does nothing but acknowledge: a paho client, then
// mosquitto_sub, each live (subscribed while the simulator publishes) and
// from a backlog (queued while it was away). The phases publish measurements
// only, so no retained status comes back at a later subscription.
func (b *bench) ceiling(ctx context.Context, n int, broker *rig.Broker, sim *fleetsim.Sim) error {
	count := b.ceilingCount
	emit := func(sub, mode string, from, to time.Time, res fleetsim.Result, c cpu) {
		secs := to.Sub(from).Seconds()
		b.emit("broker_ceiling_messages_per_second", n, float64(count)/secs, map[string]any{"subscriber": sub, "mode": mode,
			"messages": count, "seconds": secs, "publish_messages_per_second": res.PublishRate(),
			"broker_cpu_seconds": c.broker, "loadgen_cpu_seconds": c.self})
	}
	m := &meter{broker: broker}

	// paho, live
	k := &counter{url: broker.URL, user: ceilingPaho}
	if err := k.connect(true); err != nil {
		return err
	}
	b.log.Info("broker ceiling", "sites", n, "subscriber", "paho", "messages", count)
	k.expect(count)
	m.start()
	res, err := sim.Run(ctx, fleetsim.Phase{Name: "ceiling-paho-live", Count: count, Kinds: fleetsim.MeasurementsOnly})
	if err != nil {
		return err
	}
	done, err := k.wait(ctx, time.Minute)
	if err != nil {
		return err
	}
	emit("paho", "live", res.Start, done, res, m.stop())

	// paho, backlog: away (its session stays) while the simulator publishes
	k.c.Disconnect(250)
	if res, err = sim.Run(ctx, fleetsim.Phase{Name: "ceiling-paho-backlog", Count: count, Kinds: fleetsim.MeasurementsOnly}); err != nil {
		return err
	}
	k.expect(count)
	m.start()
	from := time.Now()
	if err := k.connect(false); err != nil {
		return err
	}
	if done, err = k.wait(ctx, time.Minute); err != nil {
		return err
	}
	emit("paho", "backlog", from, done, res, m.stop())
	k.c.Disconnect(250)
	if err := k.forget(); err != nil {
		return err
	}

	// mosquitto_sub -q 1 with a persistent session (-c), exiting after
	// count messages (-C); stale retained messages are not counted (-R)
	args := func(extra ...string) []string {
		a := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(broker.Port), "-u", ceilingSub, "-P", password, "-i", ceilingSub, "-q", "1"}
		for _, t := range ceilingTopics {
			a = append(a, "-t", t)
		}
		return append(a, extra...)
	}
	subscribe := func(extra ...string) error {
		if out, err := exec.CommandContext(ctx, "mosquitto_sub", args(extra...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("mosquitto_sub %v: %v: %s", extra, err, out)
		}
		return nil
	}
	if err := subscribe("-c", "-E"); err != nil { // the session, subscribed
		return err
	}
	b.log.Info("broker ceiling", "sites", n, "subscriber", "mosquitto_sub", "messages", count)
	counting := func() *exec.Cmd {
		return exec.CommandContext(ctx, "mosquitto_sub", args("-c", "-R", "-C", strconv.Itoa(count), "-W", "120")...)
	}
	cmd := counting()
	m.start()
	if err := cmd.Start(); err != nil {
		return err
	}
	res, err = sim.Run(ctx, fleetsim.Phase{Name: "ceiling-sub-live", Count: count, Kinds: fleetsim.MeasurementsOnly})
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("mosquitto_sub (live): %w", err)
	}
	emit("mosquitto_sub", "live", res.Start, time.Now(), res, m.stop())

	if res, err = sim.Run(ctx, fleetsim.Phase{Name: "ceiling-sub-backlog", Count: count, Kinds: fleetsim.MeasurementsOnly}); err != nil {
		return err
	}
	m.start()
	from = time.Now()
	if out, err := counting().CombinedOutput(); err != nil {
		return fmt.Errorf("mosquitto_sub (backlog): %v: %s", err, out)
	}
	emit("mosquitto_sub", "backlog", from, time.Now(), res, m.stop())
	return subscribe("-E") // a clean session: the broker forgets the subscriber
}

// counter is a paho subscriber that does nothing but count (and, as paho
// does by default, acknowledge) what it receives.
type counter struct {
	url, user string
	c         mqtt.Client

	mu      sync.Mutex
	n       int
	target  int
	reached chan struct{}
	at      time.Time
}

func (k *counter) handle(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	if k.n == k.target {
		k.at = time.Now()
		close(k.reached)
	}
}

func (k *counter) expect(count int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n, k.target, k.reached = 0, count, make(chan struct{})
}

func (k *counter) wait(ctx context.Context, d time.Duration) (time.Time, error) {
	k.mu.Lock()
	ch := k.reached
	k.mu.Unlock()
	select {
	case <-ch:
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.at, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(d):
		k.mu.Lock()
		defer k.mu.Unlock()
		return time.Time{}, fmt.Errorf("%s received %d of %d messages in %s", k.user, k.n, k.target, d)
	}
}

// connect opens the persistent session (clean session off); subscribe on the
// first connection only, so that a reconnection takes what was queued.
func (k *counter) connect(subscribe bool) error {
	k.c = mqtt.NewClient(k.options(false))
	if t := k.c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("connect %s: %v", k.user, t.Error())
	}
	if !subscribe {
		return nil
	}
	subs := map[string]byte{}
	for _, t := range ceilingTopics {
		subs[t] = 1
	}
	t := k.c.SubscribeMultiple(subs, nil)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("subscribe %s: %v", k.user, t.Error())
	}
	for topic, code := range t.(*mqtt.SubscribeToken).Result() {
		if code >= 0x80 {
			return fmt.Errorf("subscribe %s to %s: refused (%#x)", k.user, topic, code)
		}
	}
	return nil
}

// forget ends the persistent session (a clean-session connection).
func (k *counter) forget() error {
	c := mqtt.NewClient(k.options(true))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("connect %s: %v", k.user, t.Error())
	}
	c.Disconnect(250)
	return nil
}

func (k *counter) options(clean bool) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker(k.url).SetClientID(k.user).SetUsername(k.user).SetPassword(password).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).SetDefaultPublishHandler(k.handle) // before Connect: queued messages come first
}
