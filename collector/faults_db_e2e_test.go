package main_test

// The collector's database locked by another process, read-only or corrupt:
// at start a clear error naming the file and a non-zero exit; while running,
// a failed commit is never acknowledged (the measurements stay with the
// agents and the broker), and the collector says it is not ready or exits
// non-zero.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/collector/internal/store"
)

// makeHistory creates a valid history at path with a few rows in it.
func makeHistory(t *testing.T, path string) {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Hour)
	var items []store.Item
	for i := range 20 {
		m := speedtest("fault-hub-9", int64(i+1), now.Add(time.Duration(i)*time.Minute), 20e6, 5e6)
		items = append(items, store.Item{Measurement: &m, Payload: []byte("{}"), ReceivedAt: m.MeasuredAt})
	}
	if _, err := st.Commit(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// lockHistory holds a write transaction on path from this process until the
// returned function is called.
func lockHistory(t *testing.T, path string) (unlock func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=exclusive&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE agents SET last_seen_at = last_seen_at`); err != nil {
		t.Fatal(err)
	}
	var once bool
	unlock = func() {
		if !once {
			once = true
			tx.Rollback()
			db.Close()
		}
	}
	t.Cleanup(unlock)
	return unlock
}

// waitExit waits up to d for p to exit and returns its exit code.
func waitExit(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %s:\n%s", p.name, d, p.output())
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
	}
}

// TestFaultCollectorDatabaseAtStart: a history locked by another process,
// on a read-only file system, full of garbage, or with a damaged schema page:
// the collector exits non-zero at once, naming the file and the problem.
func TestFaultCollectorDatabaseAtStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fleet)
		want  string
	}{
		{"locked", func(t *testing.T, f *fleet) {
			makeHistory(t, f.db)
			lockHistory(t, f.db)
		}, "database is locked"},
		{"read-only", func(t *testing.T, f *fleet) {
			makeHistory(t, f.db)
			remount(t, filepath.Dir(f.db), "ro")
			t.Cleanup(func() { remount(t, filepath.Dir(f.db), "rw") })
		}, "read-only file system"},
		{"garbage", func(t *testing.T, f *fleet) {
			writeFile(t, f.db, strings.Repeat("this is not a database\n", 1000))
		}, "not an SQLite database"},
		{"corrupt", func(t *testing.T, f *fleet) {
			makeHistory(t, f.db)
			b, err := os.ReadFile(f.db)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 4096 && i < len(b); i++ { // the schema's b-tree page, after the file header
				b[i] = 0xA5
			}
			writeFile(t, f.db, string(b))
		}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, fleetOptions{})
			if tc.name == "read-only" {
				disk := mountTmpfs(t, "16m")
				f.db = filepath.Join(disk, "hubmon.db")
				writeFile(t, f.collectorConf, strings.Replace(readFile(t, f.collectorConf), "database: "+filepath.Join(f.dir, "hubmon.db"), "database: "+f.db, 1))
			}
			tc.setup(t, f)
			p := start(t, "collector", nil, f.collectorBin, "run", "-config", f.collectorConf)
			code := waitExit(t, p, 30*time.Second)
			out := p.output()
			if code == 0 || !strings.Contains(out, f.db) || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want non-zero with an error naming %s and saying %q:\n%s", code, f.db, tc.want, out)
			}
			t.Logf("fault=history_%s_at_start injected=1 exit=%d error=%q", tc.name, code, lastLine(out))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// ready reports whether the collector's /-/ready answers 200, and its body.
func (f *fleet) ready() (bool, string) {
	code, body, err := get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", f.httpPort))
	return err == nil && code == 200, string(body)
}

// storeErrors is hubmon_collector_messages_total{result="store_error"},
// measurements and statuses.
func (f *fleet) storeErrors() float64 {
	mfs, _ := scrape(f.tb, f.metricsURL())
	var total float64
	for _, kind := range []string{"measurement", "status"} {
		v, _ := sample(mfs, "hubmon_collector_messages_total", map[string]string{"kind": kind, "result": "store_error"})
		total += v
	}
	return total
}

// TestFaultCollectorDatabaseWhileRunning breaks the history under a running
// collector while an agent publishes: its disk fills to the last byte
// (behind Mosquitto), or another process holds a write lock longer than the
// collector's busy timeout (embedded broker). (A
// file system cannot be made read-only under a process writing to it: Linux
// refuses the remount while files are open for writing; a read-only history
// is tested at start.)
// Failed commits must not be acknowledged: the measurements wait in the
// agent's outbox or the broker's queue. The collector must say it is not
// ready (embedded broker), or exit non-zero (Mosquitto: its messages stay in
// its persistent session); once the history is writable again everything
// arrives once.
func TestFaultCollectorDatabaseWhileRunning(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mosquitto bool
		lock      bool
	}{{"disk-full/mosquitto", true, false}, {"locked/embedded", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			disk := mountTmpfs(t, "64m")
			f := newFleet(t, fleetOptions{mosquitto: tc.mosquitto, agents: 1, probes: 8, prefill: 100})
			f.db = filepath.Join(disk, "hubmon.db")
			writeFile(t, f.collectorConf, strings.Replace(readFile(t, f.collectorConf), "database: "+filepath.Join(f.dir, "hubmon.db"), "database: "+f.db, 1))
			f.startCollector()
			f.startAgents()
			f.waitDelivered(60*time.Second, false)

			var repair func()
			if tc.lock {
				repair = lockHistory(t, f.db)
			} else {
				// empty the write-ahead log first: a commit then needs room
				// for it to grow (it would otherwise reuse the log's space)
				db := openSQLite(t, f.db)
				var busy, pages, done int
				if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &pages, &done); err != nil || busy != 0 {
					t.Fatalf("checkpoint the history: busy %d, %v", busy, err)
				}
				db.Close()
				filler := fillDisk(t, disk)
				repair = func() {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				}
			}
			seq := lastSeq(t, f.agents[0].outbox)
			waitFor(t, "new measurements while the history cannot be written", 60*time.Second, func() bool {
				return lastSeq(t, f.agents[0].outbox) > seq
			})
			if tc.mosquitto {
				if code := waitExit(t, f.collector, 60*time.Second); code == 0 {
					t.Errorf("the collector exited 0 when it could not commit")
				}
				t.Logf("the collector exited: %s", lastLine(f.collector.output()))
			} else {
				waitFor(t, "a commit to fail", 60*time.Second, func() bool { return f.storeErrors() >= 1 })
				waitFor(t, "/-/ready to say the history cannot be written", 30*time.Second, func() bool {
					ok, _ := f.ready()
					return !ok
				})
				_, body := f.ready()
				t.Logf("/-/ready: %s", strings.TrimSpace(body))
			}
			// nothing failed was acknowledged: the agent still has it
			if tl := f.account(false); tl.lost == 0 {
				t.Errorf("everything is in the history although it could not be written: %+v", tl)
			}
			repair()
			if tc.mosquitto {
				f.startCollector()
			}
			tl := f.waitDelivered(90*time.Second, false)
			waitFor(t, "/-/ready again", 30*time.Second, func() bool { ok, _ := f.ready(); return ok })
			tl.report(t, "history_"+strings.ReplaceAll(tc.name, "/", "_")+"_while_running", 1)
		})
	}
}
