#!/usr/bin/env bash
# Search benchmark of issue 11 through the server on PostgreSQL (DATABASE_URL's server,
# default postgres://postgres@127.0.0.1:5432/postgres; a fresh database is created, seeded
# with ROWS professionals (default 1000000) by booking-postgres/bench/search_seed.sql, and
# dropped). CLIENTS (default 32) concurrent clients for SECONDS_PER_SCENARIO (default 10)
# run mixed searches (10 km radius + category + rate; text q; first and deep pages via the
# cursor), uncached and with the in-process cache; see bench/src/bin/search_load/main.rs.
# With REDIS_URL set (e.g. redis://127.0.0.1:6379) it also runs the cache on Redis.
# EXPLAIN=1 also prints EXPLAIN (ANALYZE, BUFFERS) of the statement shapes at that size.
#
#   reference-server/scripts/search_load.sh
#   ROWS=200000 SECONDS_PER_SCENARIO=5 EXPLAIN=1 reference-server/scripts/search_load.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --quiet --release -p booking-bench --bin search_load --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/search_load"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
SEARCH_LOAD_EXPLAIN="${EXPLAIN:-0}" RUST_LOG=warn \
    "$bin" "${ROWS:-1000000}" "${SECONDS_PER_SCENARIO:-10}" "${CLIENTS:-32}"
