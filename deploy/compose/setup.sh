#!/bin/sh
# Makes deploy/compose/state/ for compose.yaml: the collector's MQTT account
# (password file and env file) and, unless you bring your own, a council CA
# and a certificate for the broker's name. Run once, before
# `docker compose up`; it never overwrites what exists.
#
#   HUBMON_MQTT_HOST=mqtt.council.example ./setup.sh
#
# Then enrol each hub (README, "Enrolling a hub"):
#   ../../dist/hubmon-collector-linux-amd64 enrol SITE -passwd state/mosquitto/hubmon.passwd \
#     -ca state/certs/hubmon-ca.pem -broker-url mqtts://$HUBMON_MQTT_HOST:8883
#   docker compose kill -s HUP mosquitto
set -eu
cd "$(dirname "$0")"
host=${HUBMON_MQTT_HOST:?set HUBMON_MQTT_HOST to the name the hubs will use for the broker}
state=${HUBMON_COMPOSE_STATE:-state}
collector=${HUBMON_COLLECTOR:-../../dist/hubmon-collector-linux-amd64}
[ -x "$collector" ] || { echo "setup.sh: $collector not found: run make dist (or set HUBMON_COLLECTOR)" >&2; exit 1; }
# the uid the eclipse-mosquitto image runs as, which must read the files
mosquitto_uid=${HUBMON_MOSQUITTO_UID:-1883}
umask 077
mkdir -p "$state/mosquitto" "$state/certs"

if [ ! -f "$state/collector.env" ]; then
  pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$pw" | "$collector" passwd -file "$state/mosquitto/hubmon.passwd" hubmon-collector >/dev/null
  printf 'HUBMON_MQTT_PASSWORD=%s\n' "$pw" > "$state/collector.env"
  echo "made $state/collector.env and the collector's account in $state/mosquitto/hubmon.passwd"
fi

c=$state/certs
if [ ! -f "$c/hubmon-ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=hubmon council CA" -keyout "$c/hubmon-ca.key" -out "$c/hubmon-ca.pem" 2>/dev/null
  echo "made a council CA: $c/hubmon-ca.pem (keep $c/hubmon-ca.key offline)"
fi
if [ ! -f "$c/hubmon-server-chain.pem" ]; then
  case $host in
    *[!0-9.]*) san="DNS:$host" ;;
    *) san="IP:$host" ;;
  esac
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
    -keyout "$c/hubmon-server.key" -out "$c/hubmon-server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$c/ext.cnf"
  openssl x509 -req -in "$c/hubmon-server.csr" -CA "$c/hubmon-ca.pem" -CAkey "$c/hubmon-ca.key" \
    -CAcreateserial -days 825 -extfile "$c/ext.cnf" -out "$c/hubmon-server.crt" 2>/dev/null
  # the chain: an agent enrolled with a short code takes the CA from it
  cat "$c/hubmon-server.crt" "$c/hubmon-ca.pem" > "$c/hubmon-server-chain.pem"
  rm -f "$c/hubmon-server.csr" "$c/ext.cnf"
  echo "made the broker's certificate for $host: $c/hubmon-server-chain.pem"
fi
chmod 0644 "$c/hubmon-ca.pem" "$c/hubmon-server-chain.pem"
chmod 0755 "$state" "$state/mosquitto" "$c"
# Mosquitto (in its container) reads the password file and the key
if [ "$(id -u)" = 0 ]; then
  chown "$mosquitto_uid" "$state/mosquitto/hubmon.passwd" "$c/hubmon-server.key"
else
  echo "not root: chown $mosquitto_uid $state/mosquitto/hubmon.passwd $c/hubmon-server.key before docker compose up" >&2
fi
