package main

import (
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// maxClockStep is how far the wall clock may drift from the monotonic clock
// during one measurement before it is taken to have been stepped. NTP slews
// a synchronised clock by at most 500 ppm: half a second over the longest
// run a probe may have (30 minutes).
const maxClockStep = 2 * time.Second

// flagClock sets m.ClockUnsynced when m's time may be wrong: the system
// clock was not synchronised when it ended (synced false), or the wall clock
// moved more or less than the monotonic one while it ran (m.MeasuredAt is
// the wall time it started, DurationSeconds monotonic, end the time now).
func flagClock(m *wire.Measurement, end time.Time, synced bool) {
	wall := end.Round(0).Sub(m.MeasuredAt)
	mono := time.Duration(m.DurationSeconds * float64(time.Second))
	if !synced || (wall-mono).Abs() > maxClockStep {
		m.ClockUnsynced = true
	}
}
