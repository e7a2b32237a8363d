// Command hubmon-collector takes hubmon agents' measurements from MQTT,
// keeps their history in SQLite and exposes them to Prometheus. With no
// external broker configured it embeds one, so one command runs the system.
//
//	hubmon-collector run -config collector.yaml [-check-config]
//	hubmon-collector report -config collector.yaml [-since 30d] [-format csv|json|html]
//	hubmon-collector passwd -file passwd SITE   (password read from stdin)
//	hubmon-collector enrol SITE -broker-url URL [-ca CA.pem] [flags]
//	hubmon-collector version
//
// run reloads the sites file and the embedded broker's password file on
// SIGHUP. report writes the gap report (one row per hub) from the history,
// read-only, to stdout.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
