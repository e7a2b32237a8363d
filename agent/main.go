// Command hubmon-agent measures a community hub's broadband on a schedule,
// keeps every result in a local outbox and publishes it to the collector.
//
//	hubmon-agent run -config agent.yaml     measure and publish until stopped
//	hubmon-agent run -config agent.yaml -check-config
//	hubmon-agent once -config agent.yaml    run every probe now and print a table
//	hubmon-agent check -config agent.yaml   a checklist in plain words, for hub staff
//	hubmon-agent enrol FILE|CODE            install the council's enrolment for this hub
//	hubmon-agent enrol FILE-OR-CODE         install the council's enrolment for this hub
//	hubmon-agent version
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
