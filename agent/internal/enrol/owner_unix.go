//go:build unix

package enrol

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner is the user and group that own a file; -1 leaves one as it is.
type fileOwner struct{ uid, gid int }

// ownerOf returns the owner of the file st describes.
func ownerOf(st fs.FileInfo) *fileOwner {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return &fileOwner{uid: int(s.Uid), gid: int(s.Gid)}
	}
	return nil
}

// dirGroup is the owner to give a new file in dir: the process's user and
// dir's group (/etc/hubmon belongs to the agent's group), or nil.
func dirGroup(dir string) *fileOwner {
	st, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	if o := ownerOf(st); o != nil {
		return &fileOwner{uid: -1, gid: o.gid}
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
	cur := ownerOf(st)
	if cur != nil && (o.uid == -1 || o.uid == cur.uid) && (o.gid == -1 || o.gid == cur.gid) {
		return nil
	}
	return f.Chown(o.uid, o.gid)
}
