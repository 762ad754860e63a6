#!/usr/bin/env bash
# Property-based API testing of a running reference-server against its own /openapi.json.
#
# Installs schemathesis (PyPI) into a venv under target/, starts the server on a free
# loopback port (on PostgreSQL when DATABASE_URL is set: a fresh database on that server,
# created here and dropped on exit, never DATABASE_URL's own database; otherwise the
# memory store) with a known admin token, creates a client and a professional
# (with a schedule), then runs schemathesis with every check (`--checks all`, among them
# `positive_data_acceptance` and `negative_data_rejection`) and every phase (examples,
# coverage, fuzzing and the stateful phase, which follows the document's OpenAPI links) as
# the admin, as the client and as the professional. Payments are on, against the local fake
# of Stripe (`cargo run --example fake_stripe`). Exits non-zero if any check fails.
#
# Configuration: scripts/schemathesis.toml (committed; the few documented refusals that no
# schema can state). This script appends run-specific dictionaries to a copy of it: the
# professional's id, bookable slots and an availability window, so that some generated
# requests hit a real professional at an offered time instead of a 404 or a 422.
#
# Environment: MAX_EXAMPLES (default 20) bounds the examples per operation and phase;
# SCHEMATHESIS_VERSION (default 4.32.5) pins the tool.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/schemathesis-venv"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
max_examples="${MAX_EXAMPLES:-20}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --quiet -p reference-server --bin reference-server --example fake_stripe \
    --manifest-path "$root/Cargo.toml"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin="schemathesis-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
log="$target/schemathesis-server.log"

# The store: a fresh database on DATABASE_URL's server, or memory.
fresh_db=""
server_url=""
if [[ -n "${DATABASE_URL:-}" ]]; then
    fresh_db="schemathesis_$$_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
    server_url="$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$DATABASE_URL" "$fresh_db")"
    psql -q "$DATABASE_URL" -c "CREATE DATABASE $fresh_db"
    echo "schemathesis: server on PostgreSQL, fresh database $fresh_db"
else
    echo "schemathesis: server on the memory store"
fi

server_pid=""
stripe_pid=""
cleanup() {
    if [[ -n "$stripe_pid" ]]; then
        kill "$stripe_pid" 2>/dev/null || true
        wait "$stripe_pid" 2>/dev/null || true
    fi
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$fresh_db" ]]; then
        psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $fresh_db WITH (FORCE)" || true
    fi
}
trap cleanup EXIT

# Payments on, against the local fake of Stripe's API the tests use: bookings are
# `pending_payment` holds with a PaymentIntent, so their schema is exercised in full.
stripe_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$target/debug/examples/fake_stripe" "127.0.0.1:$stripe_port" >"$target/schemathesis-stripe.log" 2>&1 &
stripe_pid=$!
export STRIPE_SECRET_KEY="sk_test_schemathesis" STRIPE_API_BASE="http://127.0.0.1:$stripe_port"
export STRIPE_WEBHOOK_SECRETS="whsec_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

if [[ -n "$server_url" ]]; then
    DATABASE_URL="$server_url" BOOKING_LISTEN="127.0.0.1:$port" BOOKING_ADMIN_TOKEN="$admin" \
        RUST_LOG=warn "$target/debug/reference-server" >"$log" 2>&1 &
else
    env -u DATABASE_URL BOOKING_LISTEN="127.0.0.1:$port" BOOKING_ADMIN_TOKEN="$admin" \
        RUST_LOG=warn "$target/debug/reference-server" >"$log" 2>&1 &
fi
server_pid=$!

for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
post() { # path token key body
    curl -fsS -X POST "$base$1" -H "Authorization: Bearer $2" -H "Idempotency-Key: $3" \
        -H 'Content-Type: application/json' -d "$4"
}
client_token="$(post /v1/clients "$admin" setup-client '{"name":"Schema","email":"schema@example.com"}' | json_field api_token)"
pro="$(post /v1/professionals "$admin" setup-pro '{"name":"Pro","category":"massage","location":{"lat":52.5,"lng":13.4},"hourly_rate_cents":6000,"currency":"eur","timezone":"Europe/Berlin"}')"
pro_id="$(echo "$pro" | json_field id)"
pro_token="$(echo "$pro" | json_field api_token)"
curl -fsS -X PUT "$base/v1/professionals/$pro_id/schedule" -H "Authorization: Bearer $pro_token" \
    -H 'Content-Type: application/json' \
    -d '{"timezone":"Europe/Berlin","weekly":[{"weekday":"mon","start":"09:00","end":"17:00"},{"weekday":"wed","start":"09:00","end":"17:00"}]}' >/dev/null

# Offered one-hour slots of the professional in the next ten days (two working days).
read -r from to < <(python3 -c 'import datetime as d; n = d.datetime.now(d.timezone.utc).replace(second=0, microsecond=0); f = "%Y-%m-%dT%H:%M:%SZ"; print(n.strftime(f), (n + d.timedelta(days=10)).strftime(f))')
slots="$(curl -fsS "$base/v1/professionals/$pro_id/availability?from=$from&to=$to&duration_minutes=60" \
    -H "Authorization: Bearer $client_token")"
config="$target/schemathesis.toml"
{
    cat "$here/scripts/schemathesis.toml"
    echo "$slots" | python3 -c '
import json, sys
# Whole hours only: bookings of those never straddle the grid, and any start before any
# end of the same working day is itself an offered range.
slots = [s for s in json.load(sys.stdin)["slots"] if s["start"][14:16] == "00"][:16]
pro_id = sys.argv[1]
print()
print("# ---- appended by schemathesis.sh for this run ----")
print("[dictionaries.professional]")
print("values = %s" % json.dumps([pro_id]))
print("[dictionaries.start]")
print("values = %s" % json.dumps([s["start"] for s in slots]))
print("[dictionaries.end]")
print("values = %s" % json.dumps([s["end"] for s in slots]))
print("[dictionaries.from]")
print("values = %s" % json.dumps([sys.argv[2]]))
print("[dictionaries.to]")
print("values = %s" % json.dumps([sys.argv[3]]))
print("[parameters]")
print("\"query.from\" = { dictionary = \"from\", probability = 0.7 }")
print("\"query.to\" = { dictionary = \"to\", probability = 0.7 }")
print("\"body.professional_id\" = { dictionary = \"professional\", probability = 0.7 }")
print("\"body.start\" = { dictionary = \"start\", probability = 0.7 }")
print("\"body.end\" = { dictionary = \"end\", probability = 0.7 }")
' "$pro_id" "$from" "$to"
} >"$config"

status=0
for who in admin client professional; do
    case "$who" in
        admin) token="$admin" ;;
        client) token="$client_token" ;;
        professional) token="$pro_token" ;;
    esac
    echo "== schemathesis as $who (max $max_examples examples per operation)"
    "$venv/bin/schemathesis" --config-file "$config" run "$base/openapi.json" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --header "Authorization: Bearer $token" \
        --max-examples "$max_examples" \
        --seed 1 \
        --no-color || status=$?
done
if [ "$status" -ne 0 ]; then
    echo "schemathesis found problems (server log: $log)" >&2
fi
exit "$status"
