#!/usr/bin/env bash
# The chaos run: every service as separate processes (two of each) on the emulators, behind the
# fault proxy, with quotes at a steady rate while processes are killed with SIGKILL and
# restarted, DynamoDB and Kinesis are throttled, and the stream is split and merged; then a table
# of checks (docs/reliability.md). The driver is services/quotes/examples/chaos.
#
# Usage: scripts/chaos.sh [FLAGS]      e.g. --quotes 1000 --kill-every 5 --reshards 2
#   Flags go to the driver (`scripts/chaos.sh --help`). Defaults: the short run of the test
#   command (150 quotes at 10/s, 2 kills, 1 throttling window, 1 split).
# Uses the emulators of the environment when AWS_ENDPOINT_URL_DYNAMODB is set (scripts/test.sh),
# else starts its own set and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
started_emulators=0
cleanup() {
  if [ "$started_emulators" = 1 ]; then scripts/emulators.sh stop "$work/env.sh" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  # Set first: a start that fails half-way (an emulator that never answered) leaves the others
  # running, and the env file naming them is written before the wait.
  started_emulators=1
  scripts/emulators.sh start "$work/env.sh"
  # shellcheck disable=SC1091
  . "$work/env.sh"
fi

# The driver starts the workspace's binaries from target/debug, next to itself. Built for the
# whole workspace, as the test command builds them (a `-p` subset unifies features differently
# and would rebuild the dependencies).
cargo build --locked --workspace --bins --examples
"${CARGO_TARGET_DIR:-target}"/debug/examples/chaos "$@"
