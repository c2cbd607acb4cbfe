#!/usr/bin/env bash
# Screenshots of the web page for README (files, an upload in progress,
# chat, dashboard), taken in headless Chromium against a local server with
# sample data. Needs chromium and chromium-driver (scripts/test.sh installs
# them). Usage: scripts/screenshots.sh [OUT_DIR], default docs/screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
cargo build -q --release
python3 scripts/screenshots.py "$PWD/target/release/sockit" "$out"
