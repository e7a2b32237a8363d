//go:build unix

package outbox

import (
	"path/filepath"
	"testing"
)

// TestInUse: an open outbox is seen as in use until the last Outbox on it
// is closed; two can be open at once.
func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	inUse := func(want bool) {
		t.Helper()
		got, err := InUse(path)
		if err != nil || got != want {
			t.Fatalf("InUse = %v, %v; want %v", got, err, want)
		}
	}
	inUse(false) // never opened
	a, err := Open(path, "hub-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	inUse(true)
	b, err := Open(path, "hub-1", 10) // a second user: `hubmon-agent check` beside the service
	if err != nil {
		t.Fatal(err)
	}
	if a.AgentID() != b.AgentID() {
		t.Errorf("agent ids %s and %s", a.AgentID(), b.AgentID())
	}
	a.Close()
	inUse(true)
	b.Close()
	inUse(false)
}
