#!/usr/bin/env bash
# Property-based API testing of a running reference-server against its own /openapi.json.
#
# Installs schemathesis (PyPI) into a venv under target/, starts the server (memory store)
# on a free loopback port with a known admin token, creates a client and a professional
# (with a schedule) so that more than the admin paths are exercised, then runs schemathesis
# twice (as the admin and as a client) with the checks `not_a_server_error` and
# `response_schema_conformance`. Exits non-zero if any check fails.
#
# Environment: MAX_EXAMPLES (default 30) bounds the examples per operation;
# SCHEMATHESIS_VERSION (default 4.32.5) pins the tool.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/schemathesis-venv"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
max_examples="${MAX_EXAMPLES:-30}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --quiet -p reference-server --manifest-path "$root/Cargo.toml"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin="schemathesis-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
log="$target/schemathesis-server.log"

BOOKING_LISTEN="127.0.0.1:$port" BOOKING_ADMIN_TOKEN="$admin" RUST_LOG=warn \
    "$target/debug/reference-server" >"$log" 2>&1 &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

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

status=0
for who in admin client; do
    if [ "$who" = admin ]; then token="$admin"; else token="$client_token"; fi
    echo "== schemathesis as $who (max $max_examples examples per operation)"
    "$venv/bin/schemathesis" run "$base/openapi.json" \
        --checks not_a_server_error,response_schema_conformance \
        --header "Authorization: Bearer $token" \
        --max-examples "$max_examples" \
        --seed 1 \
        --no-color || status=$?
done
if [ "$status" -ne 0 ]; then
    echo "schemathesis found problems (server log: $log)" >&2
fi
exit "$status"
