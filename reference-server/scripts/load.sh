#!/usr/bin/env bash
# Load figures of the reference server: POST /v1/bookings at each of CONCURRENCY
# (default "16 32 64") concurrent connections and GET availability at the highest, as
# req/s, p50, p99 and the ratio to GET /healthz of the same server in the same run; on the
# memory store and on PostgreSQL (DATABASE_URL's server, default
# postgres://postgres@127.0.0.1:5432/postgres; a fresh database is created and dropped).
# Loopback only; each scenario runs SECONDS_PER_SCENARIO (default 5).
#
# On PostgreSQL it also runs pgbench, on the same database after the HTTP scenarios,
# with the SQL statements the server sends per booking and per availability read (see the
# docs of bench/src/bin/load/main.rs), and prints the server's rates over
# pgbench's. pgbench runs with as many clients as the server's pool
# (BOOKING_DB_MAX_CONNECTIONS, default 16); PGBENCH_CLIENTS="16 64" runs several and takes
# the best as the ceiling. PGBENCH names the binary. Last, on PostgreSQL, the shared
# ceiling script ../shared/perf/pg-ceiling.sh (when present beside the repository) prints
# what the database does for a booking with no application in the way; compare
# POST /v1/bookings with its `full` row.
#
#   reference-server/scripts/load.sh            # both stores
#   STORES=postgres reference-server/scripts/load.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${SECONDS_PER_SCENARIO:-5}"
concurrency="${CONCURRENCY:-16 32 64}"
stores="${STORES:-memory postgres}"
if [[ -z "${PGBENCH:-}" ]] && ! command -v pgbench >/dev/null 2>&1; then
    for candidate in /usr/lib/postgresql/*/bin/pgbench; do
        [[ -x "$candidate" ]] && export PGBENCH="$candidate"
    done
fi
cargo build --quiet --release -p booking-bench --bin load --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/load"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
for store in $stores; do
    RUST_LOG=warn "$bin" "$store" "$seconds" "$concurrency"
    echo
done
ceiling="$root/../shared/perf/pg-ceiling.sh"
if [[ " $stores " == *" postgres "* && -f "$ceiling" ]]; then
    echo "pg-ceiling.sh (pgbench, ${PERF_CLIENTS:-16} clients, ${PERF_SECONDS:-$seconds} s per row):"
    PERF_SECONDS="${PERF_SECONDS:-$seconds}" bash "$ceiling"
fi
