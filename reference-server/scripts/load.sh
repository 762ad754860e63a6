#!/usr/bin/env bash
# Load figures of the reference server: POST /v1/bookings and GET availability at 64
# concurrent connections, as req/s, p50, p99 and the ratio to GET /healthz of the same
# server in the same run; on the memory store and on PostgreSQL (DATABASE_URL's server,
# default postgres://postgres@127.0.0.1:5432/postgres; a fresh database is created and
# dropped). Loopback only; each scenario runs SECONDS_PER_SCENARIO (default 5).
#
# On PostgreSQL it also runs pgbench, on the same database after the HTTP scenarios,
# with the SQL statements the server sends per booking (see the docs of
# reference-server/examples/load.rs), and prints bookings/s over pgbench's tps. pgbench
# runs with as many clients as the server's pool (BOOKING_DB_MAX_CONNECTIONS, default 16);
# PGBENCH_CLIENTS="16 64" runs several and takes the best as the ceiling. PGBENCH names
# the binary.
#
#   reference-server/scripts/load.sh            # both stores
#   STORES=postgres reference-server/scripts/load.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${SECONDS_PER_SCENARIO:-5}"
concurrency="${CONCURRENCY:-64}"
stores="${STORES:-memory postgres}"
if [[ -z "${PGBENCH:-}" ]] && ! command -v pgbench >/dev/null 2>&1; then
    for candidate in /usr/lib/postgresql/*/bin/pgbench; do
        [[ -x "$candidate" ]] && export PGBENCH="$candidate"
    done
fi
cargo build --quiet --release -p reference-server --example load --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/load"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
for store in $stores; do
    RUST_LOG=warn "$bin" "$store" "$seconds" "$concurrency"
    echo
done
