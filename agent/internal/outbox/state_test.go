package outbox

import (
	"context"
	"path/filepath"
	"testing"
)

// TestState: values are kept across a reopen, apart from the outbox's own
// keys.
func TestState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 10)
	if v, err := o.State(ctx, "data_budget"); err != nil || v != "" {
		t.Fatalf("State of an unset key = %q, %v", v, err)
	}
	for _, v := range []string{`{"month":"2026-10"}`, `{"month":"2026-11"}`} {
		if err := o.SetState(ctx, "data_budget", v); err != nil {
			t.Fatal(err)
		}
	}
	// a key named like the outbox's own does not touch it
	if err := o.SetState(ctx, "agent_id", "x"); err != nil {
		t.Fatal(err)
	}
	id := o.AgentID()
	o.Close()
	o = open(t, path, 10)
	if v, err := o.State(ctx, "data_budget"); err != nil || v != `{"month":"2026-11"}` {
		t.Fatalf("after reopening: %q, %v", v, err)
	}
	if o.AgentID() != id {
		t.Fatalf("agent id changed: %s -> %s", id, o.AgentID())
	}
}
