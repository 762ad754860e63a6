//! Embedding the engine over PostgreSQL: connect, migrate, then the same use cases as with
//! the memory store, with the no-double-booking guarantee enforced by the database's
//! exclusion constraint, across any number of processes.
//!
//! [`embed`] is the program; the test hands it a fresh database of its own on the server of
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). Without a
//! reachable server the test says `SKIPPED` and passes, unless `BOOKING_REQUIRE_POSTGRES=1`
//! (set by the test script in CI), where it fails like every other PostgreSQL test.
//!
//! Run it with `cargo test -p examples --test postgres_embedder -- --nocapture`.

use std::sync::Arc;

use booking_core::schedule::ScheduleInput;
use booking_core::{
    Actor, BookingEngine, BookingRequest, EngineConfig, Error, NewClient, NewProfessional,
    SystemClock, TimeRange, TokenHash,
};
use booking_postgres::test_support::TestDatabase;
use booking_postgres::{PgConfig, PgStore};
use chrono::{Duration, Utc};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Books one slot with a professional over the PostgreSQL database at `database_url`, has
/// sixteen tasks race for another, and cancels the first booking.
async fn embed(database_url: &str) -> Result<(), BoxError> {
    let store = PgStore::connect(&PgConfig::from_url(database_url)).await?;
    // Applies the embedded migrations that are not applied yet; safe to run on every start.
    store.migrate().await?;
    let engine = Arc::new(BookingEngine::new(
        Arc::new(store),
        SystemClock,
        EngineConfig::default(),
    ));

    let pro: NewProfessional = serde_json::from_value(json!({
        "name": "Noor Haddad", "category": "yoga", "location": {"lat": 48.137, "lng": 11.575},
        "hourly_rate_cents": 4_500, "currency": "eur", "timezone": "Europe/Berlin"
    }))?;
    let pro = engine
        .create_professional(&pro, TokenHash::of("noor-token"))
        .await?;
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .map(|d| json!({"weekday": d, "start": "07:00", "end": "21:00"}));
    let schedule: ScheduleInput = serde_json::from_value(json!({
        "timezone": "Europe/Berlin", "weekly": every_day, "min_notice_minutes": 60
    }))?;
    engine
        .set_schedule(Actor::Professional(pro.id), pro.id, schedule.validate()?)
        .await?;
    let client = NewClient {
        name: "Sam".into(),
        email: "sam@example.com".into(),
    };
    let client = engine
        .create_client(&client, TokenHash::of("sam-token"))
        .await?;

    let week = TimeRange::new(Utc::now(), Utc::now() + Duration::days(7))?;
    let slots = engine
        .availability(pro.id, week, Duration::minutes(60))
        .await?;
    let (Some(&first), Some(&contested)) = (slots.first(), slots.get(4)) else {
        return Err("a week of open hours offers slots".into());
    };
    let request = |range| BookingRequest {
        client_id: client.id,
        professional_id: pro.id,
        range,
        request_ref: None,
    };
    let booking = engine
        .create_booking(&request(first))
        .await?
        .booking()
        .clone();
    println!(
        "booked {} for {}",
        booking.range.start(),
        booking.price.amount_cents
    );

    // Sixteen concurrent attempts at one slot: the database lets exactly one through.
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let request = request(contested);
            tokio::spawn(async move { engine.create_booking(&request).await })
        })
        .collect();
    let (mut won, mut refused) = (0, 0);
    for attempt in attempts {
        match attempt.await? {
            Ok(_) => won += 1,
            Err(Error::SlotUnavailable) => refused += 1,
            Err(other) => return Err(other.into()),
        }
    }
    println!("{won} booking won the race, {refused} were refused");
    assert_eq!((won, refused), (1, 15));

    let cancelled = engine
        .cancel_booking(Actor::Client(client.id), booking.id)
        .await?;
    println!("cancelled: {}", cancelled.status);
    engine.store().close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedding_over_postgres() -> Result<(), BoxError> {
    let Some(db) = TestDatabase::create().await else {
        return Ok(()); // SKIPPED (printed by the harness); a failure when required
    };
    embed(&db.url()).await
}
