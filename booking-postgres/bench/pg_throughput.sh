#!/usr/bin/env bash
# Create-booking throughput of booking-postgres versus pgbench running the same SQL, in
# one run; prints both figures and their ratio (target >= 0.8).
#
#   booking-postgres/bench/pg_throughput.sh [SECONDS [CLIENTS]]     (defaults: 10 16)
#
# DATABASE_URL names the server (default postgres://postgres@127.0.0.1:5432/postgres);
# each phase runs on a fresh database that is dropped afterwards. PGBENCH overrides the
# pgbench binary.
set -euo pipefail

if [[ -z "${PGBENCH:-}" ]] && ! command -v pgbench >/dev/null 2>&1; then
    for candidate in /usr/lib/postgresql/*/bin/pgbench; do
        [[ -x "$candidate" ]] && export PGBENCH="$candidate"
    done
fi
if [[ -z "${PGBENCH:-}" ]] && ! command -v pgbench >/dev/null 2>&1; then
    echo "pgbench not found: install postgresql-contrib / postgresql-client or set PGBENCH" >&2
    exit 2
fi

cd "$(dirname "$0")/../.."
exec cargo run --quiet --release -p booking-bench --bin throughput -- "$@"
