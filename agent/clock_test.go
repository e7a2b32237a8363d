package main

import (
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// TestFlagClock: a measurement's time is flagged when the system clock is
// not synchronised, or when the wall clock was stepped (forwards or
// backwards) while it ran; a synchronised, steady clock is trusted.
func TestFlagClock(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		duration time.Duration // by the monotonic clock
		wall     time.Duration // by the wall clock, from start to the end
		synced   bool
		want     bool
	}{
		{"steady", 10 * time.Second, 10 * time.Second, true, false},
		{"slewed by NTP", 60 * time.Second, 60*time.Second + 30*time.Millisecond, true, false},
		{"not synchronised", 10 * time.Second, 10 * time.Second, false, true},
		{"stepped forward", 10 * time.Second, 10*time.Second + 24*time.Hour, true, true},
		{"stepped back", 10 * time.Second, 10*time.Second - time.Hour, true, true},
		{"stepped back a few seconds", 10 * time.Second, 5 * time.Second, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &wire.Measurement{MeasuredAt: start, DurationSeconds: tt.duration.Seconds()}
			flagClock(m, start.Add(tt.wall), tt.synced)
			if m.ClockUnsynced != tt.want {
				t.Errorf("ClockUnsynced = %v, want %v", m.ClockUnsynced, tt.want)
			}
		})
	}
}
