//go:build unix

package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The outbox's lock: every open Outbox holds a shared flock(2) on
// LockPath(path) until it is closed, so the agent service holds it for as
// long as it runs (a crash releases it with the process). InUse tries an
// exclusive lock to learn whether anyone holds it: `hubmon-agent check` must
// not log in to the broker as a site whose agent is running, because the
// broker binds the client id to the site and would cut the agent off.
//
// The lock is a file of its own, not the database: closing any descriptor of
// the database file would drop this process's POSIX locks on it, which are
// SQLite's.

// LockPath is the lock file of the outbox at path.
func LockPath(path string) string { return path + ".lock" }

// lockShared takes the shared lock of the outbox at path, creating the lock
// file if needed. It waits while InUse holds the exclusive lock (moments).
func lockShared(path string) (*os.File, error) {
	f, err := os.OpenFile(LockPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock outbox: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock outbox %q: %w", LockPath(path), err)
	}
	return f, nil
}

// InUse reports whether an open Outbox holds the outbox at path, in any
// process, this one included: whether the agent is running on it. It is
// false when the outbox was never opened (no lock file).
func InUse(path string) (bool, error) {
	f, err := os.Open(LockPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check outbox lock: %w", err)
	}
	defer f.Close() // releases the lock, if taken
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("check outbox lock %q: %w", LockPath(path), err)
	}
	return false, nil
}
