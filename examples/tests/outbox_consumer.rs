//! A consumer of the engine's domain events, reading the outbox of its store directly: what
//! an embedder does to forward booking changes to its own message broker (the reference
//! server's NATS relay works exactly like this).
//!
//! The pattern: claim a batch, publish it, mark it. A claim hands out at most one event per
//! booking (the earliest undelivered one), so per booking events leave in the order they
//! happened; a consumer that dies before marking leaves a claim that runs out, and the same
//! events are handed out again, so the receiving side deduplicates by event id.
//!
//! Run it with `cargo test -p examples --test outbox_consumer -- --nocapture`.

use std::collections::HashSet;
use std::sync::Arc;

use booking_core::events::Consumer;
use booking_core::store::OutboxStore;
use booking_core::testing::Fixture;
use booking_core::{Actor, Clock, DomainEvent, EventId, EventKind};
use booking_memory::MemoryStore;
use chrono::Duration;

/// How long a claim keeps its events from other claimers.
const LEASE: Duration = Duration::seconds(30);

/// Stands in for a message broker: keeps what was published, dropping repeated ids the way
/// a broker's deduplication window (JetStream's `Nats-Msg-Id`) does.
#[derive(Default)]
struct Broker {
    seen: HashSet<EventId>,
    published: Vec<DomainEvent>,
}

impl Broker {
    fn publish(&mut self, event: &DomainEvent) {
        if self.seen.insert(event.id) {
            println!(
                "{} {:?} booking {}",
                event.occurred_at, event.kind, event.booking_id
            );
            self.published.push(event.clone());
        }
    }
}

/// One round of the relay: claim, publish, mark. Returns how many events it marked.
async fn relay_once<S: OutboxStore + ?Sized>(
    store: &S,
    broker: &mut Broker,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, booking_core::Error> {
    let claim = store.claim_events(Consumer::Nats, now, 100, LEASE).await?;
    for event in &claim.events {
        broker.publish(event);
    }
    let ids: Vec<EventId> = claim.events.iter().map(|e| e.id).collect();
    store
        .mark_events(Consumer::Nats, claim.lease, &ids, now)
        .await
}

#[tokio::test]
async fn events_leave_in_order_once_each_even_after_a_crash() -> Result<(), booking_core::Error> {
    let fx = Fixture::new(Arc::new(MemoryStore::new())).await;
    let store = fx.engine.store();
    let first = fx.book(60, 120).await?;
    let second = fx.book(180, 240).await?;
    fx.engine
        .cancel_booking(Actor::Client(fx.client.id), first.id)
        .await?;

    // A relay claims and publishes, then dies before it marks anything.
    let mut broker = Broker::default();
    let claim = store
        .claim_events(Consumer::Nats, fx.clock.now(), 100, LEASE)
        .await?;
    // One event per booking per claim: `first`'s cancellation waits for its creation.
    let kinds: Vec<EventKind> = claim.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::BookingCreated, EventKind::BookingCreated]
    );
    for event in &claim.events {
        broker.publish(event);
    }

    // While the dead relay's claim lasts, nobody else gets those events.
    let mut relay = Broker::default();
    assert_eq!(relay_once(&**store, &mut relay, fx.clock.now()).await?, 0);

    // Once it ran out, another relay gets them again (same ids, dropped by the broker),
    // and after marking them, the next event of `first` follows.
    fx.clock.advance(LEASE + Duration::seconds(1));
    let mut round = 0;
    while relay_once(&**store, &mut broker, fx.clock.now()).await? > 0 {
        round += 1;
        assert!(round < 10, "the outbox drains");
    }

    let order: Vec<(booking_core::BookingId, EventKind)> = broker
        .published
        .iter()
        .map(|e| (e.booking_id, e.kind))
        .collect();
    assert_eq!(
        order,
        [
            (first.id, EventKind::BookingCreated),
            (second.id, EventKind::BookingCreated),
            (first.id, EventKind::BookingCancelled),
        ],
        "each event once, and per booking in the order it happened"
    );
    Ok(())
}
