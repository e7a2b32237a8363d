// Package store is the collector's history: every measurement an agent took,
// once, in SQLite, plus the latest status of each agent.
//
// Writes come in batches (one transaction per batch: 2.9k rows/s one row per
// transaction against 86k rows/s in batches of 100 on a test machine) through
// one writer connection; reads use a separate pool. A Store is safe for
// concurrent use; Close it after the writers have stopped.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/hubmon/hubmon/agent/wire"
)

const schema = `
CREATE TABLE IF NOT EXISTS measurements (
	message_id  TEXT    NOT NULL,
	site        TEXT    NOT NULL,
	agent_id    TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	probe       TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	measured_at INTEGER NOT NULL, -- unix nanoseconds, UTC, the agent's clock
	received_at INTEGER NOT NULL, -- unix nanoseconds, UTC, the collector's clock
	success     INTEGER NOT NULL,
	error       TEXT    NOT NULL,
	-- speedtest figures, NULL when not measured
	download_bits_per_second REAL,
	upload_bits_per_second   REAL,
	latency_seconds          REAL,
	jitter_seconds           REAL,
	download_bytes           INTEGER,
	upload_bytes             INTEGER,
	payload     TEXT    NOT NULL, -- the message as received
	-- a message id is one site's: another site reusing it does not make
	-- that site's message a duplicate
	PRIMARY KEY (site, message_id)
) STRICT;
CREATE INDEX IF NOT EXISTS measurements_site_time ON measurements(site, kind, measured_at);

CREATE TABLE IF NOT EXISTS agents (
	site         TEXT    PRIMARY KEY,
	agent_id     TEXT    NOT NULL,
	state        TEXT    NOT NULL,
	session      INTEGER NOT NULL,
	connected_at INTEGER NOT NULL,
	sent_at      INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL, -- as of its status; see last_seen
	payload      TEXT    NOT NULL  -- the status as received: version, outbox, budget ...
) STRICT;

-- The probes each site has measured with, for Recent. (Version 1 had an
-- index on measurements(site, probe, measured_at) instead: a third index
-- as wide as the fleet, one more page written a message.) last_at is the
-- latest measured_at, kept to within a day (probesLastAtSlack): Recent
-- skips a probe that stopped (removed or renamed) without reading its kind's
-- month of rows.
CREATE TABLE IF NOT EXISTS probes (
	site    TEXT    NOT NULL,
	probe   TEXT    NOT NULL,
	kind    TEXT    NOT NULL,
	last_at INTEGER NOT NULL, -- unix nanoseconds
	PRIMARY KEY (site, probe, kind)
) STRICT, WITHOUT ROWID;

-- When each site was last heard from, by any message. Apart from agents,
-- whose rows carry the status: updating those rewrote one wide row a site
-- every commit. The latest of last_seen.at and agents.last_seen_at counts.
CREATE TABLE IF NOT EXISTS last_seen (
	site TEXT    PRIMARY KEY,
	at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`

// migrateV1 brings a version 1 history to version 2 (after schema, in the
// same transaction). Reading every row for the probes takes a while on a
// long history, once.
const migrateV1 = `
INSERT OR IGNORE INTO probes(site, probe, kind, last_at)
	SELECT site, probe, kind, max(measured_at) FROM measurements GROUP BY site, probe, kind;
INSERT OR IGNORE INTO last_seen(site, at) SELECT site, last_seen_at FROM agents;
DROP INDEX IF EXISTS measurements_probe_time;
`

// Store is the collector's SQLite history.
type Store struct {
	path string
	w    *sql.DB // the one writer
	r    *sql.DB // readers
}

// writerDriver is the SQLite driver of the writer's connection: it lets the
// write-ahead log grow to 64 MiB (16,384 pages) before SQLite copies it back
// into the database. A message dirties a page of each index of its site;
// with the default 1,000 pages a fleet's commits checkpointed every few
// hundred messages and copied each page once for every few messages, not
// once a checkpoint (bench: BenchmarkCommitFleet).
const writerDriver = "sqlite3-hubmon-writer"

func init() {
	sql.Register(writerDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA wal_autocheckpoint = 16384", nil)
		return err
	}})
}

func dsn(path string, readOnly bool) string {
	d := "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate"
	if readOnly {
		d += "&mode=ro"
	} else {
		// 16 MiB of page cache for the writer (SQLite's default is 2 MiB):
		// fewer of the index pages a fleet's messages land on are read
		// back from the file (with the larger log: 51 -> 35 µs of CPU a
		// message at 2,000 sites, 118 -> 71 µs at 20,000)
		d += "&_cache_size=-16384"
	}
	return d
}

// Open opens or creates the database at path and checks that it is usable.
func Open(path string) (*Store, error) {
	if _, err := os.Stat(path); err == nil {
		// refuse to touch a file that is not ours rather than "repair" it
		if err := checkHeader(path); err != nil {
			return nil, fmt.Errorf("open store %q: %w", path, err)
		}
	}
	if err := checkWritable(path); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	w, err := sql.Open(writerDriver, dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{path: path, w: w}
	if err := s.init(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 16)
	n, _ := f.Read(hdr)
	if n == 0 {
		return nil // empty file: SQLite makes it a database
	}
	if string(hdr[:n]) != "SQLite format 3\x00" {
		return errors.New("not an SQLite database")
	}
	return nil
}

// checkWritable says plainly when the file or its directory cannot be
// written (a read-only mount, permissions): SQLite's own words for it are
// "unable to open database file: no such file or directory" (it cannot make
// its -wal and -shm files next to the database).
func checkWritable(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cannot write the file: %w", err)
	}
	dir := filepath.Dir(path)
	f, err = os.CreateTemp(dir, ".hubmon-write-check-*")
	if err != nil {
		return fmt.Errorf("cannot create files in its directory (SQLite keeps its -wal and -shm files there): %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// probesLastAtSlack is how far probes.last_at may lag the latest
// measurement of its probe.
const probesLastAtSlack = 24 * time.Hour

// schemaVersion is the history's layout, in PRAGMA user_version. A change
// of layout comes with a migration here, never a silent mismatch.
// Version 2: the probes and last_seen tables, and no index on
// measurements(site, probe, measured_at) (migrateV1).
const schemaVersion = 2

func (s *Store) init() error {
	ctx := context.Background()
	var version, tables int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'").Scan(&tables); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	switch {
	case version == 0 && tables > 0:
		return errors.New("the file has tables but no hubmon schema version (made by a development build?): move it aside")
	case version > schemaVersion:
		return fmt.Errorf("history schema version %d is newer than this collector's %d: upgrade the collector", version, schemaVersion)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer tx.Rollback()
	ddl := schema
	if version == 1 {
		ddl += migrateV1
	}
	if _, err := tx.ExecContext(ctx, ddl+fmt.Sprintf("PRAGMA user_version = %d;", schemaVersion)); err != nil {
		return fmt.Errorf("create schema (from version %d): %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema (from version %d): %w", version, err)
	}
	// No full integrity check here: on a history of gigabytes it would delay
	// every start by minutes. SQLite reports damage when it meets it, and a
	// failed commit is never acknowledged.
	return nil
}

// Item is one message to commit: a measurement (with its payload as received)
// or a status.
type Item struct {
	Measurement *wire.Measurement
	Status      *wire.Status
	Payload     []byte
	ReceivedAt  time.Time
}

// Outcome says what Commit did with one item.
type Outcome int

const (
	// Stored: a new measurement, or a status that replaced the stored one.
	Stored Outcome = iota
	// Duplicate: the measurement's message id was already stored.
	Duplicate
	// Stale: a status older than the stored one (by connection, then time).
	Stale
)

// Commit writes items in one transaction and reports what happened to each.
// Either every item is committed or none is (and the error says why).
func (s *Store) Commit(ctx context.Context, items []Item) ([]Outcome, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("commit: begin: %w", err)
	}
	defer tx.Rollback()
	insM, err := tx.PrepareContext(ctx, `INSERT INTO measurements(message_id, site, agent_id, seq, probe, kind,
		measured_at, received_at, success, error, download_bits_per_second, upload_bits_per_second,
		latency_seconds, jitter_seconds, download_bytes, upload_bytes, payload)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,CAST(? AS TEXT)) ON CONFLICT(site, message_id) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer insM.Close()
	// A status replaces the stored one if it comes from another agent (a
	// replaced Pi: by connection time), or from the same agent and a later
	// session (a counter the agent keeps, whatever its clock), or from the
	// same session and is newer or final (offline).
	upS, err := tx.PrepareContext(ctx, `INSERT INTO agents(site, agent_id, state, session, connected_at, sent_at,
		last_seen_at, payload) VALUES (?,?,?,?,?,?,?,CAST(? AS TEXT))
		ON CONFLICT(site) DO UPDATE SET agent_id=excluded.agent_id, state=excluded.state, session=excluded.session,
			connected_at=excluded.connected_at, sent_at=excluded.sent_at,
			last_seen_at=max(last_seen_at, excluded.last_seen_at), payload=excluded.payload
		WHERE (excluded.agent_id != agents.agent_id AND excluded.connected_at >= agents.connected_at)
		   OR (excluded.agent_id = agents.agent_id AND (excluded.session > agents.session
		       OR (excluded.session = agents.session
		           AND (excluded.state = 'offline' OR (agents.state = 'online' AND excluded.sent_at >= agents.sent_at)))))`)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer upS.Close()
	seen, err := tx.PrepareContext(ctx, `INSERT INTO last_seen(site, at) VALUES (?, ?)
		ON CONFLICT(site) DO UPDATE SET at = max(at, excluded.at)`)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer seen.Close()
	// a probe's row is written when it is new, and after that at most once
	// a day: a row rewritten each commit would cost what last_seen saves
	insP, err := tx.PrepareContext(ctx, `INSERT INTO probes(site, probe, kind, last_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET last_at = excluded.last_at WHERE excluded.last_at > probes.last_at + ?`)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer insP.Close()

	out := make([]Outcome, len(items))
	lastSeen := map[string]int64{} // site -> latest received_at of its messages here
	type probeKey struct{ site, probe, kind string }
	probes := map[probeKey]int64{} // the latest measured_at of each probe here
	for i, it := range items {
		recv := it.ReceivedAt.UTC().UnixNano()
		switch {
		case it.Measurement != nil:
			m := it.Measurement
			var st wire.Speedtest
			if m.Speedtest != nil {
				st = *m.Speedtest
			}
			res, err := insM.ExecContext(ctx, m.MessageID, m.Site, m.AgentID, m.Seq, m.Probe, m.Kind,
				m.MeasuredAt.UTC().UnixNano(), recv, m.Success, m.Error,
				st.DownloadBitsPerSecond, st.UploadBitsPerSecond, st.LatencySeconds, st.JitterSeconds,
				speedtestBytes(m.Speedtest, st.DownloadBytes), speedtestBytes(m.Speedtest, st.UploadBytes), payloadArg(it.Payload))
			if err != nil {
				return nil, fmt.Errorf("commit: insert measurement %s: %w", m.MessageID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				out[i] = Duplicate
			}
			lastSeen[m.Site] = max(lastSeen[m.Site], recv)
			k := probeKey{m.Site, m.Probe, m.Kind}
			probes[k] = max(probes[k], m.MeasuredAt.UnixNano()) // times are after 2020 (wire checks)
		case it.Status != nil:
			st := it.Status
			payload := it.Payload
			if len(payload) == 0 {
				payload, _ = json.Marshal(st)
			}
			res, err := upS.ExecContext(ctx, st.Site, st.AgentID, st.State, st.Session, st.ConnectedAt.UTC().UnixNano(),
				st.SentAt.UTC().UnixNano(), recv, payloadArg(payload))
			if err != nil {
				return nil, fmt.Errorf("commit: status %s: %w", st.Site, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				out[i] = Stale
				lastSeen[st.Site] = max(lastSeen[st.Site], recv)
			}
		default:
			return nil, fmt.Errorf("commit: item %d is empty", i)
		}
	}
	for k, at := range probes {
		if _, err := insP.ExecContext(ctx, k.site, k.probe, k.kind, at, int64(probesLastAtSlack)); err != nil {
			return nil, fmt.Errorf("commit: probe %s/%s: %w", k.site, k.probe, err)
		}
	}
	// once a site a transaction, not once a message
	for _, site := range slices.Sorted(maps.Keys(lastSeen)) {
		if _, err := seen.ExecContext(ctx, site, lastSeen[site]); err != nil {
			return nil, fmt.Errorf("commit: last seen %s: %w", site, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// payloadArg is a payload as an argument for CAST(? AS TEXT): the bytes
// are bound as they are (string(p) would copy every payload on the Go heap
// once more, a sixth of what a message allocates), and SQLite stores them
// as the text they are (payloads are checked UTF-8 JSON). Never NULL: an
// empty payload is the empty text.
func payloadArg(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// speedtestBytes is v for a speed test and NULL for any other kind.
func speedtestBytes(st *wire.Speedtest, v int64) any {
	if st == nil {
		return nil
	}
	return v
}

// Agent is the stored state of one site's agent.
type Agent struct {
	wire.Status
	LastSeenAt time.Time
}

// Agents returns the latest status of every site's agent.
func (s *Store) Agents(ctx context.Context) ([]Agent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT a.site, max(a.last_seen_at, coalesce(l.at, 0)), a.payload
		FROM agents AS a LEFT JOIN last_seen AS l ON l.site = a.site ORDER BY a.site`)
	if err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		var a Agent
		var site, payload string
		var seen int64
		if err := rows.Scan(&site, &seen, &payload); err != nil {
			return nil, fmt.Errorf("read agents: %w", err)
		}
		if err := json.Unmarshal([]byte(payload), &a.Status); err != nil {
			return nil, fmt.Errorf("read agents: status of %s: %w", site, err)
		}
		a.Site, a.LastSeenAt = site, fromNanos(seen)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Row is one stored measurement.
type Row struct {
	wire.Measurement
	ReceivedAt time.Time
}

// Recent calls fn with, for every (site, probe, kind) measured since since,
// up to perProbe of its most recent measurements: what the metrics need
// after a restart. The rows of one probe come one after another, in no
// particular order (Fleet.Observe keeps the latest of each figure whatever
// the order). A probe not heard of since then (removed from an agent's
// config, or renamed) is left out, without reading its kind's rows
// (probes.last_at). The rows are read as they are handed over, not gathered first: at
// 20,000 sites with a month of history they are 5 million.
func (s *Store) Recent(ctx context.Context, since time.Time, perProbe int, fn func(*Row) error) error {
	// one index seek per (site, probe, kind), not a window over the whole
	// history: the rows of a kind newest first, until perProbe of the probe;
	// in the probes' order, so that nothing is sorted
	rows, err := s.r.QueryContext(ctx, `SELECT m.received_at, m.payload
		FROM probes AS p
		JOIN measurements AS m ON m.rowid IN (
			SELECT rowid FROM measurements INDEXED BY measurements_site_time
			WHERE site = p.site AND kind = p.kind AND probe = p.probe AND measured_at >= ?
			ORDER BY measured_at DESC LIMIT ?)
		WHERE p.last_at >= ?
		ORDER BY p.site, p.probe, p.kind`, since.UnixNano(), perProbe, since.Add(-probesLastAtSlack).UnixNano())
	if err != nil {
		return fmt.Errorf("read recent measurements: %w", err)
	}
	defer rows.Close()
	var payload []byte
	for rows.Next() {
		var r Row
		var received int64
		if err := rows.Scan(&received, &payload); err != nil {
			return fmt.Errorf("read recent measurements: %w", err)
		}
		if err := json.Unmarshal(payload, &r.Measurement); err != nil {
			return fmt.Errorf("read recent measurements: %w", err)
		}
		r.ReceivedAt = fromNanos(received)
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read recent measurements: %w", err)
	}
	return nil
}

// LineTotal is a running total of one line-quality stream over the whole
// history.
type LineTotal struct {
	Site, Probe, Method string
	Sent, Received      int64
	// Outages and OutageSeconds by cause (wan, lan, unknown).
	Outages       map[string]int64
	OutageSeconds map[string]float64
}

// LineTotals sums every stored line-quality summary, so the collector's
// counters start where they were after a restart.
func (s *Store) LineTotals(ctx context.Context) ([]LineTotal, error) {
	type key struct{ site, probe, method string }
	totals := map[key]*LineTotal{}
	get := func(k key) *LineTotal {
		t := totals[k]
		if t == nil {
			t = &LineTotal{Site: k.site, Probe: k.probe, Method: k.method, Outages: map[string]int64{}, OutageSeconds: map[string]float64{}}
			totals[k] = t
		}
		return t
	}
	// Outages beyond the 64 a summary lists (outages_dropped), and the time
	// outage_seconds_total has beyond the listed ones, count with cause
	// "unknown".
	rows, err := s.r.QueryContext(ctx, `SELECT site, probe, json_extract(payload, '$.linequality.method'),
		sum(json_extract(payload, '$.linequality.sent')), sum(json_extract(payload, '$.linequality.received')),
		sum(coalesce(json_extract(payload, '$.linequality.outages_dropped'), 0)),
		sum(CASE WHEN json_extract(payload, '$.linequality.outage_seconds_total') IS NULL THEN 0
			ELSE json_extract(payload, '$.linequality.outage_seconds_total') - coalesce((SELECT sum(json_extract(o.value, '$.duration_seconds'))
				FROM json_each(payload, '$.linequality.outages') AS o), 0) END)
		FROM measurements WHERE kind = 'linequality' AND json_extract(payload, '$.linequality.method') IS NOT NULL
		GROUP BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("line totals: %w", err)
	}
	for rows.Next() {
		var k key
		var sent, recv, dropped sql.NullInt64
		var extra sql.NullFloat64
		if err := rows.Scan(&k.site, &k.probe, &k.method, &sent, &recv, &dropped, &extra); err != nil {
			rows.Close()
			return nil, fmt.Errorf("line totals: %w", err)
		}
		t := get(k)
		t.Sent, t.Received = sent.Int64, recv.Int64
		t.Outages[wire.CauseUnknown] += dropped.Int64
		t.OutageSeconds[wire.CauseUnknown] += max(0, extra.Float64)
	}
	rows.Close()
	rows, err = s.r.QueryContext(ctx, `SELECT m.site, m.probe, json_extract(m.payload, '$.linequality.method'),
		json_extract(o.value, '$.cause'), count(*), sum(json_extract(o.value, '$.duration_seconds'))
		FROM measurements AS m, json_each(m.payload, '$.linequality.outages') AS o
		WHERE m.kind = 'linequality' GROUP BY 1, 2, 3, 4`)
	if err != nil {
		return nil, fmt.Errorf("line totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		var cause string
		var n int64
		var secs float64
		if err := rows.Scan(&k.site, &k.probe, &k.method, &cause, &n, &secs); err != nil {
			return nil, fmt.Errorf("line totals: %w", err)
		}
		t := get(k)
		t.Outages[cause] += n
		t.OutageSeconds[cause] += secs
	}
	out := make([]LineTotal, 0, len(totals))
	for _, t := range totals {
		out = append(out, *t)
	}
	return out, rows.Err()
}

// Count returns how many measurements are stored. For tests and checks.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM measurements`).Scan(&n)
	return n, err
}

// SizeBytes is the size of the database and its WAL on disk.
func (s *Store) SizeBytes() int64 {
	var total int64
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.r.PingContext(ctx) }

// Close closes the database. Call it after the writers have stopped.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
