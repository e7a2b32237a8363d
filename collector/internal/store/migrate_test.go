package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// schemaV1 is the layout of schema version 1, as it shipped.
const schemaV1 = `
CREATE TABLE measurements (
	message_id  TEXT    NOT NULL,
	site        TEXT    NOT NULL,
	agent_id    TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	probe       TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	measured_at INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	success     INTEGER NOT NULL,
	error       TEXT    NOT NULL,
	download_bits_per_second REAL,
	upload_bits_per_second   REAL,
	latency_seconds          REAL,
	jitter_seconds           REAL,
	download_bytes           INTEGER,
	upload_bytes             INTEGER,
	payload     TEXT    NOT NULL,
	PRIMARY KEY (site, message_id)
) STRICT;
CREATE INDEX measurements_site_time ON measurements(site, kind, measured_at);
CREATE INDEX measurements_probe_time ON measurements(site, probe, measured_at);
CREATE TABLE agents (
	site         TEXT    PRIMARY KEY,
	agent_id     TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	session      INTEGER NOT NULL,
	connected_at INTEGER NOT NULL,
	sent_at      INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	payload      TEXT    NOT NULL
) STRICT;
PRAGMA user_version = 1;
`

// A version 1 history is upgraded in place when the collector opens it:
// its probes and last-seen times carried over, the probe index dropped, and
// what it held reads as before.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hubmon.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	// leeds-1: a speed test, and two DNS probes measuring in turn; york-2:
	// one DNS probe, and no status yet
	type row struct {
		site, probe, kind string
		at                time.Time
	}
	var rows []row
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Minute)
		rows = append(rows, row{"leeds-1", "dns-a", wire.KindDNS, at}, row{"leeds-1", "dns-b", wire.KindDNS, at.Add(time.Second)},
			row{"york-2", "dns-a", wire.KindDNS, at})
	}
	rows = append(rows, row{"leeds-1", "local", wire.KindSpeedtest, t0})
	for i, r := range rows {
		m := &wire.Measurement{Version: 1, MessageID: fmt.Sprintf("MSG%06d", i), Site: r.site, AgentID: "AGENT0001", Seq: int64(i + 1),
			Probe: r.probe, Kind: r.kind, MeasuredAt: r.at, Success: true}
		p, _ := json.Marshal(m)
		if _, err := db.Exec(`INSERT INTO measurements(message_id, site, agent_id, seq, probe, kind, measured_at, received_at,
			success, error, payload) VALUES (?,?,?,?,?,?,?,?,1,'',?)`, m.MessageID, m.Site, m.AgentID, m.Seq, m.Probe, m.Kind,
			r.at.UnixNano(), r.at.UnixNano(), string(p)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := json.Marshal(status(wire.StateOnline, 1, t0, t0))
	seen := t0.Add(time.Hour)
	if _, err := db.Exec(`INSERT INTO agents VALUES ('leeds-1', 'AGENT0001', 'online', 1, ?, ?, ?, ?)`,
		t0.UnixNano(), t0.UnixNano(), seen.UnixNano(), string(st)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var version int
	if err := s.w.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Fatalf("user_version %d (%v), want %d", version, err, schemaVersion)
	}
	var idx int
	s.w.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'measurements_probe_time'`).Scan(&idx)
	if idx != 0 {
		t.Error("the probe index is still there")
	}
	var probes []string
	pr, err := s.w.Query(`SELECT site || '/' || probe || '/' || kind, last_at FROM probes ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for pr.Next() {
		var p string
		var at int64
		pr.Scan(&p, &at)
		probes = append(probes, fmt.Sprintf("%s@%s", p, time.Unix(0, at).Sub(t0)))
	}
	pr.Close()
	if got, want := strings.Join(probes, " "), "leeds-1/dns-a/dns@2m0s leeds-1/dns-b/dns@2m1s leeds-1/local/speedtest@0s york-2/dns-a/dns@2m0s"; got != want {
		t.Errorf("probes %q, want %q", got, want)
	}
	agents, err := s.Agents(ctx)
	if err != nil || len(agents) != 1 || !agents[0].LastSeenAt.Equal(seen) {
		t.Fatalf("Agents = %+v, %v; want leeds-1 last seen %v", agents, err, seen)
	}
	// the newest two of each probe, newest first within a probe
	var got []string
	for _, r := range recent(t, s, t0.Add(-time.Hour), 2) {
		got = append(got, fmt.Sprintf("%s/%s@%s", r.Site, r.Probe, r.MeasuredAt.Sub(t0)))
	}
	if g, want := strings.Join(got, " "), "leeds-1/dns-a@2m0s leeds-1/dns-a@1m0s leeds-1/dns-b@2m1s leeds-1/dns-b@1m1s leeds-1/local@0s york-2/dns-a@2m0s york-2/dns-a@1m0s"; g != want {
		t.Errorf("Recent:\n got %s\nwant %s", g, want)
	}

	// a later message moves the last-seen time on; a new probe is listed
	m := meas("MSG100000", 100, t0.Add(2*time.Hour), nil)
	m.Probe = "wired"
	if _, err := s.Commit(ctx, []Item{item(m, t0.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if agents, _ := s.Agents(ctx); !agents[0].LastSeenAt.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("last seen after a new message: %v", agents[0].LastSeenAt)
	}
	if rows := recent(t, s, t0.Add(-time.Hour), 1); len(rows) != 5 {
		t.Errorf("Recent with a new probe: %d rows, want 5", len(rows))
	}
	s.Close()

	// opened again: nothing to migrate, nothing lost
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, _ := s2.Count(ctx); n != int64(len(rows)+1) {
		t.Errorf("count %d after reopening, want %d", n, len(rows)+1)
	}
}

// The report command, which never writes, names the way out of a history
// of an older version.
func TestOpenReadOnlyOlderVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hubmon.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenReadOnly(path)
	if err == nil || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "upgrades the history") {
		t.Fatalf("OpenReadOnly of a version 1 history: %v", err)
	}
}

// probes.last_at follows a probe's latest measurement to within a day, and
// is written when it moves on by more than that, not at every commit.
func TestProbesLastAt(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	lastAt := func() time.Time {
		t.Helper()
		var at int64
		if err := s.w.QueryRow(`SELECT last_at FROM probes WHERE site = 'leeds-1' AND probe = 'local'`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return time.Unix(0, at).UTC()
	}
	for i, step := range []struct {
		at   time.Duration // measured_at - t0
		want time.Duration // last_at - t0
	}{
		{0, 0},
		{time.Hour, 0},                   // within a day: not written
		{-48 * time.Hour, 0},             // an older one (an outbox draining): never back
		{25 * time.Hour, 25 * time.Hour}, // more than a day on
		{25*time.Hour + time.Minute, 25 * time.Hour}, // and so on
	} {
		m := meas(fmt.Sprintf("MSG%06d", i), int64(i+1), t0.Add(step.at), nil)
		if _, err := s.Commit(ctx, []Item{item(m, t0.Add(step.at))}); err != nil {
			t.Fatal(err)
		}
		if got := lastAt(); !got.Equal(t0.Add(step.want)) {
			t.Errorf("step %d: last_at %v, want %v", i, got.Sub(t0), step.want)
		}
	}
	// a probe last heard of before since (less the slack) is not read; one
	// within the slack is
	if rows := recent(t, s, t0.Add(25*time.Hour+probesLastAtSlack+time.Second), 10); len(rows) != 0 {
		t.Errorf("Recent after the probe stopped: %d rows", len(rows))
	}
	if rows := recent(t, s, t0.Add(25*time.Hour+time.Second), 10); len(rows) != 1 {
		t.Errorf("Recent since the last measurement: %d rows, want 1", len(rows))
	}
}
