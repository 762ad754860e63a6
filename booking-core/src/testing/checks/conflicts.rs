//! Conflicts: half-open ranges, buffers, professionals, and moves of a booking
//! ([`BookingStore::insert_booking`], [`BookingStore::reschedule_booking`]).
//!
//! [`BookingStore::insert_booking`]: crate::store::BookingStore::insert_booking
//! [`BookingStore::reschedule_booking`]: crate::store::BookingStore::reschedule_booking

use std::sync::Arc;

use super::super::fixtures::{Fixture, new_professional, range};
use super::support::*;
use crate::auth::Actor;
use crate::error::Error;
use crate::events::EventKind;
use crate::store::Store;

/// Ranges are half-open: bookings that touch end to start never conflict.
pub async fn back_to_back_bookings_do_not_conflict<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.book(60, 120).await.expect("first booking");
    fx.book(120, 180).await.expect("back-to-back after");
    fx.book(0, 60).await.expect("back-to-back before");
    assert_eq!(all_bookings(&fx, Actor::Admin).await.len(), 3);
}

/// `BookingStore::insert_booking`: any overlap with an active booking is `SlotUnavailable`.
pub async fn overlapping_booking_is_refused<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let first = fx.book(60, 120).await.expect("first booking");
    for (s, e) in [(60, 120), (30, 65), (115, 150), (70, 80), (0, 240)] {
        assert!(
            is_unavailable(&fx.book(s, e).await),
            "[{s},{e}) must conflict"
        );
    }
    let all = all_bookings(&fx, Actor::Admin).await;
    assert_eq!(all, vec![fx.reload(&first).await]);
}

/// Buffers widen the blocked range, never the booked range.
pub async fn buffers_widen_the_blocked_range<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.set_buffers(10, 15).await;
    let b = fx.book(60, 120).await.expect("booking");
    assert_eq!(b.range, range(60, 120), "the booked range is not widened");
    assert_eq!(b.blocked, range(50, 135), "the blocked range is");
    // Starts inside the after-buffer: the two blocked ranges overlap.
    assert!(is_unavailable(&fx.book(130, 160).await));
    // Ends inside the before-buffer of b.
    assert!(is_unavailable(&fx.book(20, 55).await));
    // Exactly clear of both buffers: [145, 160) blocks [135, 175).
    fx.book(145, 160).await.expect("clear of the buffers");
    // [15, 40) blocks [5, 55): overlaps b's blocked range [50, 135).
    assert!(is_unavailable(&fx.book(15, 40).await));
    // [0, 25) blocks [-10, 40): clear.
    fx.book(0, 25).await.expect("clear before");
}

/// Conflicts are per professional: another professional's booking never blocks.
pub async fn professionals_do_not_share_slots<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let other = new_professional(&fx.engine).await;
    fx.book(60, 120).await.expect("first professional");
    fx.book_for(&other, &fx.client, range(60, 120))
        .await
        .expect("same time, other professional");
}

/// `BookingStore::reschedule_booking`: the old range is released and the new one taken in one step.
pub async fn reschedule_moves_atomically<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = fx.book(60, 120).await.expect("a");
    let moved = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(180, 240))
        .await
        .expect("reschedule");
    assert_eq!(moved.range, range(180, 240));
    assert_eq!(moved.id, a.id);
    assert_eq!(moved.price, a.price);
    fx.book(60, 120).await.expect("old range released");
    assert!(is_unavailable(&fx.book(180, 240).await), "new range taken");
    let events = events_of(fx.engine.store().as_ref(), &a).await;
    assert_eq!(
        events,
        vec![EventKind::BookingCreated, EventKind::BookingRescheduled]
    );
    // Only the booking's client may move it; its professional may see it but gets 403.
    let r = fx
        .engine
        .reschedule_booking(Actor::Professional(fx.pro.id), a.id, range(300, 360))
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
    // The duration is fixed.
    let r = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(300, 330))
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
}

/// A reschedule into a taken slot is refused and changes nothing, records nothing.
pub async fn reschedule_into_a_taken_slot_changes_nothing<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = fx.book(60, 120).await.expect("a");
    fx.book(180, 240).await.expect("b");
    let before = fx.reload(&a).await;
    let r = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(200, 260))
        .await;
    assert!(is_unavailable(&r), "{r:?}");
    assert_eq!(fx.reload(&a).await, before);
    assert!(
        is_unavailable(&fx.book(60, 120).await),
        "a still holds its range"
    );
    assert_eq!(
        events_of(fx.engine.store().as_ref(), &a).await,
        vec![EventKind::BookingCreated]
    );
}

/// A booking may move over its own old range (it never conflicts with itself).
pub async fn reschedule_may_overlap_its_own_old_range<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.set_buffers(0, 15).await;
    let a = fx.book(60, 120).await.expect("a");
    let moved = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(90, 150))
        .await
        .expect("overlapping its own old range is fine");
    assert_eq!(moved.blocked, range(90, 165));
    fx.book(0, 75)
        .await
        .expect("the released part is free again");
}
