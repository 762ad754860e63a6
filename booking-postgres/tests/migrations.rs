//! Upgrading a database that holds data: a fresh database is migrated to the previous
//! schema, filled the way the previous release wrote its rows (professionals, their
//! tokens and schedules, clients, bookings, idempotency records, outbox events), then the
//! full [`MIGRATOR`] runs and the adapter must find and use every row.
//!
//! The previous schema is the one before the last five migrations, `outbox_consumers`
//! (consumer marks and leases on `domain_events`), `webhook_subscriptions` (new tables),
//! `search` (extensions, a generated `search_doc` column and indexes on `professionals`),
//! `search_knn` and `search_inline_earth` (those indexes rebuilt over rows that already
//! exist, the last on a new function, which the radius search below goes through): the
//! ones that change tables which already hold data, plus the one between them, so the step
//! spans every migration a deployment of the release before them has still to apply. A new migration
//! makes the count below fail on purpose: decide whether this test's rows must exercise it.
//!
//! Like the other Postgres tests, without a reachable server they print `SKIPPED` and
//! return, unless CI or `BOOKING_REQUIRE_POSTGRES` is set to a true value.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use booking_core::idempotency::{Decision, Fingerprint, IdempotencyKey, Scope};
use booking_core::search::{GeoFilter, TextQuery};
use booking_core::store::{
    BookingStore, IdempotencyStore, Inserted, OutboxStore, ProfessionalQuery,
};
use booking_core::{
    Actor, Booking, BookingEngine, BookingId, BookingRequest, BookingStatus, Client, ClientId,
    DomainEvent, EngineConfig, Error, EventKind, GeoPoint, ManualClock, NewClient, NewProfessional,
    Principal, Professional, ProfessionalId, Schedule, TimeRange, TokenHash, events::Consumer,
    price_for,
};
use booking_postgres::test_support::TestDatabase;
use booking_postgres::{MIGRATOR, PgStore};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::migrate::Migrator;

/// The last migration of the previous schema: `20260620000001_booking_payments`.
const PREVIOUS: i64 = 20260620000001;

/// When the previous release wrote the rows: 2027-03-01T08:00Z.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(at(start), at(end)).unwrap()
}

async fn has_column(store: &PgStore, table: &str, column: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_name = $1 AND column_name = $2)",
    )
    .bind(table)
    .bind(column)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// The rows the previous release wrote, as domain values.
struct Data {
    pro: Professional,
    client: Client,
    confirmed: Booking,
    hold: Booking,
    events: Vec<DomainEvent>,
    scope: Scope,
    key: IdempotencyKey,
    fingerprint: Fingerprint,
}

fn data() -> Data {
    let pro = NewProfessional {
        name: "Migrated Masseuse".into(),
        category: "massage".into(),
        location: GeoPoint {
            lat: 52.52,
            lng: 13.405,
        },
        hourly_rate_cents: 6_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
    .validate(ProfessionalId::new_at(t0()), t0())
    .unwrap();
    let client = NewClient {
        name: "Old Client".into(),
        email: "old@example.com".into(),
    }
    .validate(ClientId::new_at(t0()), t0())
    .unwrap();
    let booking = |start: i64, status: BookingStatus, request_ref: Option<&str>| Booking {
        id: BookingId::new_at(t0()),
        professional_id: pro.id,
        client_id: client.id,
        range: range(start, start + 60),
        blocked: range(start, start + 60),
        status,
        price: price_for(pro.hourly_rate(), 60).unwrap(),
        hold_expires_at: (status == BookingStatus::PendingPayment).then(|| at(15)),
        request_ref: request_ref.map(str::to_owned),
        payment: None,
        created_at: t0(),
        updated_at: t0(),
    };
    let confirmed = booking(60, BookingStatus::Confirmed, None);
    let hold = booking(180, BookingStatus::PendingPayment, Some("ref-old-1"));
    let events = [&confirmed, &hold]
        .into_iter()
        .map(|b| DomainEvent::new(EventKind::BookingCreated, b, None))
        .collect();
    Data {
        scope: Scope::new(format!("client:{}", client.id)),
        key: IdempotencyKey::parse("old-key").unwrap(),
        fingerprint: Fingerprint::of_request("POST", "/v1/bookings", b"{\"old\":true}"),
        pro,
        client,
        confirmed,
        hold,
        events,
    }
}

/// Writes `d` with the previous schema's columns, as the previous release did.
async fn write_previous_rows(store: &PgStore, d: &Data) {
    let pool = store.pool();
    sqlx::query(
        "INSERT INTO professionals (id, name, category, lat, lng, hourly_rate_cents, currency, \
         timezone, is_active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(d.pro.id.as_uuid())
    .bind(&d.pro.name)
    .bind(d.pro.category.as_str())
    .bind(d.pro.location.lat)
    .bind(d.pro.location.lng)
    .bind(d.pro.hourly_rate_cents)
    .bind(d.pro.currency.as_str())
    .bind(d.pro.timezone.name())
    .bind(d.pro.is_active)
    .bind(d.pro.created_at)
    .bind(d.pro.updated_at)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO api_tokens (token_hash, principal_kind, principal_id) \
         VALUES ($1, 'professional', $2)",
    )
    .bind(TokenHash::of("old-pro-token").0.to_vec())
    .bind(d.pro.id.as_uuid())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO schedules (professional_id, body) VALUES ($1, $2)")
        .bind(d.pro.id.as_uuid())
        .bind(sqlx::types::Json(Schedule::always_open(d.pro.timezone)))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO clients (id, name, email, created_at) VALUES ($1, $2, $3, $4)")
        .bind(d.client.id.as_uuid())
        .bind(&d.client.name)
        .bind(&d.client.email)
        .bind(d.client.created_at)
        .execute(pool)
        .await
        .unwrap();
    for b in [&d.confirmed, &d.hold] {
        sqlx::query(
            "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
             blocked_range, status, price_cents, currency, hold_expires_at, request_ref, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, tstzrange($6, $7, '[)'), $8, $9, $10, $11, $12, \
             $13, $14)",
        )
        .bind(b.id.as_uuid())
        .bind(b.professional_id.as_uuid())
        .bind(b.client_id.as_uuid())
        .bind(b.range.start())
        .bind(b.range.end())
        .bind(b.blocked.start())
        .bind(b.blocked.end())
        .bind(b.status.as_str())
        .bind(b.price.amount_cents)
        .bind(b.price.currency.as_str())
        .bind(b.hold_expires_at)
        .bind(&b.request_ref)
        .bind(b.created_at)
        .bind(b.updated_at)
        .execute(pool)
        .await
        .unwrap();
    }
    for e in &d.events {
        sqlx::query(
            "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, \
             payload) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.as_uuid())
        .bind(e.kind.as_str())
        .bind(e.booking_id.as_uuid())
        .bind(e.professional_id.as_uuid())
        .bind(e.occurred_at)
        .bind(sqlx::types::Json(e))
        .execute(pool)
        .await
        .unwrap();
    }
    // A completed idempotent request: its answer names the confirmed booking.
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, response_status, \
         response_headers, response_body, created_at, expires_at) \
         VALUES ($1, $2, $3, 201, $4, $5, $6, $7)",
    )
    .bind(d.scope.as_str())
    .bind(d.key.as_str())
    .bind(d.fingerprint.0.to_vec())
    .bind(sqlx::types::Json(vec![(
        "content-type".to_owned(),
        "application/json".to_owned(),
    )]))
    .bind(d.confirmed.id.to_string().into_bytes())
    .bind(t0())
    .bind(at(24 * 60))
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_the_previous_schema_survive_the_upgrade_and_stay_usable() {
    let Some(db) = TestDatabase::create_unmigrated().await else {
        return;
    };
    let store = db.into_store(4).await;
    let later: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > PREVIOUS)
        .collect();
    assert_eq!(
        later.len(),
        5,
        "the previous schema is five migrations back"
    );
    let previous = Migrator::with_migrations(
        MIGRATOR
            .iter()
            .filter(|m| m.version <= PREVIOUS)
            .cloned()
            .collect(),
    );
    previous.run(store.pool()).await.unwrap();
    assert!(!has_column(&store, "professionals", "search_doc").await);
    assert!(!has_column(&store, "domain_events", "nats_marked_at").await);

    let d = data();
    write_previous_rows(&store, &d).await;
    store.migrate().await.unwrap();
    assert!(has_column(&store, "professionals", "search_doc").await);

    let store = Arc::new(store);
    let engine = BookingEngine::new(
        Arc::clone(&store),
        ManualClock::new(at(5)),
        EngineConfig {
            hold_ttl: Some(Duration::minutes(15)),
            ..EngineConfig::default()
        },
    );

    // The directory: the same rows, the token still signs in, search finds the
    // professional by text and by radius (the generated search_doc covers old rows).
    assert_eq!(engine.get_professional(d.pro.id).await.unwrap(), d.pro);
    assert_eq!(engine.get_client(d.client.id).await.unwrap(), d.client);
    assert_eq!(
        engine.authenticate("old-pro-token").await.unwrap(),
        Some(Principal::Professional(d.pro.id))
    );
    let by_text = ProfessionalQuery {
        text: Some(TextQuery::parse("migrated mass").unwrap()),
        ..ProfessionalQuery::all(10)
    };
    let found = engine.search_professionals(&by_text).await.unwrap().items;
    assert_eq!(found, vec![d.pro.clone()]);
    let nearby = ProfessionalQuery {
        near: Some(GeoFilter::new(52.5, 13.4, 5.0).unwrap()),
        ..ProfessionalQuery::all(10)
    };
    let found = engine.search_professionals(&nearby).await.unwrap().items;
    assert_eq!(found, vec![d.pro.clone()]);

    // Bookings: read back unchanged, and they still block their slots.
    let stored = store.get_booking(d.confirmed.id).await.unwrap();
    assert_eq!(stored.as_ref(), Some(&d.confirmed));
    let overlapping = BookingRequest {
        client_id: d.client.id,
        professional_id: d.pro.id,
        range: range(90, 150),
        request_ref: None,
    };
    assert_eq!(
        engine.create_booking(&overlapping).await,
        Err(Error::SlotUnavailable)
    );
    let window = range(0, 6 * 60);
    let slots = engine
        .availability(d.pro.id, window, Duration::minutes(60))
        .await
        .unwrap();
    assert!(!slots.is_empty());
    assert!(
        slots
            .iter()
            .all(|s| !s.overlaps(&d.confirmed.blocked) && !s.overlaps(&d.hold.blocked))
    );
    // A retry of the request that made the hold finds it.
    let retry = BookingRequest {
        range: d.hold.range,
        request_ref: d.hold.request_ref.clone(),
        ..overlapping.clone()
    };
    assert_eq!(
        engine.create_booking(&retry).await,
        Ok(Inserted::Existing(d.hold.clone()))
    );

    // The idempotency record replays its answer and is purged when it expires.
    match engine
        .begin_request(&d.scope, &d.key, d.fingerprint)
        .await
        .unwrap()
    {
        Decision::Replay {
            response,
            first_seen,
        } => {
            assert_eq!(response.status, 201);
            assert_eq!(response.body, d.confirmed.id.to_string().into_bytes());
            assert_eq!(first_seen, t0());
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(store.purge_expired(at(24 * 60), 10).await, Ok(1));

    // The outbox: old events read back, are handed to each consumer once, and new events
    // follow them.
    let events = store.events_after(None, 10).await.unwrap();
    assert_eq!(events, d.events);
    let claim = store
        .claim_events(Consumer::Nats, at(5), 10, Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(claim.events, d.events);
    let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
    assert_eq!(
        store
            .mark_events(Consumer::Nats, claim.lease, &ids, at(5))
            .await,
        Ok(2)
    );
    let free = BookingRequest {
        range: range(300, 360),
        ..overlapping
    };
    let Inserted::Created(new) = engine.create_booking(&free).await.unwrap() else {
        panic!("a new booking in a free slot");
    };
    let after = store.events_after(Some(d.events[1].id), 10).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|e| (e.kind, e.booking_id))
            .collect::<Vec<_>>(),
        vec![(EventKind::BookingCreated, new.id)]
    );
    let next = store
        .claim_events(Consumer::Nats, at(5), 10, Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(next.events.len(), 1);
    assert_eq!(next.events[0].booking_id, new.id);
    assert_eq!(
        engine
            .get_booking(Actor::Admin, d.hold.id)
            .await
            .unwrap()
            .status,
        BookingStatus::PendingPayment
    );
}
