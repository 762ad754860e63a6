//! Checks of outbound webhooks ([`SubscriptionStore`]).
//!
//! [`SubscriptionStore`]: crate::store::SubscriptionStore

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_professional};
use crate::auth::Actor;
use crate::domain::{DeliveryId, SubscriptionId};
use crate::error::{Entity, Error};
use crate::events::{Consumer, EventKind};
use crate::store::{FanOut, Store};
use crate::webhook::outbound::{
    AttemptOutcome, Delivery, DeliveryStatus, NewSubscription, Subscription,
};

const LEASE: Duration = Duration::seconds(30);

/// Stores a subscription to `kinds` (of `professional`, if set) created at `at(minute)`.
async fn subscribe<S: Store + ?Sized>(
    store: &S,
    kinds: &[EventKind],
    professional: Option<crate::domain::ProfessionalId>,
    minute: i64,
) -> Subscription {
    let s = Subscription::new(
        NewSubscription {
            url: "https://hooks.example.com/booking".into(),
            event_types: kinds.to_vec(),
            professional_id: professional,
        },
        "whsec_conformance".into(),
        at(minute),
    );
    store.create_subscription(&s).await.expect("subscribe");
    s
}

const ALL: [EventKind; 5] = [
    EventKind::BookingCreated,
    EventKind::BookingConfirmed,
    EventKind::BookingCancelled,
    EventKind::BookingExpired,
    EventKind::BookingRescheduled,
];

/// Claims and fans out everything the webhooks consumer has left; returns the totals.
async fn fan_out_all<S: Store + ?Sized>(store: &S) -> FanOut {
    let mut total = FanOut::default();
    loop {
        let claim = store
            .claim_events(Consumer::Webhooks, at(0), 100, LEASE)
            .await
            .expect("claim");
        if claim.events.is_empty() {
            return total;
        }
        let done = store
            .record_deliveries(claim.lease, &claim.events, at(0))
            .await
            .expect("fan out");
        assert_eq!(
            done.events_marked,
            claim.events.len(),
            "a live claim marks all"
        );
        total.events_marked += done.events_marked;
        total.deliveries_created += done.deliveries_created;
    }
}

/// Every delivery of `subscription`, in list order, read page by page.
async fn deliveries<S: Store + ?Sized>(store: &S, subscription: SubscriptionId) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_deliveries(subscription, 2, after)
            .await
            .expect("list deliveries");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

/// `SubscriptionStore::create_subscription` and friends: round trip, clean pages, one delete.
pub async fn webhook_subscriptions_roundtrip_and_paginate<S: Store + ?Sized>(store: Arc<S>) {
    // `create_subscription`/`list_subscriptions`/`delete_subscription`: subscriptions round
    // trip with their secret, list in creation order without gaps, and delete once.
    let a = subscribe(&*store, &ALL, None, 1).await;
    let b = subscribe(&*store, &[EventKind::BookingCreated], None, 2).await;
    let c = subscribe(&*store, &[EventKind::BookingExpired], None, 3).await;
    assert_eq!(
        store.create_subscription(&a).await,
        Err(Error::AlreadyExists(Entity::WebhookSubscription))
    );
    assert_eq!(
        store.get_subscription(b.id).await.expect("get"),
        Some(b.clone())
    );
    let first = store.list_subscriptions(2, None).await.expect("list");
    assert_eq!(first.items, vec![a.clone(), b.clone()]);
    let second = store
        .list_subscriptions(2, first.next_cursor)
        .await
        .expect("list");
    assert_eq!(second.items, vec![c.clone()]);
    assert_eq!(second.next_cursor, None);
    let exact = store.list_subscriptions(3, None).await.expect("list");
    assert_eq!(exact.items, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(
        exact.next_cursor, None,
        "a full last page has no next cursor"
    );
    assert!(store.list_subscriptions(0, None).await.is_err());
    store.delete_subscription(b.id).await.expect("delete");
    assert_eq!(
        store.delete_subscription(b.id).await,
        Err(Error::NotFound(Entity::WebhookSubscription))
    );
    assert_eq!(store.get_subscription(b.id).await.expect("get"), None);
    let left = store.list_subscriptions(100, None).await.expect("list");
    assert_eq!(left.items, vec![a, c]);
}

/// `SubscriptionStore::record_deliveries`: one delivery per event and matching subscription.
pub async fn webhook_fan_out_filters_by_type_and_professional<S: Store + ?Sized>(store: Arc<S>) {
    // `record_deliveries`: one delivery per event and matching subscription, filtered by
    // event type and professional.
    let fx = Fixture::new(store.clone()).await;
    let other = new_professional(&fx.engine).await;
    let every = subscribe(&*store, &ALL, None, 1).await;
    let cancels = subscribe(&*store, &[EventKind::BookingCancelled], None, 2).await;
    let mine = subscribe(&*store, &ALL, Some(fx.pro.id), 3).await;
    let theirs = subscribe(&*store, &ALL, Some(other.id), 4).await;
    let booking = fx.book(60, 120).await.expect("book");
    fx.engine
        .cancel_booking(Actor::Admin, booking.id)
        .await
        .expect("cancel");
    let done = fan_out_all(&*store).await;
    assert_eq!(done.events_marked, 2);
    assert_eq!(done.deliveries_created, 2 + 1 + 2);
    let events = store.events_after(None, 10).await.expect("events");
    let cancel = events
        .iter()
        .find(|e| e.kind == EventKind::BookingCancelled)
        .map(|e| e.id);
    let all = deliveries(&*store, every.id).await;
    assert_eq!(all.len(), 2);
    let one = store
        .list_deliveries(every.id, 1, None)
        .await
        .expect("list deliveries");
    assert_eq!(one.items, all[..1]);
    assert!(
        one.next_cursor.is_some(),
        "a page short of the rest has a cursor"
    );
    let two = store
        .list_deliveries(every.id, 2, None)
        .await
        .expect("list deliveries");
    assert_eq!(two.items, all);
    assert_eq!(two.next_cursor, None, "a full last page has no next cursor");
    assert_eq!(deliveries(&*store, mine.id).await.len(), 2);
    assert!(deliveries(&*store, theirs.id).await.is_empty());
    let cancelled = deliveries(&*store, cancels.id).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(Some(cancelled[0].event_id), cancel);
    let mut ids: Vec<_> = all.iter().map(|d| d.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one delivery per event");
    for d in all.iter().chain(&cancelled) {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempt, 0);
        assert_eq!(d.next_attempt_at, Some(at(0)));
    }
    assert_eq!(
        fan_out_all(&*store).await,
        FanOut::default(),
        "nothing left"
    );
}

/// `SubscriptionStore::record_deliveries`: exactly once, even under a stale lease.
pub async fn webhook_fan_out_is_exactly_once_under_a_stale_lease<S: Store + ?Sized>(store: Arc<S>) {
    // `record_deliveries`: exactly once: a claim whose lease ran out and was claimed again
    // creates nothing, and the new claim creates each delivery once.
    let fx = Fixture::new(store.clone()).await;
    let s = subscribe(&*store, &ALL, None, 1).await;
    fx.book(60, 120).await.expect("book");
    let stale = store
        .claim_events(Consumer::Webhooks, at(0), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(stale.events.len(), 1);
    let later = at(0) + LEASE + Duration::seconds(1);
    let fresh = store
        .claim_events(Consumer::Webhooks, later, 10, LEASE)
        .await
        .expect("claim again");
    assert_eq!(fresh.events, stale.events);
    assert_eq!(
        store
            .record_deliveries(stale.lease, &stale.events, later)
            .await
            .expect("stale fan-out"),
        FanOut::default()
    );
    assert!(deliveries(&*store, s.id).await.is_empty());
    let done = store
        .record_deliveries(fresh.lease, &fresh.events, later)
        .await
        .expect("fan out");
    assert_eq!(
        done,
        FanOut {
            events_marked: 1,
            deliveries_created: 1
        }
    );
    assert_eq!(
        store
            .record_deliveries(fresh.lease, &fresh.events, later)
            .await
            .expect("again"),
        FanOut::default(),
        "marked events are not fanned out twice"
    );
    assert_eq!(deliveries(&*store, s.id).await.len(), 1);
    let nats = store
        .claim_events(Consumer::Nats, later, 10, LEASE)
        .await
        .expect("claim nats");
    assert_eq!(
        nats.events.len(),
        1,
        "the NATS consumer keeps its own marks"
    );
}

/// `SubscriptionStore::claim_deliveries`: a claim hides the delivery until its lease ends.
pub async fn webhook_delivery_claims_are_exclusive<S: Store + ?Sized>(store: Arc<S>) {
    // `claim_deliveries`: a claim counts an attempt and hides the delivery from other
    // claimers until its lease runs out; `settle_delivery` needs the owning lease.
    let fx = Fixture::new(store.clone()).await;
    subscribe(&*store, &ALL, None, 1).await;
    fx.book(60, 120).await.expect("book");
    fan_out_all(&*store).await;
    let first = store
        .claim_deliveries(at(0), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    let d = &first[0];
    assert_eq!(d.delivery.attempt, 1);
    assert_eq!(d.delivery.first_attempt_at, Some(at(0)));
    assert_eq!(d.url, "https://hooks.example.com/booking");
    assert_eq!(d.secret, "whsec_conformance");
    assert_eq!(d.event.id, d.delivery.event_id);
    assert!(
        store
            .claim_deliveries(at(0), 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "held by the first claim"
    );
    let later = at(0) + LEASE;
    let second = store
        .claim_deliveries(later, 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1, "the lease ran out");
    assert_eq!(second[0].delivery.id, d.delivery.id);
    assert_eq!(second[0].delivery.attempt, 2);
    assert_eq!(
        second[0].delivery.first_attempt_at,
        Some(at(0)),
        "the window started with the first attempt"
    );
    let delivered = AttemptOutcome::Delivered {
        response_status: 200,
    };
    assert!(
        !store
            .settle_delivery(d.delivery.id, d.lease, &delivered, later)
            .await
            .expect("settle"),
        "the superseded lease settles nothing"
    );
    assert!(
        store
            .settle_delivery(d.delivery.id, second[0].lease, &delivered, later)
            .await
            .expect("settle")
    );
    let log = store
        .list_deliveries(d.delivery.subscription_id, 10, None)
        .await
        .expect("list");
    assert_eq!(log.items[0].status, DeliveryStatus::Delivered);
    assert_eq!(log.items[0].delivered_at, Some(later));
    assert_eq!(log.items[0].response_status, Some(200));
    assert_eq!(log.items[0].next_attempt_at, None);
}

/// `SubscriptionStore::settle_delivery`: retries wait their time; a failure is final.
pub async fn webhook_retry_is_scheduled_and_failure_is_final<S: Store + ?Sized>(store: Arc<S>) {
    // `settle_delivery`: a retry is not due before its time; a failure is final (until a
    // redelivery).
    let fx = Fixture::new(store.clone()).await;
    subscribe(&*store, &ALL, None, 1).await;
    fx.book(60, 120).await.expect("book");
    fan_out_all(&*store).await;
    let claimed = store
        .claim_deliveries(at(0), 10, LEASE)
        .await
        .expect("claim");
    let d = &claimed[0];
    let retry_at = at(0) + Duration::seconds(10);
    let retry = AttemptOutcome::Retry {
        at: retry_at,
        response_status: Some(503),
        error: "answered HTTP 503".into(),
    };
    assert!(
        store
            .settle_delivery(d.delivery.id, d.lease, &retry, at(0))
            .await
            .expect("settle")
    );
    assert!(
        !store
            .settle_delivery(d.delivery.id, d.lease, &retry, at(0))
            .await
            .expect("settle"),
        "a settled claim is gone"
    );
    let early = store
        .claim_deliveries(retry_at - Duration::seconds(1), 10, LEASE)
        .await
        .expect("claim");
    assert!(early.is_empty(), "not due yet");
    let log = store
        .list_deliveries(d.delivery.subscription_id, 10, None)
        .await
        .expect("list");
    assert_eq!(log.items[0].response_status, Some(503));
    assert_eq!(log.items[0].next_attempt_at, Some(retry_at));
    assert_eq!(log.items[0].status, DeliveryStatus::Pending);
    let again = store
        .claim_deliveries(retry_at, 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.attempt, 2);
    let failed = AttemptOutcome::Failed {
        response_status: None,
        error: "timed out".into(),
    };
    assert!(
        store
            .settle_delivery(d.delivery.id, again[0].lease, &failed, retry_at)
            .await
            .expect("settle")
    );
    let never = store
        .claim_deliveries(retry_at + Duration::days(2), 10, LEASE)
        .await
        .expect("claim");
    assert!(never.is_empty(), "a failed delivery is not retried");
    let log = store
        .list_deliveries(d.delivery.subscription_id, 10, None)
        .await
        .expect("list");
    assert_eq!(log.items[0].status, DeliveryStatus::Failed);
    assert_eq!(log.items[0].next_attempt_at, None);
    assert_eq!(log.items[0].last_error.as_deref(), Some("timed out"));
}

/// `SubscriptionStore::redeliver`: the same delivery is due again at once.
pub async fn webhook_redeliver_keeps_the_id<S: Store + ?Sized>(store: Arc<S>) {
    // `redeliver`: the same delivery id is due again at once, its attempt count continuing,
    // whatever its status; an unknown id is not found.
    let fx = Fixture::new(store.clone()).await;
    subscribe(&*store, &ALL, None, 1).await;
    fx.book(60, 120).await.expect("book");
    fan_out_all(&*store).await;
    let claimed = store
        .claim_deliveries(at(0), 10, LEASE)
        .await
        .expect("claim");
    let d = &claimed[0];
    let ok = AttemptOutcome::Delivered {
        response_status: 204,
    };
    assert!(
        store
            .settle_delivery(d.delivery.id, d.lease, &ok, at(0))
            .await
            .expect("settle")
    );
    let now = at(5);
    let again = store
        .redeliver(d.delivery.id, now)
        .await
        .expect("redeliver");
    assert_eq!(again.id, d.delivery.id);
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.attempt, 1);
    assert_eq!(again.next_attempt_at, Some(now));
    let resent = store.claim_deliveries(now, 10, LEASE).await.expect("claim");
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].delivery.id, d.delivery.id);
    assert_eq!(resent[0].delivery.attempt, 2);
    assert_eq!(
        resent[0].delivery.first_attempt_at,
        Some(now),
        "a redelivery opens a new retry window"
    );
    assert_eq!(
        store.redeliver(DeliveryId::new_at(now), now).await,
        Err(Error::NotFound(Entity::WebhookDelivery))
    );
}

/// `SubscriptionStore::delete_subscription`: no new deliveries, no attempts, no log.
pub async fn webhook_delete_stops_new_deliveries<S: Store + ?Sized>(store: Arc<S>) {
    // `delete_subscription`: a deleted subscription gets no new deliveries, its pending ones
    // are not attempted, and its log is gone.
    let fx = Fixture::new(store.clone()).await;
    let gone = subscribe(&*store, &ALL, None, 1).await;
    let kept = subscribe(&*store, &ALL, None, 2).await;
    fx.book(60, 120).await.expect("book");
    fan_out_all(&*store).await;
    store.delete_subscription(gone.id).await.expect("delete");
    fx.book(180, 240).await.expect("book again");
    let done = fan_out_all(&*store).await;
    assert_eq!(done.deliveries_created, 1, "only the kept subscription");
    let due = store
        .claim_deliveries(at(0), 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|d| d.delivery.subscription_id == kept.id));
    assert_eq!(
        store.list_deliveries(gone.id, 10, None).await,
        Err(Error::NotFound(Entity::WebhookSubscription))
    );
    assert_eq!(deliveries(&*store, kept.id).await.len(), 2);
}
