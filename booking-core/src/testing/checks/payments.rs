//! Checks of payments: [`PaymentStore`](crate::store::PaymentStore) through the engine's
//! use cases, with a [`FakeGateway`] as the provider.

use std::sync::Arc;

use chrono::Duration;
use proptest::strategy::{Just, Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use super::super::fixtures::{Fixture, at, range, unique};
use super::super::gateway::{FakeGateway, GatewayCall, intent_event, refund_event};
use crate::auth::Actor;
use crate::domain::{Booking, BookingStatus};
use crate::engine::{AnsweredRequest, BookingRequest, EventOutcome};
use crate::error::{Entity, Error};
use crate::events::EventKind;
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, LeaseId, Scope, StoredResponse};
use crate::payment::{Obligation, Payment, PaymentOutcome, cancel_key, intent_key, obligation};
use crate::store::{Inserted, Store};
use crate::webhook::inbox::{InboxKey, InboxState, NewInboxEvent, Recorded};
use crate::webhook::{EventHeader, StripeEvent};

const LEASE: Duration = Duration::minutes(5);

async fn paid_fixture<S: Store + ?Sized>(store: Arc<S>) -> (Fixture<S>, Arc<FakeGateway>) {
    let mut fx = Fixture::with_holds(store).await;
    let gateway = Arc::new(FakeGateway::new());
    fx.engine = fx
        .engine
        .clone()
        .with_payments(gateway.clone(), Duration::minutes(15));
    (fx, gateway)
}

fn intent_of(b: &Booking) -> String {
    b.payment
        .as_ref()
        .expect("a paid booking")
        .intent_id
        .clone()
}

/// Records `body` in the inbox and processes it; returns the outcome (`None` if the inbox
/// already had the event: a redelivery).
async fn deliver<S: Store + ?Sized>(fx: &Fixture<S>, body: Vec<u8>) -> Option<EventOutcome> {
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
    let stored = store.inbox_event(&key).await.expect("read").expect("kept");
    assert_eq!(stored.state, InboxState::Processed, "{outcome:?}");
    Some(outcome)
}

fn succeeded(b: &Booking) -> Vec<u8> {
    intent_event(
        &unique("evt"),
        "payment_intent.succeeded",
        &intent_of(b),
        b.id,
        b.price.amount_cents,
    )
}

/// With payments on, a booking is a `pending_payment` hold whose intent was created with
/// the booking's idempotency key and price, and is found by its intent.
pub async fn paid_booking_is_a_hold_with_an_intent<S: Store + ?Sized>(store: Arc<S>) {
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

/// A provider failure answers `PaymentProvider` and leaves no hold blocking the slot; the
/// released hold is `expired` and a retry of the same request books afresh.
pub async fn provider_failure_leaves_the_slot_free<S: Store + ?Sized>(store: Arc<S>) {
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
}

/// A hold stored without its intent (a crash between the two steps) is paid by the retry of
/// the same request: the same booking, one intent.
pub async fn retry_after_a_crash_pays_the_same_hold<S: Store + ?Sized>(store: Arc<S>) {
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

/// `attach_payment`: the intent and the request's answer are stored in one step; attaching
/// the same intent again changes nothing, another intent is refused.
pub async fn intent_and_answer_commit_together<S: Store + ?Sized>(store: Arc<S>) {
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

/// `payment_intent.succeeded` confirms a hold once; a redelivery is a duplicate, and
/// another event with the same effect changes nothing.
pub async fn payment_confirms_a_hold_once<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, _gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    let body = succeeded(&b);
    assert_eq!(
        deliver(&fx, body.clone()).await,
        Some(EventOutcome::Applied(PaymentOutcome::Confirmed))
    );
    let confirmed = fx.reload(&b).await;
    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    assert_eq!(confirmed.hold_expires_at, None);
    let p = confirmed.payment.clone().expect("payment kept");
    assert!(p.intent_closed && p.client_secret.is_none());
    assert_eq!(
        deliver(&fx, body).await,
        None,
        "a redelivery is a duplicate"
    );
    assert_eq!(
        deliver(&fx, succeeded(&b)).await,
        Some(EventOutcome::Unchanged)
    );
    assert_eq!(fx.reload(&b).await, confirmed);
    let events = fx
        .engine
        .store()
        .events_after(None, 1000)
        .await
        .expect("events");
    let confirmations = events
        .iter()
        .filter(|e| e.booking_id == b.id && e.kind == EventKind::BookingConfirmed)
        .count();
    assert_eq!(confirmations, 1);
}

/// A payment after the hold ran out confirms if the slot is still free; if another
/// booking took it, the booking stays `expired` and a refund is issued once.
pub async fn payment_after_expiry_confirms_or_refunds<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, gateway) = paid_fixture(store).await;
    let free = fx.book(60, 120).await.expect("book");
    let taken = fx.book(180, 240).await.expect("book");
    fx.clock.set(at(20));
    let other = fx
        .book(180, 240)
        .await
        .expect("the expired hold's slot is free");
    assert_eq!(
        deliver(&fx, succeeded(&free)).await,
        Some(EventOutcome::Applied(PaymentOutcome::Confirmed))
    );
    assert_eq!(fx.status(&free).await, BookingStatus::Confirmed);
    assert_eq!(
        deliver(&fx, succeeded(&taken)).await,
        Some(EventOutcome::Applied(PaymentOutcome::RefundOwed))
    );
    let kept = fx.reload(&taken).await;
    assert_eq!(kept.status, BookingStatus::Expired);
    let p = kept.payment.clone().expect("payment");
    assert!(p.refund_owed);
    assert!(p.refund_id.is_some(), "the refund was issued at once");
    assert_eq!(fx.status(&other).await, BookingStatus::PendingPayment);
    let refunds: Vec<_> = gateway
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            GatewayCall::Refund(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].intent_id, p.intent_id);
    // Another succeeded event for the same intent neither confirms nor refunds again.
    assert_eq!(
        deliver(&fx, succeeded(&taken)).await,
        Some(EventOutcome::Unchanged)
    );
    assert_eq!(
        fx.engine
            .discharge_obligations(10)
            .await
            .expect("sweep")
            .refunds,
        0
    );
    assert_eq!(gateway.counts().1, 1);
}

/// A refund owed while the provider is down is issued by a later sweep, once.
pub async fn owed_refund_is_issued_by_the_sweep<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    fx.engine
        .cancel_booking(Actor::Client(fx.client.id), b.id)
        .await
        .expect("cancel");
    gateway.set_down(true);
    // Paid anyway (the cancel of the intent raced with the payment).
    assert_eq!(
        deliver(&fx, succeeded(&b)).await,
        Some(EventOutcome::Applied(PaymentOutcome::RefundOwed))
    );
    let owed = fx.reload(&b).await;
    assert_eq!(owed.status, BookingStatus::Cancelled);
    assert_eq!(obligation(&owed, fx.engine.now()), Some(Obligation::Refund));
    let report = fx.engine.discharge_obligations(10).await.expect("sweep");
    assert_eq!((report.refunds, report.failed), (0, 1));
    gateway.set_down(false);
    let report = fx.engine.discharge_obligations(10).await.expect("sweep");
    assert_eq!(report.refunds, 1);
    let done = fx.reload(&b).await;
    assert!(done.payment.as_ref().is_some_and(|p| p.refund_id.is_some()));
    assert_eq!(obligation(&done, fx.engine.now()), None);
    assert_eq!(
        fx.engine
            .discharge_obligations(10)
            .await
            .expect("sweep")
            .refunds,
        0
    );
}

/// `payment_intent.canceled` cancels a hold and frees its slot; `payment_failed` leaves
/// the hold pending.
pub async fn canceled_intent_cancels_and_failure_keeps_the_hold<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, _gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    let failed = intent_event(
        &unique("evt"),
        "payment_intent.payment_failed",
        &intent_of(&b),
        b.id,
        b.price.amount_cents,
    );
    assert_eq!(deliver(&fx, failed).await, Some(EventOutcome::Acknowledged));
    assert_eq!(fx.status(&b).await, BookingStatus::PendingPayment);
    let canceled = intent_event(
        &unique("evt"),
        "payment_intent.canceled",
        &intent_of(&b),
        b.id,
        b.price.amount_cents,
    );
    assert_eq!(
        deliver(&fx, canceled).await,
        Some(EventOutcome::Applied(PaymentOutcome::Cancelled))
    );
    let cancelled = fx.reload(&b).await;
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        obligation(&cancelled, fx.engine.now()),
        None,
        "the intent is closed"
    );
    fx.book(60, 120).await.expect("the slot is free again");
}

/// Cancelling a hold cancels its intent (with the booking's cancel key); if the provider is
/// down, the sweep does it later, once.
pub async fn cancelled_hold_cancels_its_intent<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, gateway) = paid_fixture(store).await;
    let a = fx.book(60, 120).await.expect("book");
    let b = fx.book(180, 240).await.expect("book");
    let cancelled = fx
        .engine
        .cancel_booking(Actor::Client(fx.client.id), a.id)
        .await
        .expect("cancel");
    assert!(cancelled.payment.as_ref().is_some_and(|p| p.intent_closed));
    assert_eq!(gateway.intent_state(&intent_of(&a)), Some("canceled"));
    assert!(
        gateway
            .calls()
            .contains(&GatewayCall::Cancel(intent_of(&a), cancel_key(a.id)))
    );
    gateway.set_down(true);
    let cancelled = fx
        .engine
        .cancel_booking(Actor::Client(fx.client.id), b.id)
        .await
        .expect("the cancel itself succeeds");
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        obligation(&cancelled, fx.engine.now()),
        Some(Obligation::CancelIntent)
    );
    gateway.set_down(false);
    let report = fx.engine.discharge_obligations(10).await.expect("sweep");
    assert_eq!(report.intents_closed, 1);
    assert_eq!(gateway.intent_state(&intent_of(&b)), Some("canceled"));
    assert_eq!(
        fx.engine
            .discharge_obligations(10)
            .await
            .expect("sweep")
            .intents_closed,
        0
    );
}

/// The sweep cancels the intent of a hold that ran out; an intent that was paid meanwhile
/// is left to its event.
pub async fn expired_hold_intent_is_cancelled_by_the_sweep<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, gateway) = paid_fixture(store).await;
    let a = fx.book(60, 120).await.expect("book");
    let b = fx.book(180, 240).await.expect("book");
    gateway.succeed(&intent_of(&b));
    fx.clock.set(at(16));
    assert_eq!(
        fx.engine.expire_due_holds(10).await.expect("expire").len(),
        2
    );
    let report = fx.engine.discharge_obligations(10).await.expect("sweep");
    assert_eq!(report.intents_closed, 2, "{report:?}");
    assert_eq!(gateway.intent_state(&intent_of(&a)), Some("canceled"));
    assert_eq!(gateway.intent_state(&intent_of(&b)), Some("succeeded"));
    // b's payment event still arrives and confirms it: its slot is free.
    assert_eq!(
        deliver(&fx, succeeded(&b)).await,
        Some(EventOutcome::Applied(PaymentOutcome::Confirmed))
    );
    assert_eq!(
        fx.engine.discharge_obligations(10).await.expect("sweep"),
        Default::default()
    );
}

/// `charge.refunded` records the largest refunded total on the payment, whatever the order.
pub async fn refunds_are_recorded_on_the_payment<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, _gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    deliver(&fx, succeeded(&b)).await;
    let intent = intent_of(&b);
    assert_eq!(
        deliver(&fx, refund_event(&unique("evt"), &intent, 3_000)).await,
        Some(EventOutcome::Applied(PaymentOutcome::Recorded))
    );
    assert_eq!(
        deliver(&fx, refund_event(&unique("evt"), &intent, 1_000)).await,
        Some(EventOutcome::Unchanged)
    );
    let r = fx.reload(&b).await;
    assert_eq!(r.status, BookingStatus::Confirmed);
    assert_eq!(r.payment.map(|p| p.amount_refunded_cents), Some(3_000));
}

/// Events about no booking of the engine (another intent, an unknown booking, an intent
/// without `metadata.booking_id`) are acknowledged and change nothing.
pub async fn foreign_events_are_ignored<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, _gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    let wrong_intent = intent_event(&unique("evt"), "payment_intent.succeeded", "pi_x", b.id, 1);
    assert!(matches!(
        deliver(&fx, wrong_intent).await,
        Some(EventOutcome::Ignored(_))
    ));
    let unknown = crate::domain::BookingId::new_at(at(0));
    let nobody = intent_event(
        &unique("evt"),
        "payment_intent.succeeded",
        "pi_y",
        unknown,
        1,
    );
    assert!(matches!(
        deliver(&fx, nobody).await,
        Some(EventOutcome::Ignored(_))
    ));
    let mut foreign: serde_json::Value = serde_json::from_slice(&succeeded(&b)).expect("json");
    foreign["data"]["object"]["metadata"] = serde_json::json!({});
    let foreign = serde_json::to_vec(&foreign).expect("json");
    assert!(matches!(
        deliver(&fx, foreign).await,
        Some(EventOutcome::Ignored(_))
    ));
    let other =
        br#"{"id":"evt_other_type","object":"event","type":"customer.created","created":1}"#;
    assert_eq!(
        deliver(&fx, other.to_vec()).await,
        Some(EventOutcome::Acknowledged)
    );
    assert_eq!(fx.status(&b).await, BookingStatus::PendingPayment);
}

/// `settle_payment` does nothing for a lease that does not own the event.
pub async fn settle_needs_the_owning_lease<S: Store + ?Sized>(store: Arc<S>) {
    let (fx, _gateway) = paid_fixture(store).await;
    let b = fx.book(60, 120).await.expect("book");
    let body = succeeded(&b);
    let id = StripeEvent::parse(&body).expect("event").id;
    let key = InboxKey::new("stripe", id).expect("key");
    let store = fx.engine.store();
    let event = NewInboxEvent::new(key.clone(), "payment_intent.succeeded", body).expect("e");
    store.record(&event, at(0)).await.expect("record");
    let settled = store
        .settle_payment(
            &key,
            LeaseId::new_at(at(0)),
            b.id,
            crate::payment::PaymentChange::Succeeded,
            at(0),
        )
        .await
        .expect("settle");
    assert_eq!(settled, None);
    assert_eq!(fx.status(&b).await, BookingStatus::PendingPayment);
    let stored = store.inbox_event(&key).await.expect("read").expect("kept");
    assert_eq!(stored.state, InboxState::Pending);
}

/// The same booking states result from any order and any duplication of a set of provider
/// events as from one in-order delivery (random cases, each on fresh bookings).
pub async fn payment_events_commute<S: Store + ?Sized>(store: Arc<S>) {
    // Per booking, a realistic history: (a) failed, succeeded, refunded 1000, refunded 2000;
    // (b) failed, canceled; (c) hold ran out, slot free, succeeded; (d) hold ran out, slot
    // taken, succeeded, refunded in full.
    let mut runner = TestRunner::deterministic();
    let strategy = (
        Just((0..10).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(0usize..10, 0..6),
    );
    for _case in 0..12 {
        let (order, dups) = strategy.new_tree(&mut runner).expect("a case").current();
        let reference = run_history(&store, &(0..10).collect::<Vec<_>>(), &[]).await;
        let shuffled = run_history(&store, &order, &dups).await;
        assert_eq!(
            shuffled, reference,
            "order {order:?} with duplicates {dups:?} ends elsewhere"
        );
    }
}

/// What [`payment_events_commute`] compares: per booking, status and payment.
type Outcome = Vec<(BookingStatus, Option<(bool, i64, bool)>)>;

async fn run_history<S: Store + ?Sized>(
    store: &Arc<S>,
    order: &[usize],
    dups: &[usize],
) -> Outcome {
    let (fx, _gateway) = paid_fixture(store.clone()).await;
    let a = fx.book(60, 120).await.expect("a");
    let b = fx.book(180, 240).await.expect("b");
    let c = fx.book(300, 360).await.expect("c");
    let d = fx.book(420, 480).await.expect("d");
    fx.clock.set(at(20));
    fx.book(420, 480)
        .await
        .expect("d's slot taken by another hold");
    let intent = |x: &Booking, ty: &str| {
        intent_event(
            &unique("evt"),
            ty,
            &intent_of(x),
            x.id,
            x.price.amount_cents,
        )
    };
    let events: Vec<Vec<u8>> = vec![
        intent(&a, "payment_intent.payment_failed"),
        intent(&a, "payment_intent.succeeded"),
        refund_event(&unique("evt"), &intent_of(&a), 1_000),
        refund_event(&unique("evt"), &intent_of(&a), 2_000),
        intent(&b, "payment_intent.payment_failed"),
        intent(&b, "payment_intent.canceled"),
        intent(&c, "payment_intent.succeeded"),
        intent(&d, "payment_intent.succeeded"),
        refund_event(&unique("evt"), &intent_of(&d), d.price.amount_cents),
        intent(&d, "payment_intent.payment_failed"),
    ];
    for &i in order.iter().chain(dups) {
        // A duplicate gets a fresh event id: the effect itself must be idempotent, not
        // only the inbox's dedup.
        let mut body: serde_json::Value = serde_json::from_slice(&events[i]).expect("json");
        body["id"] = serde_json::Value::String(unique("evt"));
        deliver(&fx, serde_json::to_vec(&body).expect("json")).await;
    }
    let mut out = Vec::new();
    for x in [&a, &b, &c, &d] {
        let r = fx.reload(x).await;
        out.push((
            r.status,
            r.payment
                .map(|p| (p.refund_owed, p.amount_refunded_cents, p.intent_closed)),
        ));
    }
    out
}
