package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// BackupResult describes a backup Backup made.
type BackupResult struct {
	Path         string
	Bytes        int64
	Measurements int64
	Agents       int64
}

// Backup writes a consistent copy of the history to dest with SQLite's
// VACUUM INTO: a snapshot of one read transaction, so the collector can keep
// committing while it runs (WAL). It writes a temporary file next to dest,
// checks it (integrity_check, schema version), syncs it and renames it to
// dest, so dest is either a whole, checked backup or absent. dest must not
// exist.
func (s *Store) Backup(ctx context.Context, dest string) (*BackupResult, error) {
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("backup to %q: the file exists; name a new one", dest)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup to %q: %w", dest, err)
	}
	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".partial")
	_ = os.Remove(tmp) // a previous attempt's leftover
	db := s.r
	if db == nil {
		db = s.w
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("backup %q to %q: %w", s.path, dest, err)
	}
	res, err := checkBackup(ctx, tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("backup to %q: the copy does not check out, not kept: %w", dest, err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("backup to %q: %w", dest, err)
	}
	if d, err := os.Open(filepath.Dir(dest)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	res.Path = dest
	return res, nil
}

// checkBackup opens the copy read-only and checks it.
func checkBackup(ctx context.Context, path string) (*BackupResult, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil {
		return nil, err
	}
	if ok != "ok" {
		return nil, fmt.Errorf("integrity_check: %s", ok)
	}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return nil, err
	}
	if version != schemaVersion {
		return nil, fmt.Errorf("schema version %d, want %d", version, schemaVersion)
	}
	res := &BackupResult{Bytes: st.Size()}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM measurements").Scan(&res.Measurements); err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM agents").Scan(&res.Agents); err != nil {
		return nil, err
	}
	return res, nil
}
