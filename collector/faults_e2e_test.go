package main_test

// Fault tests: real agents, a real collector and a real Mosquitto (from the
// shipped configuration) with real SQLite files, while something is killed,
// fills up or breaks. Each test logs one line
//
//	fault=<name> injected=N sent=N stored=N lost=N duplicated=N dropped_counted=N
//
// sent is every measurement the agents committed to their outboxes (seq
// 1..N of each agent), stored those in the history exactly once; lost and
// duplicated must be 0. Waits are on counts, never on elapsed time.

import (
	"testing"
	"time"
)

// TestFaultBrokerKilled SIGKILLs Mosquitto four times while four agents
// publish (a backlog of 1000 each at the start, and four line-quality
// summaries every 10 s each): each time as soon as the history has grown
// since the last restart, so in the middle of ingesting. It restarts
// Mosquitto once every agent has seen its session end.
func TestFaultBrokerKilled(t *testing.T) {
	f := newFleet(t, fleetOptions{mosquitto: true, agents: 4, probes: 4, prefill: 1000})
	f.startCollector()
	f.startAgents()
	const kills = 4
	for range kills {
		f.waitIngesting()
		ended := make([]int, len(f.agents))
		for k, a := range f.agents {
			ended[k] = countLines(a.proc, "broker session ended")
		}
		f.mq.kill()
		waitFor(t, "every agent to lose its session", 30*time.Second, func() bool {
			for k, a := range f.agents {
				if countLines(a.proc, "broker session ended") <= ended[k] {
					return false
				}
			}
			return true
		})
		f.mq.start(t)
	}
	f.waitDelivered(120*time.Second, false).report(t, "broker_sigkill", kills)
}

// TestFaultCollectorKilled SIGKILLs the collector while four agents publish
// (a backlog of 1000 each, then live summaries), each time as soon as the
// history has grown since its last start: behind Mosquitto five times (its
// persistent session keeps queueing while the collector is away; the
// collector acks to the broker only after the commit), and with the
// embedded broker four times (killed with it; the agents re-send).
func TestFaultCollectorKilled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mosquitto bool
		kills     int
	}{{"mosquitto", true, 5}, {"embedded", false, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, fleetOptions{mosquitto: tc.mosquitto, agents: 4, probes: 4, prefill: 1000})
			f.startCollector()
			f.startAgents()
			for range tc.kills {
				f.waitIngesting()
				f.collector.kill()
				f.startCollector()
			}
			f.waitDelivered(120*time.Second, false).report(t, "collector_sigkill_"+tc.name, tc.kills)
		})
	}
}
