#!/usr/bin/env bash
# Install everything the test suite needs (Python venv, the editor build, Debian's Chromium for the
# browser tests) and run the whole suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh test
# the reference CLIP tokenizer the tokenizer tests compare against (without its torchvision dependency)
.venv/bin/pip install -q --disable-pip-version-check --no-deps open-clip-torch

if [ -f ui/package.json ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped" >&2
  fi
  (cd ui && npx vitest run)
fi

set +e
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$code" = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$code"
