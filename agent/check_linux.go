package main

import (
	"os"
	"syscall"
	"unsafe"
)

// kernelClockSynced reads the kernel's clock state with adjtimex(2) in
// read-only mode (no privileges needed): TIME_ERROR means the clock is not
// synchronised (STA_UNSYNC), which a time service (systemd-timesyncd,
// chrony, ntpd) clears once it has set the clock. It is what timedatectl
// shows as "System clock synchronized".
func kernelClockSynced() (synced, known bool) {
	const timeError = 5 // TIME_ERROR, linux/timex.h
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, false
	}
	return state != timeError, true
}

// isTerminal reports whether f is a terminal (the TCGETS ioctl succeeds).
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TCGETS), uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

// matchOwner gives the outbox files check may have created (the database,
// its WAL and shared memory, the lock) the owner of dir, the agent's data
// directory, when check runs as root: the service runs as its own user and
// must be able to open them.
func matchOwner(dir, db, lock string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	for _, p := range []string{db, db + "-wal", db + "-shm", lock} {
		if pfi, err := os.Lstat(p); err == nil {
			if ps, ok := pfi.Sys().(*syscall.Stat_t); ok && (ps.Uid != st.Uid || ps.Gid != st.Gid) {
				_ = os.Lchown(p, int(st.Uid), int(st.Gid))
			}
		}
	}
}
