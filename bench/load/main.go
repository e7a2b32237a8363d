// Command load is hubmon's load benchmark (make bench-load; method and
// figures in bench/README.md). For each fleet size it starts a real
// Mosquitto (the shipped configuration with the bench ACL), measures the
// broker's ceiling with a do-nothing paho subscriber and mosquitto_sub, then
// starts the real hubmon-collector subscribed to it and drives it with the
// fleet simulator: ingest live and draining a backlog (collector paused with
// SIGSTOP), end-to-end delay to /metrics, /metrics scrape cost, the
// collector's memory and CPU; then the real hubmon-agent's footprint idle and
// during a speed test against the collector. It prints one JSON line per
// figure on stdout and its progress on stderr. Only 127.0.0.1 is used; every
// phase is bounded in messages and time.
//
//	go run ./bench/load -bin bin                 # N = 1,000, 10,000, 20,000
//	go run ./bench/load -bin bin -quick          # a smoke run, under a minute
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
