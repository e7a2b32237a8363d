//go:build !linux

package main

// clockSynced cannot ask the system here: the clock is not flagged.
func clockSynced() bool { return true }
