#!/usr/bin/env bash
# Webhook figures of the reference server on PostgreSQL (DATABASE_URL's server, default
# postgres://postgres@127.0.0.1:5432/postgres; a fresh database is created and dropped):
#
#   intake: signed payment_intent.succeeded events accepted per second by
#           POST /v1/webhooks/stripe at 32 concurrent connections (verify + inbox insert),
#           p50 and p99;
#   apply:  events applied per second by one inbox worker (claim a batch, settle each
#           event in one transaction), with the confirmed holds counted;
#
# each against pgbench running the same SQL in the same run (the inbox insert at 32
# clients, PGBENCH_CLIENTS="16 32" runs several; the worker's statements per event at 1
# client), and the ratios. See the docs of bench/src/bin/webhook_load/main.rs.
# Loopback only; each phase runs SECONDS_PER_SCENARIO (default 5), the apply phase until
# the inbox is empty. PGBENCH names the binary.
#
#   reference-server/scripts/webhook_load.sh
#   SECONDS_PER_SCENARIO=10 reference-server/scripts/webhook_load.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${SECONDS_PER_SCENARIO:-5}"
if [[ -z "${PGBENCH:-}" ]] && ! command -v pgbench >/dev/null 2>&1; then
    for candidate in /usr/lib/postgresql/*/bin/pgbench; do
        [[ -x "$candidate" ]] && export PGBENCH="$candidate"
    done
fi
cargo build --quiet --release -p booking-bench --bin webhook_load --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/webhook_load"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
RUST_LOG=warn "$bin" "$seconds"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
