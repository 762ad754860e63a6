//! Checks of payments: [`PaymentStore`](crate::store::PaymentStore) through the engine's
//! use cases, with a [`FakeGateway`] as the provider.

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, range, unique};
use super::super::gateway::{FakeGateway, GatewayCall, intent_event};
use crate::auth::Actor;
use crate::domain::{Booking, BookingStatus};
use crate::engine::{AnsweredRequest, BookingRequest, EventOutcome};
use crate::error::{Entity, Error};
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, Scope, StoredResponse};
use crate::payment::{Payment, intent_key};
use crate::store::{Inserted, Store};
use crate::webhook::EventHeader;
use crate::webhook::inbox::{InboxKey, InboxState, NewInboxEvent, Recorded};

pub(super) const LEASE: Duration = Duration::minutes(5);

pub(super) async fn paid_fixture<S: Store + ?Sized>(
    store: Arc<S>,
) -> (Fixture<S>, Arc<FakeGateway>) {
    let mut fx = Fixture::with_holds(store).await;
    let gateway = Arc::new(FakeGateway::new());
    fx.engine = fx
        .engine
        .clone()
        .with_payments(gateway.clone(), Duration::minutes(15));
    (fx, gateway)
}

pub(super) fn intent_of(b: &Booking) -> String {
    b.payment
        .as_ref()
        .expect("a paid booking")
        .intent_id
        .clone()
}

/// Records `body` in the inbox and processes it; returns the outcome (`None` if the inbox
/// already had the event: a redelivery).
pub(super) async fn deliver<S: Store + ?Sized>(
    fx: &Fixture<S>,
    body: Vec<u8>,
) -> Option<EventOutcome> {
    let (outcome, key) = process(fx, body).await?;
    let stored = fx
        .engine
        .store()
        .inbox_event(&key)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.state, InboxState::Processed, "{outcome:?}");
    Some(outcome)
}

/// Records, claims and processes one event, whatever the outcome; `None` for a duplicate.
pub(super) async fn process<S: Store + ?Sized>(
    fx: &Fixture<S>,
    body: Vec<u8>,
) -> Option<(EventOutcome, InboxKey)> {
    let header = EventHeader::parse(&body).expect("a valid envelope");
    let key = InboxKey::new("stripe", &header.id).expect("key");
    let store = fx.engine.store();
    let event = NewInboxEvent::new(key.clone(), header.type_name, body).expect("event");
    if store.record(&event, fx.engine.now()).await.expect("record") == Recorded::Duplicate {
        return None;
    }
    let claimed = store
        .claim_due(fx.engine.now(), 100, LEASE)
        .await
        .expect("claim");
    let mine = claimed
        .iter()
        .find(|c| c.event.key == key)
        .expect("the new event is due");
    let outcome = fx
        .engine
        .process_webhook_event(mine)
        .await
        .expect("process");
    Some((outcome, key))
}

pub(super) fn succeeded(b: &Booking) -> Vec<u8> {
    intent_event(
        &unique("evt"),
        "payment_intent.succeeded",
        &intent_of(b),
        b.id,
        b.price.amount_cents,
    )
}

/// With payments on, a booking is a hold with an intent under its idempotency key.
pub async fn paid_booking_is_a_hold_with_an_intent<S: Store + ?Sized>(store: Arc<S>) {
    // With payments on, a booking is a `pending_payment` hold whose intent was created with
    // the booking's idempotency key and price, and is found by its intent.
    let (fx, gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    assert_eq!(b.status, BookingStatus::PendingPayment);
    assert_eq!(b.hold_expires_at, Some(at(15)));
    let p = b.payment.clone().expect("payment attached");
    assert_eq!(p.provider, "stripe");
    assert!(p.client_secret.is_some());
    assert_eq!(
        fx.reload(&b).await,
        b,
        "the stored booking is the one returned"
    );
    match gateway.calls().as_slice() {
        [GatewayCall::Create(r)] => {
            assert_eq!(r.booking_id, b.id);
            assert_eq!(r.amount, b.price);
            assert_eq!(r.idempotency_key, intent_key(b.id));
        }
        other => panic!("expected one create call, got {other:?}"),
    }
    let found = fx
        .engine
        .store()
        .booking_by_intent(&p.intent_id)
        .await
        .expect("read");
    assert_eq!(found.map(|f| f.id), Some(b.id));
    assert_eq!(
        fx.engine
            .store()
            .booking_by_intent("pi_unknown")
            .await
            .expect("read"),
        None
    );
}

/// A provider failure answers `PaymentProvider` and leaves the slot free.
pub async fn provider_failure_leaves_the_slot_free<S: Store + ?Sized>(store: Arc<S>) {
    // A provider failure answers `PaymentProvider` and leaves no hold blocking the slot; the
    // released hold is `expired` and a retry of the same request books afresh.
    let (fx, gateway) = paid_fixture(store).await;
    gateway.set_down(true);
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    let r = fx.engine.create_booking(&request).await;
    assert!(matches!(r, Err(Error::PaymentProvider(_))), "{r:?}");
    let all = fx
        .engine
        .list_bookings(Actor::Admin, &Default::default())
        .await
        .expect("list");
    let released: Vec<_> = all
        .items
        .iter()
        .filter(|b| b.professional_id == fx.pro.id)
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].status, BookingStatus::Expired);
    assert_eq!(released[0].request_ref, None, "a retry must not find it");
    gateway.set_down(false);
    let Inserted::Created(again) = fx.engine.create_booking(&request).await.expect("retry") else {
        panic!("the retry books afresh");
    };
    assert_ne!(again.id, released[0].id);
    assert_eq!(again.status, BookingStatus::PendingPayment);
    assert!(again.payment.is_some());
    // A hold that has its intent is not released, nor is a booking no longer a hold.
    let store = fx.engine.store();
    let now = fx.engine.now();
    assert_eq!(
        store
            .release_unpaid_hold(again.id, now)
            .await
            .expect("release"),
        None
    );
    assert_eq!(
        store
            .release_unpaid_hold(released[0].id, now)
            .await
            .expect("release"),
        None
    );
    assert_eq!(fx.status(&again).await, BookingStatus::PendingPayment);
}

/// A retry after a crash between hold and intent pays the same hold, once.
pub async fn retry_after_a_crash_pays_the_same_hold<S: Store + ?Sized>(store: Arc<S>) {
    // A hold stored without its intent (a crash between the two steps) is paid by the retry of
    // the same request: the same booking, one intent.
    let (fx, gateway) = paid_fixture(store).await;
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    // What the first attempt stored before dying: the hold alone.
    let mut hold = fx.book(0, 30).await.expect("template");
    hold.id = crate::domain::BookingId::new_at(at(1));
    hold.range = request.range;
    hold.blocked = request.range;
    hold.payment = None;
    hold.request_ref = request.request_ref.clone();
    fx.engine
        .store()
        .insert_booking(&hold, at(0))
        .await
        .expect("hold");
    let Inserted::Existing(paid) = fx.engine.create_booking(&request).await.expect("retry") else {
        panic!("the retry finds the hold");
    };
    assert_eq!(paid.id, hold.id);
    let intent = intent_of(&paid);
    let Inserted::Existing(again) = fx.engine.create_booking(&request).await.expect("again") else {
        panic!("and again");
    };
    assert_eq!(intent_of(&again), intent);
    let creates = gateway
        .calls()
        .iter()
        .filter(|c| matches!(c, GatewayCall::Create(r) if r.booking_id == hold.id))
        .count();
    assert_eq!(creates, 1, "a paid hold is not paid again");
}

/// `PaymentStore::attach_payment`: the intent and the answer are stored in one step.
pub async fn intent_and_answer_commit_together<S: Store + ?Sized>(store: Arc<S>) {
    // `attach_payment`: the intent and the request's answer are stored in one step; attaching
    // the same intent again changes nothing, another intent is refused.
    let (fx, _gateway) = paid_fixture(store).await;
    let scope = Scope::new(format!("client:{}", fx.client.id));
    let key = IdempotencyKey::parse(&unique("key")).expect("key");
    let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
    let Decision::Started { lease, .. } = fx
        .engine
        .begin_request(&scope, &key, fp)
        .await
        .expect("begin")
    else {
        panic!("a fresh key starts");
    };
    let render = |b: &Booking| StoredResponse {
        status: 201,
        headers: vec![],
        body: serde_json::to_vec(&b.payment).expect("json"),
    };
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    let (inserted, answered) = fx
        .engine
        .create_booking_answered(
            &request,
            AnsweredRequest {
                scope: &scope,
                key: &key,
                lease,
                context: None,
                render: &render,
            },
        )
        .await
        .expect("create");
    assert!(answered);
    let b = inserted.booking().clone();
    match fx
        .engine
        .begin_request(&scope, &key, fp)
        .await
        .expect("again")
    {
        Decision::Replay { response, .. } => assert_eq!(response, render(&b)),
        other => panic!("expected the stored answer, got {other:?}"),
    }
    let store = fx.engine.store();
    let same = b.payment.clone().expect("paid");
    let (again, stored) = store
        .attach_payment(b.id, &same, None, at(2))
        .await
        .expect("same intent");
    assert_eq!((again, stored), (b.clone(), false));
    let other = Payment::new("stripe", "pi_other", "secret");
    assert!(matches!(
        store.attach_payment(b.id, &other, None, at(2)).await,
        Err(Error::InvalidState(_))
    ));
    let missing = crate::domain::BookingId::new_at(at(3));
    assert!(matches!(
        store.attach_payment(missing, &other, None, at(2)).await,
        Err(Error::NotFound(Entity::Booking))
    ));
}
