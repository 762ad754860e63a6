//! The pgbench side of the webhook load driver: scripts (a) and (b) made of the adapter's
//! own statements, and their runs.

use std::path::{Path, PathBuf};

use booking_bench::{percentile, run_pgbench, substitute};
use booking_core::events::{DomainEvent, EventKind};
use booking_core::payment::Payment;
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Money, ProfessionalId, TimeRange,
};
use booking_postgres::test_support::{TestDatabase, sql};
use chrono::{DateTime, Utc};

use crate::{CLAIM_BATCH, Outcome, PGBENCH_SLOTS, PRICE_CENTS, booking_id, booking_id_sql};

/// `SELECT .. AS body \gset` of `text` (hex-encoded, so quoting never matters).
fn gset_text(name: &str, text: &[u8]) -> String {
    let hex: String = text.iter().map(|b| format!("{b:02x}")).collect();
    format!("SELECT convert_from(decode('{hex}', 'hex'), 'UTF8') AS {name} \\gset\n")
}

/// Script (a): the inbox insert of one accepted event, with an event id unique per run,
/// client and transaction.
pub(crate) fn intake_script(body: &[u8]) -> String {
    let event_id = "'evt_pgbi_' || :run || '_' || :client_id || '_' || :n";
    let list_id = format!("md5({event_id})::uuid");
    let insert = substitute(
        sql::INBOX_RECORD,
        &[
            "'stripe'::text",
            event_id,
            &list_id,
            "'payment_intent.succeeded'::text",
            "convert_to(:body, 'UTF8')",
            "now()",
        ],
    );
    format!(
        "\\set n :n + 1\n\\if :n = 1\n{}\\endif\n{insert};\n",
        gset_text("body", body)
    )
}

/// Script (b): what one worker sends per event: the claim every [`CLAIM_BATCH`]
/// transactions, then the read of the booking and the settle transaction for event `n`.
pub(crate) fn apply_script(pro: &str, outbox_payload: &str) -> String {
    let lease = "md5('pgb-lease-' || :batch)::uuid";
    let event_id = "'evt_pgb_' || :n";
    let booking = booking_id_sql(":slot");
    let limit = format!("{CLAIM_BATCH}::bigint");
    let claim = substitute(
        sql::INBOX_CLAIM,
        &["now()", &limit, lease, "now() + interval '60 seconds'"],
    );
    let settle = [
        substitute(sql::SELECT_BOOKING, &[&booking]),
        "BEGIN".to_owned(),
        substitute(sql::SETTLE_LOCK_EVENT, &["'stripe'::text", event_id, lease]),
        substitute(sql::SETTLE_LOCK_PROFESSIONAL, &[&booking]),
        substitute(sql::SETTLE_LOCK_BOOKING, &[&booking]),
        substitute(
            sql::SETTLE_WRITE,
            &[
                ":pro::uuid",
                &booking,
                "'confirmed'::text",
                "NULL::timestamptz",
                "NULL::text",
                "now()",
                "'stripe'::text",
                "'pi_pgb_' || :n",
                "NULL::text",
                "0::bigint",
                "false",
                "NULL::text",
                "true",
            ],
        ),
        substitute(
            sql::SETTLE_OUTBOX,
            &[
                "md5('pgb-event-' || :n)::uuid",
                "'booking_confirmed'::text",
                &booking,
                ":pro::uuid",
                "now()",
                ":payload::jsonb",
            ],
        ),
        substitute(
            sql::SETTLE_MARK_PROCESSED,
            &["'stripe'::text", event_id, lease, "now()"],
        ),
        "COMMIT".to_owned(),
    ];
    let mut script = format!(
        "\\set n :n + 1\n\\set slot {PGBENCH_SLOTS} + :n\n\\set batch (:n - 1) / {CLAIM_BATCH}\n\
         \\if :n = 1\nSELECT '{pro}' AS pro \\gset\n{}\\endif\n\
         \\if (:n - 1) % {CLAIM_BATCH} = 0\n{claim};\n\\endif\n",
        gset_text("payload", outbox_payload.as_bytes())
    );
    for s in settle {
        script.push_str(&s);
        script.push_str(";\n");
    }
    script
}

/// One pgbench run of `text` at `clients` for `seconds`; `run` keeps ids apart.
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
        let copy = PathBuf::from(copy);
        std::fs::create_dir_all(&copy).map_err(|e| e.to_string())?;
        std::fs::write(copy.join(format!("webhook-{run}.sql")), text).map_err(|e| e.to_string())?;
    }
    let r = run_pgbench(db, binary, clients, seconds, run, "webhook-load", text)?;
    Ok(Outcome {
        name: format!("pgbench: {name}, {clients} clients"),
        count: r.processed,
        errors: r.failed,
        rate: r.tps,
        p50: Some(percentile(&r.latencies, 0.50)),
        p99: Some(percentile(&r.latencies, 0.99)),
        cpu_own: None,
        cpu_other: r.cpu_other,
    })
}

/// The outbox payload of one confirmation (the adapter serialises its own per booking).
pub(crate) fn confirmed_payload(pro: ProfessionalId, client: ClientId) -> String {
    let now = Utc::now();
    let start = DateTime::<Utc>::from_timestamp(2_524_608_000, 0).unwrap();
    let range = TimeRange::new(start, start + chrono::Duration::minutes(30)).expect("range");
    let booking = Booking {
        id: booking_id(PGBENCH_SLOTS).parse::<BookingId>().unwrap(),
        professional_id: pro,
        client_id: client,
        range,
        blocked: range,
        status: BookingStatus::Confirmed,
        price: Money::new(PRICE_CENTS, Currency::parse("eur").unwrap()).unwrap(),
        hold_expires_at: None,
        request_ref: None,
        payment: Some(Payment {
            client_secret: None,
            intent_closed: true,
            ..Payment::new("stripe", format!("pi_pgb_{PGBENCH_SLOTS}"), "unused")
        }),
        created_at: now,
        updated_at: now,
    };
    serde_json::to_string(&DomainEvent::new(
        EventKind::BookingConfirmed,
        &booking,
        None,
    ))
    .unwrap()
}
