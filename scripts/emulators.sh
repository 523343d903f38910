#!/usr/bin/env bash
# Installs (once, into a cache folder) and starts the AWS emulators the test suite talks to, both
# open source:
#   - moto (Apache-2.0, from PyPI): DynamoDB, DynamoDB Streams, S3, SES, SNS, SQS and KMS, served
#     by scripts/moto_server.py one request at a time, so that conditional writes are
#     linearizable as on DynamoDB (moto's own threaded server is not)
#   - kinesis-mock (MIT; the Kinesis engine LocalStack runs, from the npm package kinesis-local)
# Prerequisites: Python 3 (with venv) and Node.js with npm.
# Usage:
#   scripts/emulators.sh install          install into $EMULATOR_CACHE (default ~/.cache/quote-emulators)
#   scripts/emulators.sh start ENVFILE    start all three on free loopback ports; write the
#                                         AWS_ENDPOINT_URL_* variables and pids to ENVFILE
#   scripts/emulators.sh stop ENVFILE     stop what `start` started (by process id)
set -euo pipefail

KINESIS_VERSION=0.6.2
MOTO_VERSION=5.2.5
CACHE=${EMULATOR_CACHE:-$HOME/.cache/quote-emulators}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "[emulators] $*" >&2; }

install() {
  mkdir -p "$CACHE"
  if [ ! -d "$CACHE/kinesis/node_modules/kinesis-local" ]; then
    log "installing kinesis-local@$KINESIS_VERSION"
    npm install --silent --no-audit --no-fund --prefix "$CACHE/kinesis" "kinesis-local@$KINESIS_VERSION" >&2
  fi
  if [ ! -x "$CACHE/moto/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION"
    python3 -m venv "$CACHE/moto"
    "$CACHE/moto/bin/pip" install --quiet "moto[server]==$MOTO_VERSION" >&2
  fi
}

# wait_http URL NAME PID: wait until something answers HTTP on URL (any status), up to 120 s.
wait_http() {
  local url=$1 name=$2 pid=$3
  for _ in $(seq 1 240); do
    if ! kill -0 "$pid" 2>/dev/null; then log "$name exited during start-up"; return 1; fi
    if curl -s -o /dev/null "$url"; then log "$name is up at $url"; return 0; fi
    sleep 0.5
  done
  log "$name did not answer at $url within 120 s"; return 1
}

# distinct_ports N: N free loopback ports, all different (asking for one port at a time may
# return the same port twice once the first socket is closed).
distinct_ports() {
  python3 -c '
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
for s in sockets: s.close()' "$1"
}

# launch LOGS ENVFILE: starts kinesis-mock and moto on fresh ports and waits for both; on a
# failure prints the emulator's log, stops what it started and returns 1.
launch() {
  local logs=$1 envfile=$2
  local kin_port kin_tls_port moto_port
  read -r kin_port kin_tls_port moto_port < <(distinct_ports 3)

  # Every test creates its own stream: lift the account's shard limit (50 by default) and shorten
  # the simulated CREATING/UPDATING phases.
  (cd "$CACHE/kinesis/node_modules/kinesis-local" && KINESIS_MOCK_PLAIN_PORT=$kin_port \
      KINESIS_MOCK_TLS_PORT=$kin_tls_port LOG_LEVEL=WARN SHARD_LIMIT=100000 \
      CREATE_STREAM_DURATION=100ms UPDATE_SHARD_COUNT_DURATION=100ms \
      exec node main.js) >"$logs/kinesis.log" 2>&1 &
  local kin_pid=$!

  "$CACHE/moto/bin/python" "$ROOT/scripts/moto_server.py" 127.0.0.1 "$moto_port" >"$logs/moto.log" 2>&1 &
  local moto_pid=$!

  cat >"$envfile" <<ENV
export EMULATOR_PIDS="$kin_pid $moto_pid"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
# DynamoDB is moto's too; named on its own because the tests and scripts check for it.
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kin_port
ENV
  if ! wait_http "http://127.0.0.1:$kin_port" kinesis-mock "$kin_pid"; then
    log "kinesis-mock's log:"; tail -n 20 "$logs/kinesis.log" >&2
    stop "$envfile"; return 1
  fi
  if ! wait_http "http://127.0.0.1:$moto_port" moto "$moto_pid"; then
    log "moto's log:"; tail -n 20 "$logs/moto.log" >&2
    stop "$envfile"; return 1
  fi
}

start() {
  local envfile=$1
  install
  local logs; logs=$(dirname "$envfile"); mkdir -p "$logs"
  # A start can fail for reasons outside the project (a port taken between its choice and the
  # bind, the machine short of memory for a moment): try again on fresh ports, twice.
  for attempt in 1 2 3; do
    if launch "$logs" "$envfile"; then return 0; fi
    log "start attempt $attempt failed"
  done
  return 1
}

stop() {
  local envfile=$1
  [ -f "$envfile" ] || return 0
  # shellcheck disable=SC1090
  . "$envfile"
  for pid in $EMULATOR_PIDS; do kill "$pid" 2>/dev/null || true; done
  # Up to 5 s to exit on SIGTERM (kinesis-mock's shutdown hooks and a busy moto can take
  # longer, or never finish): then SIGKILL, so no emulator outlives the run that started it.
  for _ in $(seq 1 50); do
    local alive=0
    for pid in $EMULATOR_PIDS; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in $EMULATOR_PIDS; do kill -9 "$pid" 2>/dev/null || true; done
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?envfile}" ;;
  stop) stop "${2:?envfile}" ;;
  *) echo "usage: $0 install | start ENVFILE | stop ENVFILE" >&2; exit 2 ;;
esac
