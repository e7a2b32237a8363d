package main

// The smoke test of the simulator: the real fleet command publishes through a
// real Mosquitto (the bench configuration) to the real hubmon-collector, and
// every measurement it sent must be in the collector's history exactly once
// and acknowledged, so that the simulator (and the bench configuration)
// cannot rot unnoticed. 127.0.0.1 only.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/hubmon/hubmon/bench/internal/rig"
)

const password = "bench-smoke-secret"

func build(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Fatal("mosquitto not found: install Debian's mosquitto package (.ci/run does)")
	}
	dir := t.TempDir()
	collectorBin := build(t, dir, "../../collector", "hubmon-collector")
	fleetBin := build(t, dir, ".", "fleet")

	broker, err := rig.StartBroker(rig.BrokerOptions{RepoRoot: "../..", Dir: filepath.Join(dir, "broker"), Password: password, SimPublishers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Kill()
	coll, err := rig.StartCollector(rig.CollectorOptions{Bin: collectorBin, Dir: filepath.Join(dir, "collector"), BrokerURL: broker.URL, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		coll.Kill()
		if t.Failed() {
			t.Logf("---- collector log ----\n%s\n---- mosquitto log ----\n%s", coll.Tail(4000), broker.Tail(2000))
		}
	}()

	ids := filepath.Join(dir, "ids.txt")
	const sites, count = 50, 400
	cmd := exec.Command(fleetBin, "-broker", broker.URL, "-connections", "2", "-sites", strconv.Itoa(sites), "-count", strconv.Itoa(count),
		"-duration", "30s", "-ack-timeout", "30s", "-ids-out", ids)
	cmd.Env = append(os.Environ(), "HUBMON_FLEETSIM_PASSWORD="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var s summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("fleet printed %q (%v); stderr:\n%s", stdout.String(), runErr, stderr.String())
	}
	t.Logf("fleet: %s", strings.TrimSpace(stdout.String()))

	// what the simulator sent, and how often each was acknowledged
	sent := map[string]int{} // site/id -> acks
	f, err := os.Open(ids)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		n, _ := strconv.Atoi(fields[2])
		sent[fields[0]+"/"+fields[1]] = n
	}
	f.Close()

	// the history, read as the collector wrote it
	db, err := sql.Open("sqlite3", "file:"+coll.DB+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT site, message_id FROM measurements`)
	if err != nil {
		t.Fatal(err)
	}
	inHistory := map[string]int{}
	for rows.Next() {
		var site, id string
		if err := rows.Scan(&site, &id); err != nil {
			t.Fatal(err)
		}
		inHistory[site+"/"+id]++
	}
	rows.Close()

	var stored, lost, duplicated, unacked, stray int
	for k, acks := range sent {
		switch n := inHistory[k]; {
		case n == 0:
			lost++
		case n > 1:
			duplicated++
		default:
			stored++
		}
		if acks == 0 {
			unacked++
		} else if acks > 1 {
			duplicated++
		}
	}
	for k := range inHistory {
		if _, ok := sent[k]; !ok {
			stray++
		}
	}
	t.Logf("sent %d (and %d statuses), stored %d, lost %d, duplicated %d, unacked %d, in history but not sent %d",
		len(sent), s.Statuses, stored, lost, duplicated, unacked, stray)
	if runErr != nil {
		t.Errorf("fleet: %v\n%s", runErr, stderr.String())
	}
	if s.Sent != count || s.Measurements != len(sent) || s.Measurements+s.Statuses != count || s.Statuses < sites {
		t.Errorf("fleet sent %d (%d measurements, %d statuses), ids file has %d: want %d messages, a status from each of %d sites",
			s.Sent, s.Measurements, s.Statuses, len(sent), count, sites)
	}
	if lost+duplicated+unacked+stray > 0 || stored != len(sent) || s.Acked != len(sent) {
		t.Errorf("want every measurement stored once and acknowledged once")
	}

	// the collector's own count agrees, statuses included
	sc2, err := coll.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	if got := rig.Sum(sc2.Body, "hubmon_collector_messages_total", "kind=measurement", "result=stored"); int(got) != len(sent) {
		t.Errorf("collector counted %v measurements stored, want %d", got, len(sent))
	}
	if got := rig.Sum(sc2.Body, "hubmon_collector_messages_total", "kind=status"); int(got) != s.Statuses {
		t.Errorf("collector counted %v statuses, want %d", got, s.Statuses)
	}
	if got := rig.Sum(sc2.Body, "hubmon_agent_up"); int(got) != sites {
		t.Errorf("hubmon_agent_up sums to %v, want %d sites online", got, sites)
	}
	coll.Signal(syscall.SIGTERM)
	select {
	case <-coll.Done():
		if coll.Err() != nil {
			t.Errorf("collector exited with %v after SIGTERM", coll.Err())
		}
	case <-time.After(15 * time.Second):
		t.Error("collector did not stop within 15s of SIGTERM")
	}
}
