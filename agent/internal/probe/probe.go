// Package probe holds the agent's measurements: one file per kind of probe.
//
// It follows the prober model of prometheus/blackbox_exporter: a probe only
// measures. The framework that calls it (scheduling, the timeout, timing the
// run, deciding success, logging, recovering from panics and putting the
// result in the outbox) lives elsewhere and is the same for every kind. So a
// Prober has one method, takes its deadline from the context, and reports
// what it measured and what went wrong; it neither logs failures nor retries.
//
// Constructors (NewSpeedtest, ...) are meant to be called from one explicit
// switch over the configured probe kinds; nothing registers itself.
package probe

import (
	"context"

	"github.com/hubmon/hubmon/agent/wire"
)

// Prober measures one thing. Probe must return promptly when ctx is done (a
// cancelled run is a failure).
//
// Probe may be called again after it returned, including after a cancelled
// run whose work is still winding down in the background; a Prober keeps no
// state between runs that such leftovers could disturb (the line-quality
// prober keeps an outage in progress from one summary to the next, guarded
// for this). Calls need not be
// serialised by the caller, though running two bandwidth tests at once
// measures neither properly.
type Prober interface {
	Probe(ctx context.Context) (Result, error)
}

// Result is what one run produced. On failure, return the error AND whatever
// partial figures were measured (pointers left nil when not measured; never
// zero for "not measured").
//
// The Result belongs to the caller once Probe returns: the prober never
// touches it again.
type Result struct {
	Kind        string // wire.Kind...
	Speedtest   *wire.Speedtest
	LineQuality *wire.LineQuality
	DNS         *wire.DNS
	HTTP        *wire.HTTP
	WiFi        *wire.WiFi
}
