package outbox

import (
	"errors"
	"os"
)

// The reserve file: room on the disk that the outbox gives back when the disk
// is full (see the package comment).

func (o *Outbox) reservePath() string { return o.path + ".reserve" }

// makeReserve writes the reserve file if it is not there and the disk has
// room for it with as much again to spare. It records whether the reserve is
// missing.
func (o *Outbox) makeReserve() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reserveMissing = !o.writeReserve()
}

func (o *Outbox) writeReserve() bool {
	if fi, err := os.Stat(o.reservePath()); err == nil && fi.Size() == ReserveBytes {
		return true
	}
	if free, ok := freeBytes(o.path); ok && free < 2*ReserveBytes {
		return false
	}
	f, err := os.OpenFile(o.reservePath(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return false
	}
	buf := make([]byte, 64<<10)
	var werr error
	for written := 0; written < ReserveBytes && werr == nil; written += len(buf) {
		_, werr = f.Write(buf)
	}
	werr = errors.Join(werr, f.Sync(), f.Close())
	if werr != nil {
		os.Remove(o.reservePath())
		return false
	}
	return true
}

// remakeReserve makes the reserve again after it was given back, once the
// disk has room: the outbox may then grow again.
func (o *Outbox) remakeReserve() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.reserveMissing {
		o.reserveMissing = !o.writeReserve()
		o.diskFull = o.diskFull && o.reserveMissing
	}
}

// releaseReserve gives the reserve back to the disk.
func (o *Outbox) releaseReserve() {
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Remove(o.reservePath())
	o.reserveMissing, o.diskFull = true, true
}
