package main_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestCollectorsShareAFleet runs two real collectors on one real Mosquitto,
// each subscribed (mqtt.topics) to its own site's topics, and a real agent
// per site: every measurement lands in its own collector's history, once,
// and never in the other's. This is how a national fleet is split between
// collectors (docs/scale.md).
func TestCollectorsShareAFleet(t *testing.T) {
	agentBin, collectorBin := binaries(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	sites := []string{"north-lib", "south-lib"}
	collectors := []string{"hubmon-collector", "hubmon-collector-south"}
	for i := range sites {
		addUser(t, collectorBin, passwd, sites[i], "agent-secret")
		addUser(t, collectorBin, passwd, collectors[i], "collector-secret")
	}
	// the shipped ACL has one collector account; a second needs the same lines
	mq := startMosquittoACL(t, passwd, `user hubmon-collector-south
topic read hubmon/v1/+/measurement
topic read hubmon/v1/+/status
topic write hubmon/v1/+/ack
`)
	resolver := serveDNS(t)

	dbs := make([]string, len(sites))
	ports := make([]int, len(sites))
	for i, s := range sites {
		dbs[i] = filepath.Join(dir, s+".db")
		ports[i] = freePort(t)
		conf := filepath.Join(dir, s+"-collector.yaml")
		writeFile(t, conf, fmt.Sprintf(`database: %s
http:
  listen: "127.0.0.1:%d"
mqtt:
  url: %s
  client_id: %s
  username: %s
  password: collector-secret
  topics: [hubmon/v1/%s/measurement, hubmon/v1/%s/status]
`, dbs[i], ports[i], mq.url(), collectors[i], collectors[i], s, s))
		c := start(t, collectors[i], nil, collectorBin, "run", "-config", conf)
		waitFor(t, collectors[i]+" ready", 15*time.Second, func() bool {
			if !c.running() {
				t.Fatalf("%s exited: %v\n%s", collectors[i], c.err, c.output())
			}
			code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports[i]))
			return err == nil && code == 200
		})
		defer c.stop(10 * time.Second)
	}
	agents := make([]*proc, len(sites))
	outboxes := make([]string, len(sites))
	for i, s := range sites {
		outboxes[i] = filepath.Join(dir, s, "outbox.db")
		conf := filepath.Join(dir, s+"-agent.yaml")
		writeFile(t, conf, fmt.Sprintf(`site: %s
data_dir: %s
broker:
  url: %s
  password: agent-secret
  ack_timeout: 5s
  connect_timeout: 3s
probes:
  - name: dns
    kind: dns
    interval: 1m
    first_run: 0s
    splay: 0s
    dns:
      names: [www.hub.test]
      resolvers: ["%s"]
`, s, filepath.Join(dir, s), mq.url(), resolver))
		agents[i] = start(t, s, nil, agentBin, "run", "-config", conf)
	}
	// the first measurement of each, acknowledged (outbox empty)
	waitFor(t, "a measurement per site, acknowledged", 60*time.Second, func() bool {
		for i := range sites {
			if !agents[i].running() {
				t.Fatalf("agent %s exited: %v\n%s", sites[i], agents[i].err, agents[i].output())
			}
			if len(history(t, dbs[i])) < 1 || outboxBacklog(t, outboxes[i]) != 0 {
				return false
			}
		}
		return true
	})
	for _, a := range agents {
		a.stop(10 * time.Second)
	}
	for i, s := range sites {
		if n := outboxBacklog(t, outboxes[i]); n != 0 {
			t.Errorf("%s: %d measurements still in the outbox after stopping (not acknowledged)", s, n)
		}
		rows := history(t, dbs[i])
		seen := map[int64]bool{}
		for _, r := range rows {
			if r.site != s {
				t.Errorf("%s's collector stored a measurement of %s (seq %d): its topics name only %s", collectors[i], r.site, r.seq, s)
			}
			if seen[r.seq] {
				t.Errorf("%s: seq %d stored twice", s, r.seq)
			}
			seen[r.seq] = true
		}
		for q := int64(1); q <= int64(len(rows)); q++ {
			if !seen[q] {
				t.Errorf("%s: seq %d missing from its collector's history (%d rows)", s, q, len(rows))
			}
		}
		t.Logf("%s: %d measurements in %s's history, none elsewhere", s, len(rows), collectors[i])
	}
}
