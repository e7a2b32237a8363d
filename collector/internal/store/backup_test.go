package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// TestBackupWhileCommitting: a backup taken while another goroutine keeps
// committing is a whole, consistent history (every row of a batch or none),
// opens as a store, and the source keeps working.
func TestBackupWhileCommitting(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	const batch = 50
	commit := func(b int) {
		items := make([]Item, batch)
		for i := range items {
			seq := int64(b*batch + i + 1)
			items[i] = item(meas(fmt.Sprintf("MSG%06d", seq), seq, t0.Add(time.Duration(seq)*time.Second), wire.Float(1e7)), t0)
		}
		if _, err := s.Commit(ctx, items); err != nil {
			t.Error(err)
		}
	}
	for b := range 10 {
		commit(b)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 10; b < 40; b++ {
			commit(b)
		}
	}()
	dest := filepath.Join(t.TempDir(), "backup.db")
	res, err := s.Backup(ctx, dest)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Measurements < 10*batch || res.Measurements%batch != 0 {
		t.Errorf("backup holds %d measurements: want whole batches of %d, at least 10", res.Measurements, batch)
	}
	if res.Bytes <= 0 || res.Path != dest {
		t.Errorf("result %+v", res)
	}
	b, err := Open(dest)
	if err != nil {
		t.Fatalf("the backup does not open as a store: %v", err)
	}
	defer b.Close()
	if n, _ := b.Count(ctx); n != res.Measurements {
		t.Errorf("backup count %d, result says %d", n, res.Measurements)
	}
	if n, _ := s.Count(ctx); n != 40*batch {
		t.Errorf("source count %d after the backup, want %d", n, 40*batch)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".*partial")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// never over an existing file
	if _, err := s.Backup(ctx, dest); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file: %v", err)
	}
	// a directory that is not there: a clear error, nothing left
	if _, err := s.Backup(ctx, filepath.Join(t.TempDir(), "missing", "b.db")); err == nil {
		t.Error("backup into a missing directory succeeded")
	}
	if _, err := os.Stat(dest); err != nil {
		t.Error(err)
	}
}
