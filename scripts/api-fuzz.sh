#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document (schemathesis): starts the platform embedded
# (`quotes run`, in memory) on a free loopback port, mints an agent token, and runs schemathesis against the
# served /openapi.json. Fails on any 5xx and on any answer the document does not describe
# (undocumented status, content type, header or body). The number of generated cases per
# operation is bounded (API_FUZZ_MAX_EXAMPLES, default 60): about 700 cases in about 15 s.
#
# Needs the binary built (`cargo build`); schemathesis is installed
# once, pinned, into $EMULATOR_CACHE (default ~/.cache/quote-emulators), like the deployment
# checks' tools.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${EMULATOR_CACHE:-$HOME/.cache/quote-emulators}
TARGET=${CARGO_TARGET_DIR:-target}
QUOTES=${QUOTES_BIN:-$TARGET/debug/quotes}
MAX_EXAMPLES=${API_FUZZ_MAX_EXAMPLES:-60}

# venv NAME REQUIREMENTS: a virtualenv with exactly those pinned requirements (reinstalled when
# the requirements file changes).
venv() {
  local dir=$CACHE/$1 requirements=$2
  if ! cmp -s "$requirements" "$dir/.requirements" 2>/dev/null; then
    echo "[api-fuzz] installing $requirements into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$dir/.requirements"
  fi
}

[ -x "$QUOTES" ] || { echo "[api-fuzz] $QUOTES is missing: cargo build" >&2; exit 1; }
mkdir -p "$CACHE"
venv api-fuzz-venv tests/api-fuzz/requirements.txt

work=$(mktemp -d)
secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u AUTH_JWKS_URL -u AUTH_ISSUER -u AUTH_AUDIENCE -u OTEL_EXPORTER_OTLP_ENDPOINT \
  BACKEND=memory AUTH_HS256_SECRET="$secret" LISTEN_ADDR="127.0.0.1:$port" RUST_LOG=warn \
  "$QUOTES" run >"$work/quotes.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

token=$(env -u AUTH_ISSUER -u AUTH_AUDIENCE AUTH_HS256_SECRET="$secret" \
  "$QUOTES" token --customer agent-fuzz --agent --ttl-secs 3600)

status=0
# A customer's quote stream (a dashboard) and the operations stream stay open until their client
# leaves, so each case the fuzzer opened would wait for the request timeout: they are left out
# here, and their answers (authorization, Last-Event-ID, the events) are tested in process
# (services/event-source/tests/api.rs). A quote's stream is fuzzed: an unknown quote is answered at once.
# From the scratch folder: schemathesis keeps a cache folder in its working directory.
# One worker: with two threads, hypothesis's lambda descriptions parse source with `ast` from two
# threads at once, which CPython 3.11 (before 3.11.8) can fail with "AST constructor recursion
# depth mismatch" (a runtime error of the fuzzer, not of the API; seen here in CI).
(cd "$work" && "$CACHE/api-fuzz-venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --wait-for-schema 30 \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed 20261207 \
  --generation-database none \
  --request-timeout 10 \
  --exclude-path-regex '^/v1/(customers/\{customer_id\}/quotes|ops)/stream$' \
  --workers 1 \
  --no-color) || status=$?
if [ "$status" != 0 ]; then
  echo "[api-fuzz] quotes run log:" >&2
  tail -n 50 "$work/quotes.log" >&2
fi
exit "$status"
