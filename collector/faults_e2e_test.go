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
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
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

// mountTmpfs mounts a tmpfs of size on a new directory (root only; the test
// is skipped otherwise), unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the full disk is a small tmpfs: needs root on Linux")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	t.Cleanup(func() { // after the processes using it (cleanups run last first)
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, n := range []int{len(buf), 4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// TestFaultAgentDiskFull runs an agent whose data directory is a 32 MiB
// tmpfs, with a backlog of 200 and no collector, then fills the disk to the
// last byte: the agent must keep running and committing new measurements
// by dropping the oldest (counted, and reported in its status), connect and
// publish once the collector is there, and stop dropping when space returns.
// Every measurement not counted as dropped must arrive.
func TestFaultAgentDiskFull(t *testing.T) {
	disk := mountTmpfs(t, "32m")
	f := newFleet(t, fleetOptions{agents: 1, probes: 8, prefill: 200, dataDir: func(int) string { return disk }})
	a := f.agents[0]
	f.startAgent(a)
	waitFor(t, "the agent to make its outbox's reserve", 30*time.Second, func() bool {
		_, err := os.Stat(a.outbox + ".reserve")
		return err == nil
	})
	filler := fillDisk(t, disk)
	waitFor(t, "the agent to drop its oldest on the full disk", 60*time.Second, func() bool { return outboxDropped(t, a.outbox) >= 8 })
	if !a.proc.running() {
		t.Fatalf("the agent stopped on a full disk: %v", a.proc.err)
	}

	// the collector comes; the disk is still full
	f.startCollector()
	lbl := map[string]string{"site": a.site}
	waitFor(t, "the drops in the agent's status on /metrics", 60*time.Second, func() bool {
		mfs, _ := scrape(t, f.metricsURL())
		v, _ := sample(mfs, "hubmon_agent_outbox_dropped_messages_total", lbl)
		return v >= 8
	})
	waitFor(t, "the backlog to drain on the full disk", 60*time.Second, func() bool { return outboxBacklog(t, a.outbox) == 0 })

	// space returns
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reserve made again", 60*time.Second, func() bool {
		_, err := os.Stat(a.outbox + ".reserve")
		return err == nil
	})
	dropped, seq := outboxDropped(t, a.outbox), lastSeq(t, a.outbox)
	waitFor(t, "new measurements after space returned", 60*time.Second, func() bool { return lastSeq(t, a.outbox) >= seq+8 })
	if d := outboxDropped(t, a.outbox); d != dropped {
		t.Errorf("%d more dropped after space returned", d-dropped)
	}
	tl := f.waitDelivered(60*time.Second, true)
	mfs, _ := scrape(t, f.metricsURL())
	if v, ok := sample(mfs, "hubmon_agent_measurements_lost", lbl); !ok || v != 0 {
		t.Errorf("hubmon_agent_measurements_lost = %v (present %v), want 0: every measurement reached the outbox", v, ok)
	}
	if tl.dropped == 0 {
		t.Errorf("nothing counted as dropped")
	}
	tl.report(t, "agent_disk_full", 1)
}
