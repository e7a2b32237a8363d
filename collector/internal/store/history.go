package store

// Reads for the gap figures and the report (package gaps): measurements of
// a site in a time range through the (site, kind, measured_at) index, and
// the rows added since a row id, so that figures can be kept up to date
// without reading the history again.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// OpenReadOnly opens an existing history for reading only (the report
// command, next to a running collector): it never creates or changes the
// file. Commit on the returned Store fails.
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if err := checkHeader(path); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	var version int
	if err := r.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		r.Close()
		return nil, fmt.Errorf("open store %q: read schema version: %w", path, err)
	}
	if version != schemaVersion {
		r.Close()
		hint := ""
		if version < schemaVersion {
			hint = " (start this version's collector once: it upgrades the history)"
		}
		return nil, fmt.Errorf("open store %q: history schema version %d, this collector reads %d%s", path, version, schemaVersion, hint)
	}
	// the writer is a read-only pool too: it never connects unless used,
	// and then cannot write
	w, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	return &Store{path: path, w: w, r: r}, nil
}

// Point is one stored measurement with the figures the gap computation
// uses. Figures that were not measured (or belong to another kind) are NaN.
type Point struct {
	RowID             int64
	Site, Probe, Kind string
	MeasuredAt        time.Time
	Success           bool

	// speedtest: rates in bits per second, times in seconds
	DownloadBitsPerSecond, UploadBitsPerSecond float64
	LatencySeconds                             float64
	AddedLatencyDownloadSeconds                float64
	AddedLatencyUploadSeconds                  float64

	// linequality: the stream is Probe and Method
	Method             string
	IntervalSeconds    float64
	Sent, Received     int64
	LineJitterSeconds  float64
	OutageSince        time.Time // zero when no outage was going on at the end
	Outages            []wire.Outage
	LineQualityPresent bool // the row had a linequality section
}

const pointColumns = `rowid, site, probe, kind, measured_at, success,
	download_bits_per_second, upload_bits_per_second, latency_seconds,
	CASE kind WHEN 'speedtest' THEN json_extract(payload, '$.speedtest.added_latency_under_download_seconds') END,
	CASE kind WHEN 'speedtest' THEN json_extract(payload, '$.speedtest.added_latency_under_upload_seconds') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.method') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.interval_seconds') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.sent') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.received') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.jitter_seconds') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.outage_since') END,
	CASE kind WHEN 'linequality' THEN json_extract(payload, '$.linequality.outages') END`

func scanPoint(rows *sql.Rows, p *Point) error {
	var (
		at                               int64
		dl, ul, lat, addD, addU, iv, jit sql.NullFloat64
		sent, recv                       sql.NullInt64
		method, since, outages           sql.NullString
		success                          bool
	)
	if err := rows.Scan(&p.RowID, &p.Site, &p.Probe, &p.Kind, &at, &success, &dl, &ul, &lat, &addD, &addU, &method, &iv, &sent, &recv, &jit, &since, &outages); err != nil {
		return err
	}
	nan := func(v sql.NullFloat64) float64 {
		if !v.Valid {
			return math.NaN()
		}
		return v.Float64
	}
	*p = Point{RowID: p.RowID, Site: p.Site, Probe: p.Probe, Kind: p.Kind, MeasuredAt: fromNanos(at), Success: success, Method: method.String,
		DownloadBitsPerSecond: nan(dl), UploadBitsPerSecond: nan(ul), LatencySeconds: nan(lat),
		AddedLatencyDownloadSeconds: nan(addD), AddedLatencyUploadSeconds: nan(addU),
		IntervalSeconds: nan(iv), Sent: sent.Int64, Received: recv.Int64, LineJitterSeconds: nan(jit),
		LineQualityPresent: iv.Valid,
	}
	if since.Valid && since.String != "" {
		t, err := time.Parse(time.RFC3339Nano, since.String)
		if err != nil {
			return fmt.Errorf("row %d: outage_since: %w", p.RowID, err)
		}
		p.OutageSince = t.UTC()
	}
	if outages.Valid && outages.String != "" && outages.String != "[]" {
		if err := json.Unmarshal([]byte(outages.String), &p.Outages); err != nil {
			return fmt.Errorf("row %d: outages: %w", p.RowID, err)
		}
	}
	return nil
}

// Points calls fn for each measurement of kind at site measured in [from,
// to), oldest first. fn must not keep p: it is reused.
func (s *Store) Points(ctx context.Context, site, kind string, from, to time.Time, fn func(p *Point) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+pointColumns+` FROM measurements
		WHERE site = ? AND kind = ? AND measured_at >= ? AND measured_at < ? ORDER BY measured_at`,
		site, kind, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("read %s history of %s: %w", kind, site, err)
	}
	defer rows.Close()
	var p Point
	for rows.Next() {
		if err := scanPoint(rows, &p); err != nil {
			return fmt.Errorf("read %s history of %s: %w", kind, site, err)
		}
		if err := fn(&p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s history of %s: %w", kind, site, err)
	}
	return nil
}

// PointsAfter calls fn for up to limit measurements stored after row
// afterRowID, in the order they were stored, and returns the last row id
// read (afterRowID when none). Row ids only grow (rows are never deleted
// from the end of the table), so this reads what arrived since a previous
// call, however late the measurements were taken. fn must not keep p.
func (s *Store) PointsAfter(ctx context.Context, afterRowID int64, limit int, fn func(p *Point) error) (int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+pointColumns+` FROM measurements WHERE rowid > ? ORDER BY rowid LIMIT ?`, afterRowID, limit)
	if err != nil {
		return afterRowID, fmt.Errorf("read new history: %w", err)
	}
	defer rows.Close()
	last := afterRowID
	var p Point
	for rows.Next() {
		if err := scanPoint(rows, &p); err != nil {
			return last, fmt.Errorf("read new history: %w", err)
		}
		if err := fn(&p); err != nil {
			return last, err
		}
		last = p.RowID
	}
	if err := rows.Err(); err != nil {
		return last, fmt.Errorf("read new history: %w", err)
	}
	return last, nil
}

// MaxRowID returns the id of the last stored measurement (0 when none).
func (s *Store) MaxRowID(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT max(rowid) FROM measurements`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read history: %w", err)
	}
	return n.Int64, nil
}

// Sites returns the sites that have measurements, in order. It walks the
// (site, kind, measured_at) index one site at a time, not every row.
func (s *Store) Sites(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `WITH RECURSIVE s(site) AS (
			SELECT min(site) FROM measurements
			UNION ALL
			SELECT (SELECT min(site) FROM measurements WHERE site > s.site) FROM s WHERE s.site IS NOT NULL)
		SELECT site FROM s WHERE site IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read sites: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var site string
		if err := rows.Scan(&site); err != nil {
			return nil, fmt.Errorf("read sites: %w", err)
		}
		out = append(out, site)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sites: %w", err)
	}
	return out, nil
}

// Successes calls fn with the time of each successful measurement of kind
// at site measured in [from, to), oldest first: a lighter Points for what
// only shows that the site was there.
func (s *Store) Successes(ctx context.Context, site, kind string, from, to time.Time, fn func(at time.Time)) error {
	rows, err := s.r.QueryContext(ctx, `SELECT measured_at FROM measurements
		WHERE site = ? AND kind = ? AND measured_at >= ? AND measured_at < ? AND success = 1 ORDER BY measured_at`,
		site, kind, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fmt.Errorf("read %s history of %s: %w", kind, site, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		if err := rows.Scan(&at); err != nil {
			return fmt.Errorf("read %s history of %s: %w", kind, site, err)
		}
		fn(fromNanos(at))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s history of %s: %w", kind, site, err)
	}
	return nil
}
