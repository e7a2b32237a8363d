package main_test

// The collector's database locked by another process, read-only or corrupt:
// at start a clear error naming the file and a non-zero exit; while running,
// a failed commit is never acknowledged (the measurements stay with the
// agents and the broker), and the collector says it is not ready or exits
// non-zero.

import (
	"context"
	"database/sql"
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
