// Command hubmon-collector takes hubmon agents' measurements from MQTT,
// keeps their history in SQLite and exposes them to Prometheus. With no
// external broker configured it embeds one, so one command runs the system.
//
//	hubmon-collector run -config collector.yaml [-check-config]
//	hubmon-collector passwd -file passwd SITE   (password read from stdin)
//	hubmon-collector version
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
