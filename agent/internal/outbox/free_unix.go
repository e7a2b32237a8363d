//go:build unix

package outbox

import (
	"path/filepath"
	"syscall"
)

// freeBytes is the space available to this user on the file system of path.
func freeBytes(path string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
