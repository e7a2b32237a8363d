//go:build !unix

package outbox

import "os"

// LockPath is the lock file of the outbox at path (see lock_unix.go).
func LockPath(path string) string { return path + ".lock" }

// lockShared does nothing where flock(2) is not available.
func lockShared(string) (*os.File, error) { return nil, nil }

// InUse cannot tell where flock(2) is not available: it reports false.
func InUse(string) (bool, error) { return false, nil }
