#!/usr/bin/env bash
# Install nodegraph into .venv (pass extras as the first argument, e.g. `bash scripts/install.sh test`).
# spandrel (upscaler architectures) goes in with --no-deps: its only torchvision use is two non-upscaler
# architectures, and a torchvision wheel built for another torch (e.g. CUDA torchvision with a CPU torch)
# breaks `import transformers`; nodes/upscale imports spandrel without torchvision when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -e ".${extras:+[$extras]}"
.venv/bin/pip install -q --disable-pip-version-check --no-deps "spandrel==0.4.2"
