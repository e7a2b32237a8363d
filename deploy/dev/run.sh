#!/bin/bash
# Runs the whole system on this machine: the collector (embedded broker,
# speed-test server) and one agent. Ctrl-C stops both. Used by `make run`.
set -eu
cd "$(dirname "$0")/../.."
mkdir -p run
if [ ! -s run/dev-password ]; then
	# a random password for the local agent, kept with the run state
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > run/dev-password
	rm -f run/passwd
fi
if [ ! -s run/passwd ]; then
	bin/hubmon-collector passwd -file run/passwd dev-hub < run/dev-password >/dev/null
fi
HUBMON_MQTT_PASSWORD=$(cat run/dev-password)
export HUBMON_MQTT_PASSWORD

bin/hubmon-collector run -config deploy/dev/collector.yaml &
collector=$!
agent=
stop() {
	trap - INT TERM
	[ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null || true
	[ -n "$agent" ] && wait "$agent" 2>/dev/null || true
	kill -TERM "$collector" 2>/dev/null || true
	wait "$collector" 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM

# the agent retries until the collector's broker is up
bin/hubmon-agent run -config deploy/dev/agent.yaml &
agent=$!
cat <<MSG

  hubmon is running: a collector with its embedded MQTT broker and speed-test
  server, and one agent for the hub "dev-hub".

  Metrics:   http://localhost:9470/metrics   (first speed test in about 15 s:
             curl -s localhost:9470/metrics | grep ^hubmon_speedtest)
             http://localhost:9470/metrics/gaps   (gap figures, every 5 minutes)
  Broker:    tcp://127.0.0.1:1883     History: run/hubmon.db
  Ctrl-C stops both.

MSG
# stop when either ends (a collector that cannot start, say)
wait -n "$collector" "$agent" || true
stop
