//go:build unix

package broker

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of prev (nil: leaves f alone). Only
// root can give a file away; for anyone else a change fails, and so does the
// write: better than a file the service can no longer read.
func keepOwner(f *os.File, prev fs.FileInfo) error {
	if prev == nil {
		return nil
	}
	want, ok := prev.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if got, ok := st.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	return f.Chown(int(want.Uid), int(want.Gid))
}
