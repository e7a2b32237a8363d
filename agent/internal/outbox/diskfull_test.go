package outbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// smallDisk mounts a tmpfs of size bytes on a new directory (root only),
// unmounted when the test ends.
func smallDisk(tb testing.TB, size string) string {
	tb.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		tb.Skip("a full disk is simulated with a small tmpfs: needs root on Linux")
	}
	dir := tb.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		tb.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				tb.Fatal(err)
			}
			break
		}
	}
	// the last blocks, smaller than buf
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	return path
}

// TestDiskFull: on a full disk, Add keeps committing the newest measurement
// by dropping the oldest (counted), sessions still count and acknowledged
// entries can still be deleted; when space returns nothing more is dropped.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := smallDisk(t, "32m")
	path := filepath.Join(dir, "outbox.db")
	o := open(t, path, 1_000_000)
	for i := range 50 {
		if err := o.Add(ctx, measurement(i%60)); err != nil {
			t.Fatal(err)
		}
	}
	filler := fill(t, dir)

	var last int64
	var ids []string
	for i := range 1000 {
		m := measurement(i % 60)
		if err := o.Add(ctx, m); err != nil {
			t.Fatalf("add %d on a full disk: %v", i, err)
		}
		if m.Seq <= last {
			t.Fatalf("seq %d after %d: reused", m.Seq, last)
		}
		last = m.Seq
		ids = append(ids, m.MessageID)
	}
	st, err := o.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DroppedTotal == 0 || st.Backlog == 0 || st.Backlog+st.DroppedTotal != 1050 {
		t.Fatalf("on a full disk: %+v; want the oldest dropped and counted, backlog + dropped = 350", st)
	}
	// the newest are kept
	all, err := o.Pending(ctx, 0, 1_000_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := all[len(all)-1].MessageID; got != ids[len(ids)-1] {
		t.Fatalf("newest in the outbox is %s, want %s", got, ids[len(ids)-1])
	}
	s1, err := o.NextSession(ctx)
	if err != nil {
		t.Fatalf("count a session on a full disk: %v", err)
	}
	s2, err := o.NextSession(ctx)
	if err != nil || s2 <= s1 {
		t.Fatalf("sessions on a full disk: %d then %d, %v", s1, s2, err)
	}
	if n, err := o.Delete(ctx, []string{all[0].MessageID, all[1].MessageID}); err != nil || n != 2 {
		t.Fatalf("delete acknowledged entries on a full disk: %d, %v", n, err)
	}

	// space returns
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := o.Add(ctx, measurement(i%60)); err != nil {
			t.Fatal(err)
		}
	}
	st2, err := o.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2.DroppedTotal != st.DroppedTotal || st2.Backlog != st.Backlog-2+50 {
		t.Fatalf("after space returned: %+v, before %+v; want nothing more dropped", st2, st)
	}
	if fi, err := os.Stat(path + ".reserve"); err != nil || fi.Size() != ReserveBytes {
		t.Fatalf("reserve not made again when space returned: %v %v", fi, err)
	}
	s3, err := o.NextSession(ctx)
	if err != nil || s3 <= s2 {
		t.Fatalf("session after space returned: %d, %v", s3, err)
	}
	o.Close()
	o = open(t, path, 1_000_000)
	var res string
	if err := o.db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity check: %q %v", res, err)
	}
	if s4, err := o.NextSession(ctx); err != nil || s4 <= s3 {
		t.Fatalf("session after reopening: %d (was %d), %v", s4, s3, err)
	}
}
