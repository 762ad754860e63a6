//! Relay throughput: domain events per second from the PostgreSQL outbox to JetStream
//! acknowledgements (marked delivered), with one relay and with two relays at once.
//!
//! ```text
//! cargo run --release -p booking-bench --bin relay_load -- [events]
//! ```
//!
//! On a fresh database of `DATABASE_URL`'s server it seeds `events` (default 20,000)
//! outbox rows, each a distinct booking's `booking_created` event, then runs
//! [`Relay::round`] (claim 256, publish pipelined with `Nats-Msg-Id`, await the acks, mark)
//! until the outbox is drained, against the NATS server of `NATS_URL` (default
//! `nats://127.0.0.1:4222`) on a stream of its own, which it deletes afterwards. It then
//! checks that the stream holds exactly one message per event. The same is repeated with
//! two relays draining a second batch concurrently.

#![allow(clippy::print_stdout, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use booking_core::events::{DomainEvent, EventKind};
use booking_postgres::test_support::TestDatabase;
use reference_server::relay::{BATCH, NatsConfig, Relay};
use reference_server::{AppState, Config};

async fn seed(store: &booking_postgres::PgStore, n: i64) {
    let now = chrono::Utc::now();
    let start = now + chrono::Duration::days(1);
    let range = booking_core::TimeRange::new(start, start + chrono::Duration::minutes(30)).unwrap();
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
        request_ref: None,
        payment: None,
        created_at: now,
        updated_at: now,
    };
    let payload =
        serde_json::to_string(&DomainEvent::new(EventKind::BookingCreated, &booking, None))
            .unwrap();
    sqlx::query(
        "WITH g AS (SELECT gen_random_uuid() AS id, gen_random_uuid() AS b \
                    FROM generate_series(1, $1)) \
         INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
         SELECT g.id, 'booking_created', g.b, ($2::jsonb ->> 'professional_id')::uuid, now(), \
                jsonb_set(jsonb_set($2::jsonb, '{id}', to_jsonb(g.id::text)), \
                          '{booking_id}', to_jsonb(g.b::text)) \
         FROM g",
    )
    .bind(n)
    .bind(&payload)
    .execute(store.pool())
    .await
    .expect("seed the outbox");
}

async fn drain(relay: &Relay, state: &AppState) -> usize {
    let mut total = 0;
    loop {
        let n = relay.round(state, BATCH).await.expect("relay round");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

async fn stream_count(config: &NatsConfig) -> u64 {
    let client = async_nats::connect(config.url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events: i64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("events: a number"))
        .unwrap_or(20_000);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let config = NatsConfig {
        url,
        stream: format!("BOOKINGS_BENCH_{tag}"),
        subject_prefix: format!("bench_{tag}.bookings"),
    };
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let db = TestDatabase::create()
        .await
        .expect("PostgreSQL (DATABASE_URL)");
    let store = db.into_store(16).await;
    let state = AppState::new(
        Arc::new(store.clone()),
        &Config::default(),
        "relay-load-admin-token",
        None,
    );

    seed_and_time("1 relay ", &state, &store, &config, events, 1).await;
    seed_and_time("2 relays", &state, &store, &config, events, 2).await;
    if let Ok(client) = async_nats::connect(config.url.as_str()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&config.stream)
            .await;
    }
}

async fn seed_and_time(
    label: &str,
    state: &AppState,
    store: &booking_postgres::PgStore,
    config: &NatsConfig,
    events: i64,
    relays: usize,
) {
    let before = match async_nats::connect(config.url.as_str()).await {
        Ok(c) => match async_nats::jetstream::new(c)
            .get_stream(&config.stream)
            .await
        {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        },
        Err(e) => panic!("NATS unreachable at {}: {e}", config.url),
    };
    seed(store, events).await;
    let mut running = Vec::new();
    for _ in 0..relays {
        running.push(Relay::connect(config.clone()).await.expect("connect NATS"));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for relay in running {
        let state = state.clone();
        tasks.push(tokio::spawn(async move { drain(&relay, &state).await }));
    }
    let mut marked = 0;
    for t in tasks {
        marked += t.await.expect("relay task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let published = stream_count(config).await - before;
    println!(
        "{label}: {marked} events marked in {elapsed:.2} s = {:.0} events/s; stream +{published} messages ({})",
        marked as f64 / elapsed,
        if published == u64::try_from(events).unwrap() && marked as i64 == events {
            "each event once"
        } else {
            "MISMATCH"
        }
    );
}
