package main

import "syscall"

// clockSynced reports whether the kernel takes the system clock to be
// synchronised, by systemd's rule (timedatectl's "System clock
// synchronized"): a maximum error under 16 s. The kernel sets it to 16 s
// when the clock is set by hand and lets it grow while no NTP client
// disciplines the clock. If the kernel cannot be asked, the clock is not
// flagged.
func clockSynced() bool {
	var tx syscall.Timex
	if _, err := syscall.Adjtimex(&tx); err != nil {
		return true
	}
	return tx.Maxerror < 16_000_000 // microseconds
}
