package outbox

import (
	"context"
	"fmt"
)

// statePrefix keeps the keys of other packages' state apart from the
// outbox's own in the meta table (agent_id, session, dropped_total).
const statePrefix = "state:"

// State returns the value SetState last stored under key, or "" if none.
// The agent keeps small pieces of state here (the data budget of the month,
// the last measured line rates) so that they share the outbox's durability
// and survive restarts. They do not survive Recover: a corrupt outbox moved
// aside takes them with it, and the agent then assumes the month's budget
// was used at an even pace (schedule.Budget.AssumeOnPace).
func (o *Outbox) State(ctx context.Context, key string) (string, error) {
	return o.meta(ctx, statePrefix+key)
}

// SetState stores value under key, durably: when it returns nil the value is
// on disk.
func (o *Outbox) SetState(ctx context.Context, key, value string) error {
	_, err := o.db.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, statePrefix+key, value)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}
