#!/usr/bin/env bash
# Makes sure the local services the tests use are up: PostgreSQL (the Postgres adapter),
# NATS with JetStream (the outbox relay) and Redis (the search cache). Starts each with the
# machine's own service command when it is down.
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

# NATS with JetStream (the outbox relay's tests) and Redis (the search cache's tests), each
# started with the machine's own command when it is down.
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_up 4222; then
    echo "services: NATS is down, starting it" >&2
    if [[ -x /usr/sbin/nats-server ]] && command -v start-stop-daemon >/dev/null 2>&1; then
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    fi
    for _ in $(seq 1 30); do port_up 4222 && break; sleep 1; done
fi
if port_up 4222; then
    echo "services: NATS is up on 127.0.0.1:4222" >&2
else
    echo "services: NATS is NOT reachable on 127.0.0.1:4222" >&2
fi

if ! port_up 6379; then
    echo "services: Redis is down, starting it" >&2
    if command -v redis-server >/dev/null 2>&1; then
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    fi
    for _ in $(seq 1 30); do port_up 6379 && break; sleep 1; done
fi
if port_up 6379; then
    echo "services: Redis is up on 127.0.0.1:6379" >&2
else
    echo "services: Redis is NOT reachable on 127.0.0.1:6379" >&2
fi
