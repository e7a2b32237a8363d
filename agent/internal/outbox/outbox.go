// Package outbox is the agent's durable store-and-forward buffer: every
// measurement is committed here before it is published, and deleted only when
// the collector acknowledges that it is in its history.
//
// The model is telegraf's output buffer (add, take a batch, accept) with a size
// bound and a persistent counter of what was dropped, on SQLite with
// synchronous=FULL so a committed measurement survives a power cut.
//
// A full disk is a bound too (RIPE Atlas probes bound their spool by the free
// disk): SQLite needs room to write even a deletion, so the outbox keeps a
// reserve file of ReserveBytes next to the database. When a write fails
// because the disk is full, Add gives the reserve back, moves the write-ahead
// log into the database and drops the oldest measurements (counted as
// dropped) until the new one fits; the reserve is made again once the disk
// has room. The agent goes on measuring and publishing the newest.
//
// An Outbox is safe for concurrent use. Close it after every other user has
// stopped.
package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/hubmon/hubmon/agent/wire"
)

const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS outbox (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id  TEXT    NOT NULL UNIQUE,
	measured_at INTEGER NOT NULL, -- unix nanoseconds, UTC
	payload     BLOB    NOT NULL
);
`

// Entry is one measurement waiting for the collector's acknowledgement.
type Entry struct {
	Seq       int64
	MessageID string
	Payload   []byte
}

// Outbox is the agent's SQLite outbox.
type Outbox struct {
	db      *sql.DB
	lock    *os.File // the shared lock of InUse; nil where there is none
	path    string
	maxRows int64
	agentID string
	siteID  string

	mu      sync.Mutex
	session int64 // the last session number given, 0 before the first
	// reserveMissing: the reserve file is not there (given back to a full
	// disk, or never made); Add makes it again when the disk has room
	reserveMissing bool
	// diskFull: a write failed for want of space and the reserve has not
	// been made again since: Add drops the oldest for every new one, so
	// that the outbox does not grow into the space the reserve gave back
	diskFull bool
}

// ReserveBytes is the size of the reserve file kept next to the outbox
// (<path>.reserve) and given back when the disk is full: room for SQLite to
// drop the oldest measurements and add the newest (its write-ahead log is
// checkpointed every 1000 pages of 4 KiB).
const ReserveBytes = 8 << 20

// DSN returns the go-sqlite3 data source name used for path: WAL, fsync on
// every commit (the driver's default NORMAL can lose the last commits on a power
// cut), a busy timeout and immediate write transactions.
func DSN(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate&_foreign_keys=on"
}

// Open opens (creating if needed) the outbox at path for site. maxRows bounds
// the number of waiting measurements: adding beyond it drops the oldest and
// counts them. The Outbox holds a shared lock until Close, which InUse sees.
func Open(path, site string, maxRows int) (*Outbox, error) {
	if maxRows < 1 {
		return nil, fmt.Errorf("open outbox %q: max rows must be positive (got %d)", path, maxRows)
	}
	lock, err := lockShared(path)
	if err != nil {
		return nil, fmt.Errorf("open outbox %q: %w", path, err)
	}
	db, err := sql.Open("sqlite3", DSN(path))
	if err != nil {
		unlock(lock)
		return nil, fmt.Errorf("open outbox %q: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises writes anyway
	o := &Outbox{db: db, lock: lock, path: path, maxRows: int64(maxRows), siteID: site}
	if err := o.init(); err != nil {
		db.Close()
		unlock(lock)
		var se sqlite3.Error
		if errors.As(err, &se) && (se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB) || errors.Is(err, errIntegrity) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open outbox %q: %w", path, err)
	}
	o.makeReserve() // best effort: a full disk at start leaves it for later
	return o, nil
}

// ErrCorrupt is returned by Open when the file is damaged (an SD card's last
// words): see Recover.
var ErrCorrupt = errors.New("outbox is corrupt")

var errIntegrity = errors.New("integrity check failed")

// Recover moves a corrupt outbox (and its WAL) aside, keeping it for
// inspection, and opens a new one. What was in it is lost; the caller logs
// that loudly. It returns the name the old file was moved to.
func Recover(path, site string, maxRows int, now time.Time) (*Outbox, string, error) {
	aside := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405Z"))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("move corrupt outbox aside: %w", err)
		}
	}
	o, err := Open(path, site, maxRows)
	return o, aside, err
}

func (o *Outbox) init() error {
	ctx := context.Background()
	if _, err := o.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var res string
	if err := o.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: %s", errIntegrity, res)
	}
	// The agent id is made once per outbox and kept: it is the agent's identity
	// in every message. Hardware serials are not trusted (UNICEF Giga saw 689
	// schools share one).
	id, err := o.meta(ctx, "agent_id")
	if err != nil {
		return err
	}
	if id == "" {
		id = rand.Text()
		if _, err := o.db.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('agent_id', ?)`, id); err != nil {
			return fmt.Errorf("store agent id: %w", err)
		}
	}
	o.agentID = id
	return nil
}

func (o *Outbox) meta(ctx context.Context, key string) (string, error) {
	var v string
	err := o.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

// NextSession counts a new MQTT connection and returns its number (1, 2,
// ...): the collector orders the agent's statuses by it, whatever the clock.
// On a disk too full to write it, the number is counted in memory (still
// above every number given before), so that a full disk does not keep the
// agent from publishing.
func (o *Outbox) NextSession(ctx context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.session + 1
	var n int64
	err := o.db.QueryRowContext(ctx, `INSERT INTO meta(key, value) VALUES ('session', ?)
		ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER) + 1, ?) RETURNING CAST(value AS INTEGER)`, next, next).Scan(&n)
	if isFull(err) {
		v, rerr := o.meta(ctx, "session")
		if rerr != nil {
			return 0, fmt.Errorf("count session: %w", err)
		}
		var stored int64
		fmt.Sscan(v, &stored)
		n, err = max(stored+1, next), nil
	}
	if err != nil {
		return 0, fmt.Errorf("count session: %w", err)
	}
	o.session = n
	return n, nil
}

// AgentID is this agent's persistent identity.
func (o *Outbox) AgentID() string { return o.agentID }

// Add commits m: it fills in Version, MessageID (if empty), Site, AgentID and
// Seq, encodes it and stores it in one transaction. If the outbox is full, the
// oldest entries are dropped and counted in the same transaction; so are they
// when the disk is full (see the package comment). When Add returns nil the
// measurement is on disk.
func (o *Outbox) Add(ctx context.Context, m *wire.Measurement) error {
	m.Version = wire.Version
	m.Site = o.siteID
	m.AgentID = o.agentID
	if m.MessageID == "" {
		m.MessageID = rand.Text()
	}
	m.MeasuredAt = m.MeasuredAt.UTC()
	o.remakeReserve() // if it was given back and the disk has room again
	o.mu.Lock()
	drop := int64(0)
	if o.diskFull {
		drop = 1
	}
	o.mu.Unlock()
	err := o.add(ctx, m, drop)
	if !isFull(err) {
		return err
	}
	// The disk is full: give the reserve back, move the write-ahead log into
	// the database (freeing the log's space), and drop the oldest, more
	// each time, until this one fits.
	o.releaseReserve()
	o.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)") // best effort
	for drop = max(1, 2*drop); ; drop *= 2 {
		if err = o.add(ctx, m, drop); !isFull(err) {
			return err
		}
		var n int64
		if qerr := o.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); qerr != nil || n < drop {
			return fmt.Errorf("%w (nothing left to drop to make room)", err)
		}
	}
}

// isFull reports whether err is SQLite's "database or disk is full".
func isFull(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull
}

// add commits m in one transaction, dropping at least drop of the oldest
// entries first (and more if the outbox is over its bound).
func (o *Outbox) add(ctx context.Context, m *wire.Measurement, drop int64) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add to outbox: %w", err)
	}
	defer tx.Rollback()
	dropped := int64(0)
	dropOldest := func(n int64) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)`, n)
		if err != nil {
			return fmt.Errorf("add to outbox: drop oldest: %w", err)
		}
		k, _ := res.RowsAffected()
		dropped += k
		return nil
	}
	if drop > 0 {
		// first, so that the new row can take the freed pages
		if err := dropOldest(drop); err != nil {
			return err
		}
	}
	// Seq is assigned by AUTOINCREMENT, which never reuses a number even after
	// deletes; insert a placeholder to learn it, then write the payload.
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox(message_id, measured_at, payload) VALUES (?, ?, x'')`,
		m.MessageID, m.MeasuredAt.UnixNano())
	if err != nil {
		return fmt.Errorf("add to outbox: %w", err)
	}
	if m.Seq, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("add to outbox: %w", err)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("add to outbox: encode: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET payload = ? WHERE seq = ?`, payload, m.Seq); err != nil {
		return fmt.Errorf("add to outbox: %w", err)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return fmt.Errorf("add to outbox: %w", err)
	}
	if over := n - o.maxRows; over > 0 {
		if err := dropOldest(over); err != nil {
			return err
		}
	}
	if dropped > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('dropped_total', ?)
			ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?`, dropped, dropped); err != nil {
			return fmt.Errorf("add to outbox: count dropped: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add to outbox: commit: %w", err)
	}
	return nil
}

// Pending returns up to limit entries with a seq above after, oldest first,
// skipping those for which skip returns true (for example entries published
// recently and still awaiting their ack). skip may be nil. Callers walk the
// outbox with after as a cursor, so entries that are never acknowledged
// cannot keep newer ones from being sent.
func (o *Outbox) Pending(ctx context.Context, after int64, limit int, skip func(messageID string) bool) ([]Entry, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT seq, message_id, payload FROM outbox WHERE seq > ? ORDER BY seq`, after)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close() // an open read transaction would block WAL checkpoints
	var out []Entry
	for rows.Next() && len(out) < limit {
		var e Entry
		if err := rows.Scan(&e.Seq, &e.MessageID, &e.Payload); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if skip != nil && skip(e.MessageID) {
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// Delete removes the acknowledged entries with the given message ids and
// returns how many were there. Unknown ids are ignored: acks can be redelivered.
func (o *Outbox) Delete(ctx context.Context, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var total int64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		q := `DELETE FROM outbox WHERE message_id IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		res, err := o.db.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("delete from outbox: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// Stats is the outbox's state for the agent's status message.
type Stats struct {
	Backlog      int64     // entries waiting for an ack
	DroppedTotal int64     // entries dropped because the outbox was full, ever
	Oldest       time.Time // measured_at of the oldest waiting entry; zero if none
}

// Stats reads the backlog and the dropped counter.
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var oldest sql.NullInt64
	if err := o.db.QueryRowContext(ctx, `SELECT count(*), min(measured_at) FROM outbox`).Scan(&s.Backlog, &oldest); err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	if oldest.Valid {
		s.Oldest = time.Unix(0, oldest.Int64).UTC()
	}
	v, err := o.meta(ctx, "dropped_total")
	if err != nil {
		return s, err
	}
	if v != "" {
		fmt.Sscan(v, &s.DroppedTotal)
	}
	return s, nil
}

// Close closes the database, then releases the lock.
func (o *Outbox) Close() error {
	err := o.db.Close()
	unlock(o.lock)
	return err
}

// unlock releases a lock taken by lockShared (nil: none).
func unlock(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}
