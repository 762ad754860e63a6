#!/usr/bin/env bash
# Runs the whole test suite: every workspace test (unit, property, conformance on memory
# and PostgreSQL, doc tests) and the loom models of the memory adapter.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# In CI a missing PostgreSQL is a failure, not a skip.
if [[ "${CI:-}" == "true" ]]; then
    export BOOKING_REQUIRE_POSTGRES=1
fi

echo "== workspace tests"
cargo test --workspace --all-features --lib --bins --tests --examples --locked
cargo test --workspace --all-features --doc --locked

echo "== loom models (booking-memory)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" RUSTFLAGS="--cfg booking_loom" \
    cargo test -p booking-memory --release --test loom --locked

echo "== schemathesis against the running reference server's /openapi.json"
bash reference-server/scripts/schemathesis.sh
