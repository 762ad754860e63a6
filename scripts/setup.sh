#!/usr/bin/env bash
# One-time set-up on a fresh machine: toolchain components, crates, local services.
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo fetch --locked
bash scripts/services.sh
echo "setup: done. Run the server: cargo run -p reference-server   Run the tests: bash scripts/test.sh"
