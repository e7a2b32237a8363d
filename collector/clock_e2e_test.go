package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// TestFaultClockJumps: what the collector does with the times an agent's
// clock gives when it jumps (the agent's side is tested with injected
// clocks: agent TestFlagClock, outbox TestIdentityIgnoresTheClock, schedule
// TestClockJump and TestClockJumpBack). An agent publishes, as its outbox
// would, seq 1 at the right time; seq 2 after its clock jumped an hour
// ahead; seq 3 after the clock was set back a day (flagged by the agent:
// the clock was stepped); seq 4 by a clock reset to 2019; and a status
// saying its clock is not synchronised. Identities are the outbox's, so all
// are distinct whatever the clock. Expected: 1 and 3 stored and
// acknowledged, 3 with its flag and counted; 2 and 4 refused and counted
// (future, bad_time) and not acknowledged, so they stay in the agent's
// outbox; the agent shows as not synchronised.
func TestFaultClockJumps(t *testing.T) {
	f := newFleet(t, fleetOptions{agents: 1})
	f.startCollector()
	site := f.agents[0].site
	c := connectAs(t, f.brokerURL, site, agentPassword)
	now := time.Now().UTC()
	const agentID = "clock-agent-01"
	ahead := dnsMeasurement(site, agentID, 2, now.Add(time.Hour))
	back := dnsMeasurement(site, agentID, 3, now.Add(-24*time.Hour))
	back.ClockUnsynced = true
	reset := dnsMeasurement(site, agentID, 4, time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC))
	ms := []wire.Measurement{dnsMeasurement(site, agentID, 1, now), ahead, back, reset}
	topic := wire.Topic(site, wire.TopicMeasurement)
	for _, m := range ms {
		c.publishJSON(topic, m)
	}
	c.publishJSON(wire.Topic(site, wire.TopicStatus), wire.Status{Version: wire.Version, Site: site, AgentID: agentID, State: wire.StateOnline,
		Session: 1, ConnectedAt: now, SentAt: now, AgentVersion: "test", OS: "linux", Arch: "arm64", ClockUnsynced: true})

	value := func(name string, labels map[string]string) float64 {
		mfs, _ := scrape(t, f.metricsURL())
		v, _ := sample(mfs, name, labels)
		return v
	}
	waitFor(t, "seq 1 and 3 acknowledged", 30*time.Second, func() bool {
		stored, _ := c.acked()
		return stored[ms[0].MessageID] == 1 && stored[back.MessageID] == 1
	})
	waitFor(t, "the agent's clock shown as not synchronised", 30*time.Second, func() bool {
		mfs, _ := scrape(t, f.metricsURL())
		v, ok := sample(mfs, "hubmon_agent_clock_synchronized", map[string]string{"site": site})
		return ok && v == 0
	})
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hubmon_collector_rejected_messages_total", map[string]string{"reason": "future"}, 1},
		{"hubmon_collector_rejected_messages_total", map[string]string{"reason": "bad_time"}, 1},
		{"hubmon_collector_clock_unsynced_measurements_total", nil, 1},
		{"hubmon_collector_messages_total", map[string]string{"kind": "measurement", "result": "stored"}, 2},
	} {
		if v := value(w.name, w.labels); v != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.want)
		}
	}
	stored, rejected := c.acked()
	for _, m := range []wire.Measurement{ahead, reset} {
		if stored[m.MessageID] != 0 || rejected[m.MessageID] != 0 {
			t.Errorf("seq %d (measured at %s) acknowledged: the agent would drop it", m.Seq, m.MeasuredAt)
		}
	}
	rows := history(t, f.db)
	if len(rows) != 2 || rows[0].seq != 1 || rows[1].seq != 3 {
		t.Fatalf("history %+v, want seq 1 and 3", rows)
	}
	db := openSQLite(t, f.db)
	defer db.Close()
	var payload string
	if err := db.QueryRow(`SELECT payload FROM measurements WHERE seq = 3`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var got wire.Measurement
	if err := json.Unmarshal([]byte(payload), &got); err != nil || !got.ClockUnsynced || !strings.Contains(payload, `"clock_unsynced":true`) {
		t.Errorf("seq 3 stored without its clock flag: %s", payload)
	}
	t.Logf("fault=clock_jump injected=3 sent=4 stored=2 lost=0 duplicated=0 held_by_agent=2 (future, bad_time: not acknowledged, kept in the outbox)")
}
