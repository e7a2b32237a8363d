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

// TestFaultAgentKilled SIGKILLs two agents five times each: three times as
// soon as the history has grown since their last start (in the middle of
// publishing a backlog of 1500 each, with four line-quality summaries under
// way), then twice as soon as each has committed a summary of its own since
// its last start (in the middle of the next ones, and of publishing them).
// After each kill the outbox must pass SQLite's integrity check; at the end
// every seq is in the history once.
func TestFaultAgentKilled(t *testing.T) {
	f := newFleet(t, fleetOptions{agents: 2, probes: 4, prefill: 1500})
	f.startCollector()
	f.startAgents()
	const kills = 5
	for i := range kills {
		if i < 3 {
			f.waitIngesting()
		} else {
			seqs := make([]int64, len(f.agents))
			for k, a := range f.agents {
				seqs[k] = lastSeq(t, a.outbox)
			}
			waitFor(t, "a new measurement from every agent", 60*time.Second, func() bool {
				for k, a := range f.agents {
					if lastSeq(t, a.outbox) <= seqs[k] {
						return false
					}
				}
				return true
			})
			t.Logf("fault injected with %d measurements stored, %d waiting in the outboxes", f.storedCount(), f.backlog())
		}
		for _, a := range f.agents {
			a.proc.kill()
			if res := integrityCheck(t, a.outbox); res != "ok" {
				t.Fatalf("%s: outbox damaged by SIGKILL: %s", a.site, res)
			}
			f.startAgent(a)
		}
	}
	tl := f.waitDelivered(120*time.Second, false)
	if tl.sent <= 2*1500 {
		t.Errorf("the agents committed no measurement of their own (sent %d)", tl.sent)
	}
	tl.report(t, "agent_sigkill", kills*len(f.agents))
	for _, a := range f.agents {
		a.proc.kill()
		if res := integrityCheck(t, a.outbox); res != "ok" {
			t.Fatalf("%s: outbox damaged: %s", a.site, res)
		}
	}
}
