package probe

import (
	"net"
	"syscall"
	"unsafe"
)

// socketUnread returns the bytes the kernel has received on c that the
// agent has not read yet (ioctl SIOCINQ), 0 if unknown.
func socketUnread(c net.Conn) int64 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 || n < 0 {
		return 0
	}
	return int64(n)
}
