package enrol

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeTemp writes data to a new temporary file in path's directory, with
// mode and owner (nil: the process's), synced. The caller renames or
// removes it.
func writeTemp(path string, data []byte, mode fs.FileMode, owner *fileOwner) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	err = f.Chmod(mode)
	if err == nil {
		if err = owner.apply(f); err != nil {
			err = fmt.Errorf("keep the owner of %s (run as root): %w", path, err)
		}
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// writeAtomic replaces path with data (a temporary file, then rename).
func writeAtomic(path string, data []byte, mode fs.FileMode, owner *fileOwner) error {
	tmp, err := writeTemp(path, data, mode, owner)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
