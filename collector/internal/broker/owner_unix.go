//go:build unix

package broker

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner is the user and group that own a file.
type fileOwner struct{ uid, gid int }

// ownerOf returns the owner of the file st describes.
func ownerOf(st fs.FileInfo) *fileOwner {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return &fileOwner{uid: int(s.Uid), gid: int(s.Gid)}
	}
	return nil
}

// apply gives f this owner, unless it has it already (a user who is not
// root can keep a file of their own). A nil owner does nothing.
func (o *fileOwner) apply(f *os.File) error {
	if o == nil {
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if cur := ownerOf(st); cur != nil && *cur == *o {
		return nil
	}
	return f.Chown(o.uid, o.gid)
}
