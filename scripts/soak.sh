#!/usr/bin/env bash
# The soak run: steady quote load for a given time, embedded (one `quotes run` process, in memory)
# and on the emulators (one process per service), sampling every process's resident memory and
# CPU from /proc; writes a CSV per mode and one PNG plot (docs/reliability.md). The driver is
# services/quotes/examples/soak; the plot is drawn with matplotlib from a cached venv.
#
# Usage: scripts/soak.sh [--minutes N] [--rate R] [--modes "embedded emulators"] [--out DIR]
#   --minutes  how long each mode runs (default 30)
#   --rate     quote requests per second (default 5)
#   --modes    which modes, in order (default both)
#   --out      where the CSVs and soak.png go (default target/soak)
# On the emulators it uses those of the environment when AWS_ENDPOINT_URL_DYNAMODB is set,
# else starts its own set and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30 rate=5 modes="embedded emulators" out=target/soak
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

work=$(mktemp -d)
started_emulators=0
cleanup() {
  if [ "$started_emulators" = 1 ]; then scripts/emulators.sh stop "$work/env.sh" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Built for the whole workspace, as the test command builds them (a `-p` subset unifies
# features differently and would rebuild the dependencies).
cargo build --locked --workspace --bins --examples
target_dir=${CARGO_TARGET_DIR:-target}

status=0
for mode in $modes; do
  if [ "$mode" = emulators ] && [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
    # Set first: a start that fails half-way leaves the others running (see chaos.sh).
    started_emulators=1
    scripts/emulators.sh start "$work/env.sh"
    # shellcheck disable=SC1091
    . "$work/env.sh"
  fi
  echo "== soak: $mode for $minutes min at $rate quotes/s"
  "$target_dir/debug/examples/soak" --mode "$mode" --minutes "$minutes" --rate "$rate" \
    --csv "$out/soak-$mode.csv" | tee "$out/soak-$mode.md" || status=1
done

# The plot: matplotlib in a venv cached next to the emulators.
venv=${EMULATOR_CACHE:-$HOME/.cache/quote-emulators}/soak-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib==3.10.*' >&2
fi
csvs=()
for mode in $modes; do csvs+=("$out/soak-$mode.csv"); done
"$venv/bin/python" scripts/soak_plot.py "$out/soak.png" "${csvs[@]}"
echo "soak: plot in $out/soak.png, samples in ${csvs[*]}"
exit "$status"
