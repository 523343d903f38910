#!/usr/bin/env bash
# The one command that runs every test (README "Testing"; `.ci/run` calls exactly this).
#
# 1. installs (once, cached) and starts the open-source emulators, moto (DynamoDB, SES, SNS; one
#    request at a time) and kinesis-mock, on free loopback ports, and exports the SDK's endpoint
#    variables for them;
# 2. checks formatting and lints;
# 3. runs the deployment checks (scripts/deploy-checks.sh: hadolint, checkov, compose schema,
#    compose and Terraform against the code) and fuzzes the API from its OpenAPI document
#    (scripts/api-fuzz.sh, schemathesis);
# 4. runs every test of the workspace (unit, property, contract, relay, crash, CLI, end to end,
#    fault injection, the web pages in headless Chromium);
# 5. runs the short chaos run (scripts/chaos.sh, on a fresh set of emulators of its own);
# 6. fails unless the tests that need the emulators really ran against them;
# 7. stops the emulators it started.
set -euo pipefail
cd "$(dirname "$0")/.."

# A CI machine builds once: incremental compilation would only add its cache (about half of a
# debug target's size here) to the disk the build needs.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

work=$(mktemp -d)
cleanup() { scripts/emulators.sh stop "$work/env.sh" || true; rm -rf "$work"; }
trap cleanup EXIT

scripts/emulators.sh start "$work/env.sh"

# The browser test (services/quotes/tests/browser.rs) drives Debian's Chromium with Playwright:
# the browser from the distribution's packages, Playwright (its library only, no browser
# download) from tests/browser/package-lock.json.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  echo "== installing chromium (Debian's package) for the browser test"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  else
    sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
npm ci --silent --no-audit --no-fund --prefix tests/browser
# shellcheck disable=SC1091
. "$work/env.sh"
export EMULATOR_TEST_LOG="$work/emulator-tests.log"
: >"$EMULATOR_TEST_LOG"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# The end-to-end tests start the real binaries of every service as separate processes.
cargo build --workspace --bins --locked

echo "== deployment checks"
scripts/deploy-checks.sh

echo "== API fuzzing from the served OpenAPI document (schemathesis)"
scripts/api-fuzz.sh

echo "== cargo tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

# The short chaos run (docs/reliability.md): 150 quotes, 2 kills, 1 throttling window, 1 split.
# It starts its own emulators (unsetting the endpoint makes chaos.sh do so): the run measures
# the time to drain, which should not depend on the streams and tables the suites left behind.
echo "== chaos run"
env -u AWS_ENDPOINT_URL_DYNAMODB \
  scripts/chaos.sh --quotes 150 --rate 10 --kill-every 5 --kills 2 --throttle-windows 1 --reshards 1

# Every suite that exercises an AWS adapter must have talked to the emulators.
missing=0
suites=(
  emulator_linearizable
  contract_dynamodb
  api_dynamodb
  relay
  relay_faults
  one_copy
  crash_process
  cli
  missing_resources
  readme
  lease_table_dynamodb
  lease_table_faults
  dead_letter_dynamodb
  fleet_kinesis
  fleet_faults
  fanout_kinesis
  notifier
  archive_aws
  archiver_aws
  backfill
  operations_cli
  outbox
  dlq
  e2e_processes
  traces_e2e
  browser
  chaos
)
for suite in "${suites[@]}"; do
  if ! grep -q "^$suite " "$EMULATOR_TEST_LOG"; then
    echo "AWS-adapter suite '$suite' did not run against the emulators" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
echo "emulator-backed tests run: $(wc -l <"$EMULATOR_TEST_LOG")"
