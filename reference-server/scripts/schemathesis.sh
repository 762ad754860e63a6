#!/usr/bin/env bash
# Property-based API testing of a running reference-server against its own /openapi.json.
#
# Installs schemathesis (PyPI) into a venv under target/, then runs it twice: against the
# server on the memory store, then against the server on PostgreSQL (a fresh database on
# DATABASE_URL's server, default postgres://postgres@127.0.0.1:5432/postgres, created here
# and dropped after its run, never DATABASE_URL's own database). Each run starts the server
# on a free loopback port with a known admin token, creates a client and a professional
# (with a schedule), then runs schemathesis with every check (`--checks all`, among them
# `positive_data_acceptance` and `negative_data_rejection`) and every phase (examples,
# coverage, fuzzing and the stateful phase, which follows the document's OpenAPI links) as
# the admin, as the client and as the professional. Payments are on, against the local fake
# of Stripe (`cargo run --example fake_stripe`). Exits non-zero if any check fails on either
# store. An unreachable PostgreSQL skips the second run with a loud SKIPPED, or fails it
# when CI is set to a true value (`1`, `true`, `True`) or BOOKING_REQUIRE_POSTGRES=1.
#
# Configuration: scripts/schemathesis.toml (committed; the few documented refusals that no
# schema can state). This script appends run-specific dictionaries to a copy of it: the
# professional's id, bookable slots and an availability window, so that some generated
# requests hit a real professional at an offered time instead of a 404 or a 422.
#
# Environment: MAX_EXAMPLES (default 20) bounds the examples per operation and phase;
# SCHEMATHESIS_VERSION (default 4.32.5) pins the tool; STORES (default "memory postgres")
# picks the runs.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/schemathesis-venv"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
max_examples="${MAX_EXAMPLES:-20}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    # --clear: a venv copied or moved with its target dir keeps scripts that name the old
    # path; start it afresh rather than trust them.
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --quiet -p reference-server --bin reference-server --example fake_stripe \
    --manifest-path "$root/Cargo.toml"

stores="${STORES:-memory postgres}"
database_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
admin="schemathesis-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

server_pid=""
stripe_pid=""
fresh_db=""
stop() { # pid
    if [[ -n "$1" ]]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
stop_server() {
    stop "$server_pid"
    server_pid=""
    if [[ -n "$fresh_db" ]]; then
        psql -q "$database_url" -c "DROP DATABASE IF EXISTS $fresh_db WITH (FORCE)" || true
        fresh_db=""
    fi
}
cleanup() {
    stop_server
    stop "$stripe_pid"
}
trap cleanup EXIT

# Payments on, against the local fake of Stripe's API the tests use: bookings are
# `pending_payment` holds with a PaymentIntent, so their schema is exercised in full.
stripe_port="$(free_port)"
"$target/debug/examples/fake_stripe" "127.0.0.1:$stripe_port" >"$target/schemathesis-stripe.log" 2>&1 &
stripe_pid=$!
export STRIPE_SECRET_KEY="sk_test_schemathesis" STRIPE_API_BASE="http://127.0.0.1:$stripe_port"
export STRIPE_WEBHOOK_SECRETS="whsec_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

# Starts the server on `store` (memory or postgres) and sets `base` and `log`.
start_server() { # store
    local port
    port="$(free_port)"
    base="http://127.0.0.1:$port"
    log="$target/schemathesis-server-$1.log"
    if [[ "$1" == postgres ]]; then
        fresh_db="schemathesis_$$_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
        local server_url
        server_url="$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
            "$database_url" "$fresh_db")"
        psql -q "$database_url" -c "CREATE DATABASE $fresh_db"
        echo "schemathesis: server on PostgreSQL, fresh database $fresh_db"
        DATABASE_URL="$server_url" BOOKING_LISTEN="127.0.0.1:$port" BOOKING_ADMIN_TOKEN="$admin" \
            RUST_LOG=warn "$target/debug/reference-server" >"$log" 2>&1 &
    else
        echo "schemathesis: server on the memory store"
        env -u DATABASE_URL BOOKING_LISTEN="127.0.0.1:$port" BOOKING_ADMIN_TOKEN="$admin" \
            RUST_LOG=warn "$target/debug/reference-server" >"$log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "$base/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "$base/healthz" >/dev/null
}

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
post() { # path token key body
    curl -fsS -X POST "$base$1" -H "Authorization: Bearer $2" -H "Idempotency-Key: $3" \
        -H 'Content-Type: application/json' -d "$4"
}

# Sets up a client and a professional on the running server, then runs schemathesis as
# each principal; sets `status` to 1 if any check failed.
run_schemathesis() { # store
    local client_token pro pro_id pro_token from to slots config token
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
            --no-color || {
            echo "schemathesis found problems on the $1 store (server log: $log)" >&2
            status=1
        }
    done
}

for store in $stores; do
    case "$store" in
        memory | postgres) ;;
        *) echo "STORES: unknown store '$store' (memory, postgres)" >&2 && exit 2 ;;
    esac
done

status=0
for store in $stores; do
    if [[ "$store" == postgres ]] && ! psql -q "$database_url" -c 'SELECT 1' >/dev/null 2>&1; then
        if [[ "${BOOKING_REQUIRE_POSTGRES:-}" == 1 ]] || [[ "${CI:-}" =~ ^(1|true|True|TRUE)$ ]]; then
            echo "schemathesis: PostgreSQL at $database_url is unreachable (required here)" >&2
            status=1
        else
            echo "SKIPPED: schemathesis on PostgreSQL (unreachable at $database_url)" >&2
        fi
        continue
    fi
    start_server "$store"
    run_schemathesis "$store"
    stop_server
done
exit "$status"
