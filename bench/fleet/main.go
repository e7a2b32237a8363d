// Command fleet simulates a fleet of hubmon agents for load tests: it
// publishes realistic measurements and statuses (agent/wire) for N sites
// through a real MQTT broker from a few connections, at a set rate or as fast
// as the broker takes them, stops by itself (count and duration bounds), and
// listens for the collector's acks to count what was committed and how long
// it took. It prints one JSON summary line.
//
//	fleet -broker tcp://127.0.0.1:1883 -sites 1000 -count 20000
//	fleet -broker tcp://127.0.0.1:1883 -sites 20000 -rate 757 -duration 60s
//
// Its users (-user-prefix hubmon-fleetsim: hubmon-fleetsim-0..C-1 publish,
// hubmon-fleetsim-acks listens) share the password in HUBMON_FLEETSIM_PASSWORD
// and need the bench ACL (bench/README.md): the shipped ACL lets a site's user
// write only its own topics.
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
