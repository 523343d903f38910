#!/usr/bin/env bash
# Checks of what users deploy (no Docker engine or AWS account needed):
#   - hadolint on docker/Dockerfile;
#   - checkov on terraform/ (zero failed checks; every skip is justified inline);
#   - pytest tests/deploy: the compose file against the Compose Specification schema, every
#     .tf file parses, and compose and Terraform agree with the code (variables, table and
#     stream names, IAM actions). The code side needs the workspace binaries built. With the
#     terraform CLI, a provider mirror and the emulators' variables (scripts/test.sh exports
#     them) it also applies the root module to the emulators, prices a quote on what it
#     created and destroys it (test_terraform_apply.py); a skipped test prints its reason (-rs).
# Tools are installed once, pinned, into $EMULATOR_CACHE (default ~/.cache/quote-emulators).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${EMULATOR_CACHE:-$HOME/.cache/quote-emulators}

# venv NAME REQUIREMENTS: a virtualenv with exactly those pinned requirements (reinstalled when
# the requirements file changes).
venv() {
  local dir=$CACHE/$1 requirements=$2
  if ! cmp -s "$requirements" "$dir/.requirements" 2>/dev/null; then
    echo "[deploy-checks] installing $requirements into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$dir/.requirements"
  fi
}

mkdir -p "$CACHE"
venv deploy-venv tests/deploy/requirements.txt
venv checkov-venv tests/deploy/requirements-checkov.txt

echo "== hadolint docker/Dockerfile"
"$CACHE/deploy-venv/bin/hadolint" docker/Dockerfile

echo "== checkov -d terraform"
"$CACHE/checkov-venv/bin/checkov" -d terraform --framework terraform --quiet --compact \
  --skip-download --download-external-modules false

echo "== pytest tests/deploy"
"$CACHE/deploy-venv/bin/pytest" -q -rs tests/deploy
