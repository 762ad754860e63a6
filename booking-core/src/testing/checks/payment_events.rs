//! Checks of provider events on payments: confirmations, refunds, cancels, their order.

use std::sync::Arc;

use proptest::strategy::{Just, Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use super::super::fixtures::{at, unique};
use super::super::gateway::{GatewayCall, intent_event, refund_event};
use crate::auth::Actor;
use crate::domain::{Booking, BookingStatus};
use crate::engine::EventOutcome;
use crate::events::EventKind;
use crate::idempotency::LeaseId;
use crate::payment::{Obligation, PaymentOutcome, cancel_key, obligation};
use crate::store::Store;
use crate::webhook::StripeEvent;
use crate::webhook::inbox::{InboxKey, InboxState, NewInboxEvent};

use super::payments::{deliver, intent_of, paid_fixture, process, succeeded};
use super::support::events_of;
/// `payment_intent.succeeded` confirms a hold once; redeliveries change nothing.
pub async fn payment_confirms_a_hold_once<S: Store + ?Sized>(store: Arc<S>) {
    // `payment_intent.succeeded` confirms a hold once; a redelivery is a duplicate, and
    // another event with the same effect changes nothing.
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

/// A payment after the hold ran out confirms if the slot is free, else refunds once.
pub async fn payment_after_expiry_confirms_or_refunds<S: Store + ?Sized>(store: Arc<S>) {
    // A payment after the hold ran out confirms if the slot is still free; if another
    // booking took it, the booking stays `expired` and a refund is issued once.
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

    // A payment for a hold that ran out, whose slot another hold took and then also let
    // run out: the slot is free again, so it confirms, and the hold in the way is expired
    // (with its event) in the same step.
    let late = fx.book(300, 360).await.expect("book");
    fx.clock.set(at(36));
    let in_the_way = fx
        .book(300, 360)
        .await
        .expect("the expired hold's slot is free");
    fx.clock.set(at(52));
    assert_eq!(
        deliver(&fx, succeeded(&late)).await,
        Some(EventOutcome::Applied(PaymentOutcome::Confirmed))
    );
    assert_eq!(fx.status(&late).await, BookingStatus::Confirmed);
    assert_eq!(fx.status(&in_the_way).await, BookingStatus::Expired);
    assert_eq!(
        events_of(&**fx.engine.store(), &in_the_way).await.last(),
        Some(&EventKind::BookingExpired)
    );
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

/// `payment_intent.canceled` cancels the hold; `payment_failed` keeps it.
pub async fn canceled_intent_cancels_and_failure_keeps_the_hold<S: Store + ?Sized>(store: Arc<S>) {
    // `payment_intent.canceled` cancels a hold and frees its slot; `payment_failed` leaves
    // the hold pending.
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

/// Cancelling a hold cancels its intent, now or later by the sweep, once.
pub async fn cancelled_hold_cancels_its_intent<S: Store + ?Sized>(store: Arc<S>) {
    // Cancelling a hold cancels its intent (with the booking's cancel key); if the provider is
    // down, the sweep does it later, once.
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

/// The sweep cancels the intent of a hold that ran out, unless it was paid.
pub async fn expired_hold_intent_is_cancelled_by_the_sweep<S: Store + ?Sized>(store: Arc<S>) {
    // The sweep cancels the intent of a hold that ran out; an intent that was paid meanwhile
    // is left to its event.
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

/// Provider events about no booking of the engine change nothing.
pub async fn foreign_events_are_ignored<S: Store + ?Sized>(store: Arc<S>) {
    // Events about no booking of the engine (another intent, an unknown booking, an intent
    // without `metadata.booking_id`) are acknowledged and change nothing.
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
    // Only a missing booking id marks an intent as another integration's: an intent of
    // ours missing another field is unprocessable, not silently ignored.
    let mut broken: serde_json::Value = serde_json::from_slice(&succeeded(&b)).expect("json");
    broken["id"] = serde_json::json!(unique("evt"));
    broken["data"]["object"]
        .as_object_mut()
        .expect("an object")
        .remove("id");
    let broken = serde_json::to_vec(&broken).expect("json");
    assert!(matches!(
        process(&fx, broken).await,
        Some((EventOutcome::Unprocessable(_), _))
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

/// Provider events in any order and duplication give the in-order booking states.
pub async fn payment_events_commute<S: Store + ?Sized>(store: Arc<S>) {
    // The same booking states result from any order and any duplication of a set of provider
    // events as from one in-order delivery (random cases, each on fresh bookings).
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
