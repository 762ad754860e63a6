#!/usr/bin/env bash
# Makes sure the local services the tests use are up: PostgreSQL (required by the Postgres
# adapter's tests). Starts it with the machine's own service command when it is down.
set -euo pipefail

pg_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

if [[ -z "${DATABASE_URL:-}" ]]; then
    if ! pg_up; then
        echo "services: PostgreSQL is down, starting it" >&2
        if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
            pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        fi
        for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    fi
    if pg_up; then
        echo "services: PostgreSQL is up on 127.0.0.1:5432" >&2
    else
        echo "services: PostgreSQL is NOT reachable on 127.0.0.1:5432" >&2
    fi
fi
