#!/bin/bash
# Accuracy benchmark of hubmon's speed test (issue 3): on a tbf-shaped veth
# link between two network namespaces, the agent's speed test against the
# collector's Ookla-compatible server, and iperf3 on the same link in the same
# run as the reference. One JSON line per profile and direction on stdout:
#
#   {"profile":"10/1","direction":"upload","true_bps":1000000,"measured_bps":...,
#    "iperf3_bps":...,"ratio":...,"bytes_used":...,"duration_seconds":...,...}
#
# measured_bps is null when the agent measured nothing (N/A); ratio is
# measured_bps / iperf3_bps. A table goes to stderr at the end.
#
# Needs root (namespaces, tc), go (with cgo, for the collector), iperf3 and jq
# (Debian: apt-get install -y iperf3 jq). It uses only 198.18.0.1/30 (server
# side) and 198.18.0.2/30 (agent side) on its own veth pair, in its own
# namespaces, and removes them on exit.
#
# Environment:
#   PROFILES  down/up Mbit/s pairs (default: 2/0.5 3/1.5 5/2 10/1 36/10 80/20 300/50 500/500)
#   DURATION  measured seconds per direction, agent and iperf3 (default 10)
#   WARMUP    seconds excluded at the start by iperf3 (-O), as the agent does (default 2)
#   CONNECTIONS  parallel connections, agent and iperf3 (default 4)
#   BIN       directory with hubmon-agent and hubmon-collector (default: build them)
set -euo pipefail

PROFILES=${PROFILES:-"2/0.5 3/1.5 5/2 10/1 36/10 80/20 300/50 500/500"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-4}
SRV_IP=198.18.0.1
CLI_IP=198.18.0.2
SPEED_PORT=8080
IPERF_PORT=5201

die() { echo "bench-accuracy: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces and tc)"
for c in ip tc iperf3 jq timeout; do
	command -v "$c" >/dev/null || die "needs $c (Debian: apt-get install -y iproute2 iperf3 jq coreutils)"
done

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/hubmon-bench.XXXXXX)
ns_srv="hubmon-bench-srv-$$"
ns_cli="hubmon-bench-cli-$$"
pids=()

# cleanup stops the servers, and anything else still running in this run's
# namespaces (an agent interrupted with the script), then removes the
# namespaces and the files.
cleanup() {
	trap - EXIT INT TERM
	local ns p
	for ns in "$ns_srv" "$ns_cli"; do
		pids+=($(ip netns pids "$ns" 2>/dev/null || true))
	done
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	ip netns del "$ns_srv" 2>/dev/null || true
	ip netns del "$ns_cli" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries
if [ -n "${BIN:-}" ]; then
	bin=$(cd "$BIN" && pwd)
else
	bin=$work/bin
	echo "building hubmon-agent and hubmon-collector..." >&2
	(cd "$root" && CGO_ENABLED=1 timeout 600 ${GO:-go} build -o "$bin/hubmon-agent" ./agent &&
		CGO_ENABLED=1 timeout 600 ${GO:-go} build -o "$bin/hubmon-collector" ./collector) >&2
fi
[ -x "$bin/hubmon-agent" ] && [ -x "$bin/hubmon-collector" ] || die "no hubmon binaries in $bin"

# --- the link: two namespaces, one veth pair, nothing else
ip netns add "$ns_srv"
ip netns add "$ns_cli"
ip link add veth0 netns "$ns_srv" type veth peer name veth0 netns "$ns_cli"
ip -n "$ns_srv" addr add "$SRV_IP/30" dev veth0
ip -n "$ns_cli" addr add "$CLI_IP/30" dev veth0
for ns in "$ns_srv" "$ns_cli"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set veth0 up
done
in_srv() { ip netns exec "$ns_srv" "$@"; }
in_cli() { ip netns exec "$ns_cli" "$@"; }

# shape NS MBIT: tbf on the namespace's egress, a queue of about 50 ms and a
# burst of two full frames or 4 ms of traffic, whichever is larger.
shape() {
	local ns=$1 mbit=$2 burst
	burst=$(awk -v m="$mbit" 'BEGIN { b = m * 1e6 * 0.004 / 8; if (b < 3028) b = 3028; printf "%d", b }')
	ip netns exec "$ns" tc qdisc replace dev veth0 root tbf rate "${mbit}mbit" burst "$burst" latency 50ms
}

# --- the collector (speed-test server) on the server side
mkdir -p "$work/collector" "$work/agent"
echo "bench-password" | "$bin/hubmon-collector" passwd -file "$work/collector/passwd" bench-hub >/dev/null
cat >"$work/collector/collector.yaml" <<EOF
database: $work/collector/hubmon.db
http:
  listen: "127.0.0.1:9470"
embedded_broker:
  listen: "127.0.0.1:1883"
  password_file: $work/collector/passwd
speedtest_server:
  enabled: true
  listen: "$SRV_IP:$SPEED_PORT"
EOF
# Started with ip netns exec itself, not a shell function: $! is then the
# server (ip execs it), not a subshell that would leave it running.
ip netns exec "$ns_srv" "$bin/hubmon-collector" run -config "$work/collector/collector.yaml" >"$work/collector/log" 2>&1 &
pids+=($!)
ip netns exec "$ns_srv" iperf3 -s -B "$SRV_IP" -p "$IPERF_PORT" >"$work/iperf3-server.log" 2>&1 &
pids+=($!)

up=0
for _ in $(seq 100); do
	if in_cli timeout 1 bash -c "exec 3<>/dev/tcp/$SRV_IP/$SPEED_PORT && exec 4<>/dev/tcp/$SRV_IP/$IPERF_PORT" 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
[ "$up" = 1 ] || { cat "$work/collector/log" >&2; die "servers did not start"; }

cat >"$work/agent/agent.yaml" <<EOF
site: bench-hub
data_dir: $work/agent
broker:
  url: tcp://$SRV_IP:1883
  password: unused-by-once
probes:
  - name: bench
    kind: speedtest
    timeout: 5m
    speedtest:
      server_url: http://$SRV_IP:$SPEED_PORT
      connections: $CONNECTIONS
      duration: ${DURATION}s
EOF

# iperf3_bps [-R]: TCP goodput at the receiver, warm-up omitted; "null" if
# iperf3 fails three times (its server takes a moment between tests).
iperf3_bps() {
	local out bps
	for _ in 1 2 3; do
		out=$(in_cli timeout $((DURATION + WARMUP + 20)) iperf3 -c "$SRV_IP" -p "$IPERF_PORT" -P "$CONNECTIONS" \
			-t "$DURATION" -O "$WARMUP" -J "$@" 2>/dev/null) || true
		bps=$(jq -r '.end.sum_received.bits_per_second // "null"' <<<"$out" 2>/dev/null) || bps=null
		if [ "$bps" != null ]; then
			echo "$bps"
			return
		fi
		echo "iperf3 $*: $(jq -r '.error // "no result"' <<<"$out" 2>/dev/null || echo "no result"); retrying" >&2
		sleep 1
	done
	echo null
}

results=()
for profile in $PROFILES; do
	down=${profile%/*}
	upl=${profile#*/}
	shape "$ns_srv" "$down"
	shape "$ns_cli" "$upl"
	echo "profile $profile Mbit/s: iperf3 download, iperf3 upload, agent..." >&2
	ip_down=$(iperf3_bps -R)
	ip_up=$(iperf3_bps)
	agent_json=$(in_cli timeout 300 "$bin/hubmon-agent" once -json -config "$work/agent/agent.yaml" 2>>"$work/agent/log") || true
	st=$(jq -c '.[0].speedtest // {}' <<<"$agent_json" 2>/dev/null || echo '{}')
	agent_err=$(jq -r '.[0].error // ""' <<<"$agent_json" 2>/dev/null || echo "agent failed: $(tail -n 3 "$work/agent/log")")
	for dir in download upload; do
		if [ "$dir" = download ]; then true_mbit=$down ref=$ip_down; else true_mbit=$upl ref=$ip_up; fi
		line=$(jq -cn --arg profile "$profile" --arg dir "$dir" --argjson st "$st" \
			--argjson true_mbit "$true_mbit" --argjson ref "$ref" --arg err "$agent_err" '
			($st[$dir + "_bits_per_second"]) as $m |
			{profile: $profile, direction: $dir, true_bps: ($true_mbit * 1e6 | round),
			 measured_bps: (if $m == null then null else ($m | round) end),
			 iperf3_bps: (if $ref == null then null else ($ref | round) end),
			 ratio: (if $m == null or $ref == null then null else ($m / $ref * 1000 | round / 1000) end),
			 bytes_used: ($st[$dir + "_bytes"] // 0),
			 duration_seconds: ($st[$dir + "_duration_seconds"] // null | if . == null then null else (. * 100 | round / 100) end),
			 latency_under_load_seconds: ($st["latency_under_" + $dir + "_seconds"] // null),
			 bufferbloat_grade: ($st.bufferbloat_grade // null)}
			+ (if $err != "" then {error: $err} else {} end)')
		echo "$line"
		results+=("$line")
	done
done

{
	echo
	printf '%-9s %-9s %10s %12s %12s %7s %10s %6s\n' profile direction "true Mb/s" "agent Mb/s" "iperf3 Mb/s" ratio "MB used" grade
	for line in "${results[@]}"; do
		jq -r '[.profile, .direction, (.true_bps / 1e6), (if .measured_bps == null then "N/A" else (.measured_bps / 1e6 * 1000 | round / 1000) end),
			(if .iperf3_bps == null then "N/A" else (.iperf3_bps / 1e6 * 1000 | round / 1000) end), (.ratio // "N/A"),
			(.bytes_used / 1e6 * 10 | round / 10), (.bufferbloat_grade // "-")] | @tsv' <<<"$line" |
			awk -F'\t' '{ printf "%-9s %-9s %10s %12s %12s %7s %10s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
	done
} >&2
