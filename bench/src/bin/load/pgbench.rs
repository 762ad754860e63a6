//! The pgbench side of the load driver: the scripts made of the statements one booking and
//! one availability query send, verbatim from the adapter, and their runs.

use std::path::Path;

use booking_bench::{percentile, run_pgbench, substitute};
use booking_core::events::{DomainEvent, EventKind};
use booking_postgres::test_support::{TestDatabase, sql};
use chrono::Utc;

use crate::{CLIENTS, Outcome, PROFESSIONALS};

/// The pgbench script of one `GET /v1/professionals/{id}/availability` over one day: the
/// adapter's one statement (the token look-up is cached by the server).
pub(crate) fn availability_script() -> String {
    let statement = substitute(
        sql::AVAILABILITY_SNAPSHOT,
        &[
            ":pro::uuid",
            "date_trunc('day', now()) + interval '1 day'",
            "date_trunc('day', now()) + interval '2 days'",
            "now()",
        ],
    );
    format!(
        r"\set n :n + 1
\if :n = 1
SELECT id AS pro FROM professionals ORDER BY id OFFSET :client_id % {PROFESSIONALS} LIMIT 1 \gset
\endif
{statement};
"
    )
}

/// The pgbench script: the statements of one `POST /v1/bookings`, in the server's order.
///
/// Client `c` books consecutive 30-minute slots of the `c`-th professional, from
/// 2040-01-01 on (far from the HTTP scenario's slots) plus `run` decades, with keys and
/// references unique per run, client and transaction.
pub(crate) fn pgbench_script(payload: &str) -> String {
    let hex: String = payload.bytes().map(|b| format!("{b:02x}")).collect();
    // Unique per (run, client, transaction).
    let tag = |what: &str| format!("'{what}-' || :run || '-' || :client_id || '-' || :n");
    let scope = "'client:' || :client";
    let key = tag("key");
    let fingerprint = format!("sha256(convert_to({}, 'UTF8'))", tag("fp"));
    let lease = format!("md5({})::uuid", tag("lease"));
    let request_ref = format!("md5({})", tag("ref"));
    let booking_id = format!("md5({})::uuid", tag("booking"));
    let event_id = format!("md5({})::uuid", tag("event"));
    let start = "to_timestamp(:start)";
    let end = "to_timestamp(:stop)";
    let blocked = format!("tstzrange({start}, {end}, '[)')");
    // The token look-up is not here: the server caches principals, so a steady stream of
    // bookings by known clients sends none.
    let statements = [
        substitute(
            sql::BEGIN_BOOKING,
            &[
                scope,
                &key,
                &fingerprint,
                &lease,
                "now() + interval '60 seconds'",
                "now()",
                "now() + interval '1 day'",
                ":pro::uuid",
                ":client::uuid",
            ],
        ),
        substitute(
            sql::INSERT_BOOKING,
            &[
                &booking_id,
                ":pro::uuid",
                ":client::uuid",
                start,
                end,
                &blocked,
                "'confirmed'::text",
                "3000::bigint",
                "'eur'::text",
                "NULL::timestamptz",
                &request_ref,
                "now()",
                "now()",
                "now()",
                &event_id,
                "'booking_created'::text",
                "now()",
                ":payload::jsonb",
                scope,
                &key,
                &lease,
                "201",
                "'[[\"content-type\", \"application/json\"], [\"location\", \"/v1/bookings/x\"]]'",
                "convert_to(:payload, 'UTF8')",
                // No payment: the columns' defaults.
                "NULL::text",
                "NULL::text",
                "NULL::text",
                "0::bigint",
                "false",
                "NULL::text",
                "false",
            ],
        ),
    ];
    let mut script = format!(
        r"\set n :n + 1
\if :n = 1
SELECT id AS pro FROM professionals ORDER BY id OFFSET :client_id LIMIT 1 \gset
SELECT principal_id AS client FROM api_tokens WHERE principal_kind = 'client' ORDER BY principal_id OFFSET :client_id % {CLIENTS} LIMIT 1 \gset
SELECT convert_from(decode('{hex}', 'hex'), 'UTF8') AS payload \gset
\endif
\set start 2208988800 + :run * 315360000 + :n * 1800
\set stop :start + 1800
"
    );
    for s in statements {
        script.push_str(&s);
        script.push_str(";\n");
    }
    script
}

/// One pgbench run of the script; `run` keeps keys and slots apart between runs.
pub(crate) fn pgbench_phase(
    db: &TestDatabase,
    binary: &Path,
    clients: usize,
    seconds: u64,
    run: usize,
    name: &str,
    text: &str,
) -> Result<Outcome, String> {
    if let Some(copy) = std::env::var_os("PGBENCH_SCRIPT_COPY") {
        std::fs::write(copy, text).map_err(|e| e.to_string())?;
    }
    let r = run_pgbench(db, binary, clients, seconds, run, "booking-load", text)?;
    Ok(Outcome {
        name: format!("pgbench: {name}, {clients} clients"),
        requests: r.processed,
        errors: r.failed,
        rps: r.tps,
        p50: percentile(&r.latencies, 0.50),
        p99: percentile(&r.latencies, 0.99),
        cpu_own: 0.0,
        cpu_other: r.cpu_other,
    })
}

/// Counts what pgbench wrote in `run`: bookings and completed keys, one each per
/// transaction.
pub(crate) async fn pgbench_effects(db: &TestDatabase, run: usize) -> (i64, i64) {
    let keys = db
        .query_i64(&format!(
            "SELECT count(*) FROM idempotency_keys \
             WHERE key LIKE 'key-{run}-%' AND response_status = 201"
        ))
        .await
        .expect("count keys");
    let bookings = db
        .query_i64(&format!(
            "SELECT count(*) FROM bookings \
             WHERE starts_at >= to_timestamp(2208988800 + {run} * 315360000::bigint) \
               AND starts_at < to_timestamp(2208988800 + {next} * 315360000::bigint)",
            next = run + 1
        ))
        .await
        .expect("count bookings");
    (bookings, keys)
}

/// A representative outbox payload (the adapter serialises its own per booking).
pub(crate) fn sample_payload() -> String {
    let now = Utc::now();
    let start = now + chrono::Duration::days(1);
    let range =
        booking_core::TimeRange::new(start, start + chrono::Duration::minutes(30)).expect("range");
    let booking = booking_core::Booking {
        id: booking_core::BookingId::new_at(now),
        professional_id: booking_core::ProfessionalId::new_at(now),
        client_id: booking_core::ClientId::new_at(now),
        range,
        blocked: range,
        status: booking_core::BookingStatus::Confirmed,
        price: booking_core::Money::new(3000, booking_core::Currency::parse("eur").unwrap())
            .unwrap(),
        hold_expires_at: None,
        request_ref: Some("0".repeat(64)),
        payment: None,
        created_at: now,
        updated_at: now,
    };
    serde_json::to_string(&DomainEvent::new(EventKind::BookingCreated, &booking, None)).unwrap()
}
