#!/usr/bin/env bash
# Load figures of the reference server: POST /v1/bookings and GET availability at 64
# concurrent connections, as req/s, p50, p99 and the ratio to GET /healthz of the same
# server in the same run; on the memory store and on PostgreSQL (DATABASE_URL's server,
# default postgres://postgres@127.0.0.1:5432/postgres; a fresh database is created and
# dropped). Loopback only; each scenario runs SECONDS (default 5).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${SECONDS_PER_SCENARIO:-5}"
concurrency="${CONCURRENCY:-64}"
cargo build --quiet --release -p reference-server --example load --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/load"
for store in memory postgres; do
    RUST_LOG=warn "$bin" "$store" "$seconds" "$concurrency"
    echo
done
