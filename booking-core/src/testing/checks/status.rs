//! The booking status machine: transitions, holds and their expiry, the sweep, and the
//! whole machine against the reference model.

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_client};
use super::support::*;
use crate::auth::Actor;
use crate::domain::{BookingStatus, Transition};
use crate::error::{Entity, Error};
use crate::events::EventKind;
use crate::store::Store;

/// `BookingStore::transition_booking`: every legal transition of the status machine applies.
pub async fn legal_transitions_apply<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let hold = fx.book(60, 120).await.expect("hold");
    assert_eq!(hold.status, BookingStatus::PendingPayment);
    assert_eq!(hold.hold_expires_at, Some(at(15)));
    // pending -> confirmed -> cancelled
    let c = fx.engine.confirm_booking(hold.id).await.expect("confirm");
    assert_eq!(c.status, BookingStatus::Confirmed);
    assert_eq!(c.hold_expires_at, None);
    let x = fx
        .engine
        .cancel_booking(Actor::Client(fx.client.id), hold.id)
        .await
        .expect("cancel confirmed");
    assert_eq!(x.status, BookingStatus::Cancelled);
    // pending -> cancelled
    let h2 = fx
        .book(60, 120)
        .await
        .expect("slot free again after cancel");
    let x2 = fx
        .engine
        .cancel_booking(Actor::Professional(fx.pro.id), h2.id)
        .await
        .expect("professional cancels hold");
    assert_eq!(x2.status, BookingStatus::Cancelled);
    // pending -> expired -> confirmed (slot still free)
    let h3 = fx.book(200, 260).await.expect("hold 3");
    fx.clock.advance(Duration::minutes(15));
    let swept = fx.engine.expire_due_holds(100).await.expect("sweep");
    assert_eq!(swept.iter().map(|b| b.id).collect::<Vec<_>>(), vec![h3.id]);
    assert_eq!(swept[0].status, BookingStatus::Expired);
    let r = fx
        .engine
        .confirm_booking(h3.id)
        .await
        .expect("re-confirm expired");
    assert_eq!(r.status, BookingStatus::Confirmed);
    assert_eq!(fx.status(&h3).await, BookingStatus::Confirmed);
}

/// Illegal transitions are `InvalidState` and change nothing; unknown bookings are `NotFound`.
pub async fn illegal_transitions_are_refused_and_change_nothing<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let cancelled = fx.book(60, 120).await.expect("hold");
    fx.engine
        .cancel_booking(Actor::Admin, cancelled.id)
        .await
        .expect("cancel");
    let before = fx.reload(&cancelled).await;
    for t in [Transition::Confirm, Transition::Cancel, Transition::Expire] {
        let r = fx
            .engine
            .store()
            .transition_booking(cancelled.id, t, fx.clock.now_for_checks())
            .await;
        assert!(
            matches!(r, Err(Error::InvalidState(_))),
            "{t:?} on cancelled: {r:?}"
        );
    }
    assert_eq!(fx.reload(&cancelled).await, before);

    let confirmed = fx.book(200, 260).await.expect("hold");
    fx.engine
        .confirm_booking(confirmed.id)
        .await
        .expect("confirm");
    let before = fx.reload(&confirmed).await;
    for t in [Transition::Confirm, Transition::Expire] {
        let r = fx
            .engine
            .store()
            .transition_booking(confirmed.id, t, fx.clock.now_for_checks())
            .await;
        assert!(
            matches!(r, Err(Error::InvalidState(_))),
            "{t:?} on confirmed: {r:?}"
        );
    }
    assert_eq!(fx.reload(&confirmed).await, before);

    // A live hold cannot be expired early; an expired one cannot be cancelled.
    let hold = fx.book(300, 360).await.expect("hold");
    let r = fx
        .engine
        .store()
        .transition_booking(hold.id, Transition::Expire, fx.clock.now_for_checks())
        .await;
    assert!(matches!(r, Err(Error::InvalidState(_))));
    fx.clock.advance(Duration::minutes(15));
    let r = fx.engine.cancel_booking(Actor::Admin, hold.id).await;
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    assert_eq!(fx.status(&hold).await, BookingStatus::Expired);

    let missing = crate::domain::BookingId::new_at(at(0));
    let r = fx
        .engine
        .store()
        .transition_booking(missing, Transition::Cancel, at(0))
        .await;
    assert_eq!(r, Err(Error::NotFound(Entity::Booking)));
}

/// A hold blocks its slot until `hold_expires_at`, exactly, even before any sweep.
pub async fn hold_blocks_until_it_expires<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let hold = fx.book(60, 120).await.expect("hold");
    fx.clock
        .advance(Duration::minutes(15) - Duration::seconds(1));
    assert!(
        is_unavailable(&fx.book(60, 120).await),
        "a live hold blocks"
    );
    fx.clock.advance(Duration::seconds(1));
    // Exactly at hold_expires_at the hold no longer blocks, even before any sweep.
    let next = fx.book(60, 120).await.expect("the slot of an expired hold");
    assert_eq!(fx.status(&hold).await, BookingStatus::Expired);
    assert_eq!(fx.status(&next).await, BookingStatus::PendingPayment);
    // The expired hold now cannot come back: its slot is taken.
    assert!(is_unavailable(&fx.engine.confirm_booking(hold.id).await));
    assert_eq!(fx.status(&hold).await, BookingStatus::Expired);
}

/// A hold that ran out confirms only while its slot is still free.
pub async fn expired_hold_reconfirms_only_if_the_slot_is_free<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let a = fx.book(60, 120).await.expect("hold a");
    let b = fx.book(200, 260).await.expect("hold b");
    fx.clock.advance(Duration::minutes(20));
    // Someone else takes part of a's old slot.
    fx.book(90, 150).await.expect("takes a's slot");
    assert!(is_unavailable(&fx.engine.confirm_booking(a.id).await));
    assert_eq!(fx.status(&a).await, BookingStatus::Expired);
    // b's slot is still free.
    let b2 = fx.engine.confirm_booking(b.id).await.expect("confirm b");
    assert_eq!(b2.status, BookingStatus::Confirmed);
    // and it blocks again.
    assert!(is_unavailable(&fx.book(200, 260).await));
}

/// `BookingStore::expire_due_holds`: due holds only, each once, at most `limit`.
pub async fn sweep_expires_due_holds_once<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let a = fx.book(60, 120).await.expect("a");
    fx.clock.advance(Duration::minutes(5));
    let b = fx.book(200, 260).await.expect("b");
    let c = fx.book(300, 360).await.expect("c");
    fx.engine.confirm_booking(c.id).await.expect("confirm c");
    fx.clock.advance(Duration::minutes(10)); // a due, b not
    let swept: Vec<_> = fx
        .engine
        .expire_due_holds(100)
        .await
        .expect("sweep")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(swept, vec![a.id]);
    assert!(
        fx.engine
            .expire_due_holds(100)
            .await
            .expect("sweep")
            .is_empty()
    );
    fx.clock.advance(Duration::minutes(5));
    let swept: Vec<_> = fx
        .engine
        .expire_due_holds(1)
        .await
        .expect("sweep")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(swept, vec![b.id], "limit respected, b now due");
    assert_eq!(fx.status(&c).await, BookingStatus::Confirmed);
    assert_eq!(
        events_of(fx.engine.store().as_ref(), &a).await,
        vec![EventKind::BookingCreated, EventKind::BookingExpired]
    );
}

/// Cancelling frees the slot and is idempotent; strangers cannot cancel.
pub async fn cancel_releases_the_slot<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = fx.book(60, 120).await.expect("a");
    assert!(is_unavailable(&fx.book(60, 120).await));
    let cancelled = fx
        .engine
        .cancel_booking(Actor::Client(fx.client.id), a.id)
        .await
        .expect("cancel");
    // Cancelling again (a retry, or the professional at the same time) is the same answer
    // and records nothing more.
    let again = fx
        .engine
        .cancel_booking(Actor::Professional(fx.pro.id), a.id)
        .await
        .expect("cancel again");
    assert_eq!(again, cancelled);
    assert_eq!(
        events_of(fx.engine.store().as_ref(), &a).await,
        vec![EventKind::BookingCreated, EventKind::BookingCancelled]
    );
    fx.book(60, 120).await.expect("free after cancel");
    // Strangers cannot see, let alone cancel, someone else's booking.
    let stranger = new_client(&fx.engine).await;
    let r = fx
        .engine
        .cancel_booking(Actor::Client(stranger.id), a.id)
        .await;
    assert_eq!(r, Err(Error::NotFound(Entity::Booking)));
}

/// Random operation sequences give the reference model's answers and states.
pub async fn state_machine_matches_the_model<S: Store + ?Sized + 'static>(store: Arc<S>) {
    super::super::model::run_against(store).await;
}
