//go:build !linux

package main

import "os"

// kernelClockSynced cannot tell outside Linux.
func kernelClockSynced() (synced, known bool) { return false, false }

// isTerminal reports whether f is a character device (a terminal, most
// likely).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// matchOwner does nothing outside Linux (see check_linux.go).
func matchOwner(dir, db, lock string) {}
