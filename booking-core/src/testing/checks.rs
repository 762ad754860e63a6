//! The named conformance checks. Each takes a fresh, empty store and panics on a violation.

#![allow(missing_docs)] // each check's name is its documentation; see the module list in mod.rs

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;

use super::fixtures::{Fixture, at, new_client, new_professional, range, unique};
use crate::auth::{Actor, Principal, TokenHash};
use crate::conflict::find_overlap;
use crate::domain::{
    Booking, BookingStatus, GeoPoint, NewClient, NewProfessional, ProfessionalPatch, Transition,
};
use crate::engine::{BookingFilter, BookingRequest};
use crate::error::{Entity, Error};
use crate::events::EventKind;
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, Scope, StoredResponse};
use crate::schedule::Schedule;
use crate::store::Registered;
use crate::store::{Cursor, Inserted, ProfessionalQuery, Store};

mod inbox;
mod outbound;
mod outbox;
mod payments;
mod requests;
mod search;
pub use inbox::*;
pub use outbound::*;
pub use outbox::*;
pub use payments::*;
pub use requests::*;
pub use search::*;

fn is_unavailable<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::SlotUnavailable))
}

async fn all_bookings<S: Store + ?Sized>(fx: &Fixture<S>, actor: Actor) -> Vec<Booking> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = fx
            .engine
            .list_bookings(
                actor,
                &BookingFilter {
                    limit: Some(100),
                    after,
                    ..BookingFilter::default()
                },
            )
            .await
            .expect("list bookings");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

async fn events_of<S: Store + ?Sized>(store: &S, booking: &Booking) -> Vec<EventKind> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let batch = store.events_after(after, 500).await.expect("read outbox");
        let Some(last) = batch.last() else {
            return out;
        };
        after = Some(last.id);
        out.extend(
            batch
                .iter()
                .filter(|e| e.booking_id == booking.id)
                .map(|e| e.kind),
        );
    }
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).expect("valid key")
}

fn fp(body: &str) -> Fingerprint {
    Fingerprint::of_request("POST", "/v1/bookings", body.as_bytes())
}

fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

// ---- conflicts -------------------------------------------------------------------------

pub async fn back_to_back_bookings_do_not_conflict<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.book(60, 120).await.expect("first booking");
    fx.book(120, 180).await.expect("back-to-back after");
    fx.book(0, 60).await.expect("back-to-back before");
    assert_eq!(all_bookings(&fx, Actor::Admin).await.len(), 3);
}

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

pub async fn professionals_do_not_share_slots<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let other = new_professional(&fx.engine).await;
    fx.book(60, 120).await.expect("first professional");
    fx.book_for(&other, &fx.client, range(60, 120))
        .await
        .expect("same time, other professional");
}

// ---- status machine --------------------------------------------------------------------

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

// ---- reschedule ------------------------------------------------------------------------

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

pub async fn key_reused_after_expiry_is_a_new_request<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let ttl = fx.engine.config().idempotency.ttl;
    let scope = Scope::new(unique("client"));
    let body = "{\"slot\":1}";
    let book = |first_seen| {
        let engine = &fx.engine;
        let request = BookingRequest {
            client_id: fx.client.id,
            professional_id: fx.pro.id,
            range: range(ttl.num_minutes() + 60, ttl.num_minutes() + 120),
            request_ref: Some(crate::idempotency::request_ref(
                &scope,
                &key("reused"),
                &fp(body),
                first_seen,
            )),
        };
        async move { engine.create_booking(&request).await.expect("create") }
    };
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "reused", body).await else {
        panic!("starts");
    };
    let Inserted::Created(first) = book(first_seen).await else {
        panic!("creates");
    };
    fx.engine
        .complete_request(&scope, &key("reused"), lease, &response(201, "first"))
        .await
        .expect("complete");
    fx.engine
        .cancel_booking(Actor::Admin, first.id)
        .await
        .expect("cancel");
    fx.clock.advance(ttl);
    // The key's record has expired: the same key and body are a new request, which must
    // book anew rather than hand back the old, cancelled booking.
    let Decision::Started {
        first_seen: later, ..
    } = begin(&fx, &scope, "reused", body).await
    else {
        panic!("an expired key starts afresh");
    };
    assert_ne!(later, first_seen);
    let Inserted::Created(second) = book(later).await else {
        panic!("a new booking, not the old one");
    };
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, BookingStatus::Confirmed);
}

pub async fn retry_of_a_created_booking_returns_it<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    let Inserted::Created(first) = fx.engine.create_booking(&request).await.expect("first") else {
        panic!("first attempt must create");
    };
    // The retry conflicts with its own booking's slot, yet must not answer "taken".
    let Inserted::Existing(again) = fx.engine.create_booking(&request).await.expect("retry") else {
        panic!("retry must find the first booking");
    };
    assert_eq!(again.id, first.id);
    // Store level too, racing past the engine's look-up.
    let mut dup = first.clone();
    dup.id = crate::domain::BookingId::new_at(at(1));
    let r = fx
        .engine
        .store()
        .insert_booking(&dup, at(0))
        .await
        .expect("store retry");
    assert_eq!(r.booking().id, first.id);
    assert!(matches!(r, Inserted::Existing(_)));
    assert_eq!(all_bookings(&fx, Actor::Admin).await.len(), 1);
    // Another request for the same slot is refused.
    let other = BookingRequest {
        request_ref: Some(unique("request")),
        ..request
    };
    assert!(is_unavailable(&fx.engine.create_booking(&other).await));
}

// ---- lists -----------------------------------------------------------------------------

pub async fn pagination_has_no_gaps_or_duplicates<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    // 25 bookings, some sharing a start across professionals (tie-break on id).
    let other = new_professional(&fx.engine).await;
    let mut expected = Vec::new();
    for i in 0..15 {
        expected.push(fx.book(i * 60, i * 60 + 30).await.expect("book").id);
    }
    for i in 0..10 {
        expected.push(
            fx.book_for(&other, &fx.client, range(i * 60, i * 60 + 30))
                .await
                .expect("book")
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut added = false;
    loop {
        let page = fx
            .engine
            .list_bookings(
                Actor::Client(fx.client.id),
                &BookingFilter {
                    limit: Some(4),
                    after,
                    ..BookingFilter::default()
                },
            )
            .await
            .expect("page");
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|b| (b.range.start(), b.id)));
        if !added {
            // Rows added while paging, before and after the cursor, don't disturb it.
            added = true;
            fx.book(-300, -290).await.ok(); // in the past: refused by availability
            let late = fx.book(10_000, 10_030).await.expect("late booking");
            expected.push(late.id);
        }
        match page.next_cursor {
            Some(c) => {
                // Cursors survive a round trip through their text form.
                after = Some(c.to_string().parse::<Cursor>().expect("cursor parses"));
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by (start, id)");
    let ids: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), seen.len(), "no duplicates");
    let want: HashSet<_> = expected.into_iter().collect();
    assert_eq!(ids, want, "no gaps");
    // A limit outside 1..=100 is refused.
    for bad in [0, 101] {
        let r = fx
            .engine
            .list_bookings(
                Actor::Admin,
                &BookingFilter {
                    limit: Some(bad),
                    ..BookingFilter::default()
                },
            )
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))));
    }
}

pub async fn list_filters_by_owner_status_and_time<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let other_pro = new_professional(&fx.engine).await;
    let other_client = new_client(&fx.engine).await;
    let a = fx.book(60, 120).await.expect("a"); // hold, will expire
    let b = fx.book(180, 240).await.expect("b");
    fx.engine.confirm_booking(b.id).await.expect("confirm b");
    let c = fx
        .book_for(&other_pro, &other_client, range(60, 120))
        .await
        .expect("c");
    fx.clock.advance(Duration::minutes(16)); // a's hold ran out (not swept)
    let ids = |v: Vec<Booking>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let list = |actor, filter: BookingFilter| {
        let engine = &fx.engine;
        async move {
            engine
                .list_bookings(actor, &filter)
                .await
                .expect("list")
                .items
        }
    };
    assert_eq!(
        ids(list(Actor::Client(fx.client.id), BookingFilter::default()).await),
        vec![a.id, b.id]
    );
    assert_eq!(
        ids(list(Actor::Professional(other_pro.id), BookingFilter::default()).await),
        vec![c.id]
    );
    assert_eq!(
        ids(list(Actor::Admin, BookingFilter::default()).await).len(),
        3
    );
    let expired = list(
        Actor::Admin,
        BookingFilter {
            status: Some(BookingStatus::Expired),
            ..BookingFilter::default()
        },
    )
    .await;
    // a and c start together: the list orders them by id.
    let mut want_expired = vec![a.id, c.id];
    want_expired.sort();
    assert_eq!(
        ids(expired.clone()),
        want_expired,
        "effective status, before any sweep"
    );
    assert!(expired.iter().all(|b| b.status == BookingStatus::Expired));
    let confirmed = list(
        Actor::Admin,
        BookingFilter {
            status: Some(BookingStatus::Confirmed),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(confirmed), vec![b.id]);
    let window = list(
        Actor::Admin,
        BookingFilter {
            from: Some(at(60)),
            to: Some(at(180)),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(window).len(), 2, "start in [from, to)");
    let by_pro = list(
        Actor::Admin,
        BookingFilter {
            professional_id: Some(fx.pro.id),
            ..BookingFilter::default()
        },
    )
    .await;
    assert_eq!(ids(by_pro), vec![a.id, b.id]);
    // The client of other bookings sees none of fx's.
    let theirs = list(
        Actor::Client(other_client.id),
        BookingFilter {
            professional_id: Some(fx.pro.id),
            ..BookingFilter::default()
        },
    )
    .await;
    assert!(theirs.is_empty());
    assert_eq!(
        fx.engine
            .get_booking(Actor::Client(other_client.id), a.id)
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
}

// ---- idempotency -----------------------------------------------------------------------

async fn begin<S: Store + ?Sized>(fx: &Fixture<S>, scope: &Scope, k: &str, body: &str) -> Decision {
    fx.engine
        .begin_request(scope, &key(k), fp(body))
        .await
        .expect("begin")
}

/// The response of a [`Decision::Replay`], if it is one.
fn replayed(d: Decision) -> Option<StoredResponse> {
    match d {
        Decision::Replay { response, .. } => Some(response),
        _ => None,
    }
}

pub async fn idempotency_replays_the_stored_response<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "k1", "{\"a\":1}").await
    else {
        panic!("first begin starts");
    };
    let resp = response(409, "{\"code\":\"slot_unavailable\"}");
    assert!(
        fx.engine
            .complete_request(&scope, &key("k1"), lease, &resp)
            .await
            .expect("complete")
    );
    for _ in 0..3 {
        fx.clock.advance(Duration::seconds(1));
        assert_eq!(
            begin(&fx, &scope, "k1", "{ \"a\": 1 }").await,
            Decision::Replay {
                response: resp.clone(),
                first_seen
            }
        );
    }
    // The quoted form of a key is the same key.
    let quoted = IdempotencyKey::parse("\"k1\"").expect("quoted");
    assert_eq!(
        fx.engine
            .begin_request(&scope, &quoted, fp("{\"a\":1}"))
            .await
            .expect("begin"),
        Decision::Replay {
            response: resp,
            first_seen
        }
    );
}

pub async fn idempotency_rejects_a_different_request<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "k", "{\"a\":1}").await else {
        panic!("starts");
    };
    assert_eq!(
        begin(&fx, &scope, "k", "{\"a\":2}").await,
        Decision::Mismatch
    );
    fx.engine
        .complete_request(&scope, &key("k"), lease, &response(201, "{}"))
        .await
        .expect("complete");
    assert_eq!(
        begin(&fx, &scope, "k", "{\"a\":2}").await,
        Decision::Mismatch
    );
    let other_path = Fingerprint::of_request("POST", "/v1/clients", b"{\"a\":1}");
    assert_eq!(
        fx.engine
            .begin_request(&scope, &key("k"), other_path)
            .await
            .expect("begin"),
        Decision::Mismatch
    );
}

pub async fn idempotency_in_flight_until_the_lease_runs_out<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let lease_len = fx.engine.config().idempotency.lease;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease: first, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    match begin(&fx, &scope, "k", "{}").await {
        Decision::InFlight { retry_after } => {
            assert!(retry_after > Duration::zero() && retry_after <= lease_len)
        }
        other => panic!("expected InFlight, got {other:?}"),
    }
    // The first attempt crashed: after its lease a retry takes over.
    fx.clock.advance(lease_len);
    let Decision::Started { lease: second, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("a retry after the lease starts again");
    };
    assert_ne!(first, second);
    // The crashed attempt waking up late cannot overwrite the new attempt's record.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), first, &response(500, "late"))
            .await
            .expect("complete")
    );
    assert!(
        fx.engine
            .complete_request(&scope, &key("k"), second, &response(201, "ok"))
            .await
            .expect("complete")
    );
    assert_eq!(
        replayed(begin(&fx, &scope, "k", "{}").await),
        Some(response(201, "ok"))
    );
}

pub async fn idempotency_only_the_lease_owner_completes<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    let stranger = crate::idempotency::LeaseId::new_at(at(0));
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), stranger, &response(200, "x"))
            .await
            .expect("complete")
    );
    assert!(
        !fx.engine
            .abandon_request(&scope, &key("k"), stranger)
            .await
            .expect("abandon")
    );
    assert!(matches!(
        begin(&fx, &scope, "k", "{}").await,
        Decision::InFlight { .. }
    ));
    assert!(
        fx.engine
            .complete_request(&scope, &key("k"), lease, &response(200, "x"))
            .await
            .expect("complete")
    );
    // Completing twice changes nothing.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), lease, &response(200, "y"))
            .await
            .expect("complete")
    );
    assert_eq!(
        replayed(begin(&fx, &scope, "k", "{}").await),
        Some(response(200, "x"))
    );
    // Unknown keys: nothing to complete.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("nope"), lease, &response(200, "x"))
            .await
            .expect("complete")
    );
}

pub async fn idempotency_abandon_lets_a_retry_run<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    fx.clock.advance(Duration::seconds(5));
    assert!(
        fx.engine
            .abandon_request(&scope, &key("k"), lease)
            .await
            .expect("abandon")
    );
    // The key still belongs to that request: another body is refused...
    assert_eq!(
        begin(&fx, &scope, "k", "{\"other\":true}").await,
        Decision::Mismatch
    );
    // ...and the same request runs again at once (a 5xx is not a final answer), as the same
    // request: same first_seen, so it finds what the failed attempt may have committed.
    match begin(&fx, &scope, "k", "{}").await {
        Decision::Started {
            lease: again,
            first_seen: seen,
        } => {
            assert_ne!(again, lease);
            assert_eq!(seen, first_seen);
        }
        other => panic!("expected Started, got {other:?}"),
    }
}

pub async fn idempotency_keys_expire_and_are_purged<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let ttl = fx.engine.config().idempotency.ttl;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "old", "{}").await else {
        panic!("starts");
    };
    fx.engine
        .complete_request(&scope, &key("old"), lease, &response(201, "1"))
        .await
        .expect("complete");
    fx.clock.advance(ttl - Duration::minutes(1));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "young", "{}").await else {
        panic!("starts");
    };
    fx.engine
        .complete_request(&scope, &key("young"), lease, &response(201, "2"))
        .await
        .expect("complete");
    assert_eq!(fx.engine.purge_idempotency(1000).await.expect("purge"), 0);
    fx.clock.advance(Duration::minutes(1));
    // Expired: gone for callers even before the purge, and the purge deletes exactly it.
    assert!(matches!(
        begin(&fx, &scope, "old", "{\"new\":1}").await,
        Decision::Started { .. }
    ));
    fx.clock.advance(ttl);
    let purged = fx.engine.purge_idempotency(1000).await.expect("purge");
    assert_eq!(
        purged, 2,
        "the re-used 'old' record and 'young' are both past their TTL"
    );
    assert!(matches!(
        begin(&fx, &scope, "young", "{\"x\":1}").await,
        Decision::Started { .. }
    ));
}

pub async fn idempotency_scopes_are_independent<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = Scope::new(unique("client"));
    let b = Scope::new(unique("client"));
    assert!(matches!(
        begin(&fx, &a, "same", "{\"a\":1}").await,
        Decision::Started { .. }
    ));
    assert!(matches!(
        begin(&fx, &b, "same", "{\"b\":1}").await,
        Decision::Started { .. }
    ));
}

// ---- outbox ----------------------------------------------------------------------------

pub async fn outbox_records_each_change_once<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::with_holds(store).await;
    let a = fx.book(60, 120).await.expect("a");
    fx.engine.confirm_booking(a.id).await.expect("confirm");
    fx.engine
        .reschedule_booking(Actor::Client(fx.client.id), a.id, range(120, 180))
        .await
        .expect("reschedule");
    fx.engine
        .cancel_booking(Actor::Admin, a.id)
        .await
        .expect("cancel");
    let b = fx.book(300, 360).await.expect("b");
    fx.clock.advance(Duration::minutes(15));
    fx.engine.expire_due_holds(10).await.expect("sweep");
    let store = fx.engine.store().as_ref();
    assert_eq!(
        events_of(store, &a).await,
        vec![
            EventKind::BookingCreated,
            EventKind::BookingConfirmed,
            EventKind::BookingRescheduled,
            EventKind::BookingCancelled
        ]
    );
    assert_eq!(
        events_of(store, &b).await,
        vec![EventKind::BookingCreated, EventKind::BookingExpired]
    );
    // Each event carries the booking as it was right after the change.
    let all = store.events_after(None, 100).await.expect("outbox");
    let resched = all
        .iter()
        .find(|e| e.kind == EventKind::BookingRescheduled)
        .expect("reschedule event");
    assert_eq!(resched.previous_range, Some(range(60, 120)));
    assert_eq!(resched.booking.range, range(120, 180));
    let ids: HashSet<_> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");
    // Paging through the outbox with a cursor sees every event once, in order.
    let first_two = store.events_after(None, 2).await.expect("outbox");
    let rest = store
        .events_after(Some(first_two[1].id), 100)
        .await
        .expect("outbox");
    let paged: Vec<_> = first_two.iter().chain(rest.iter()).map(|e| e.id).collect();
    assert_eq!(paged, all.iter().map(|e| e.id).collect::<Vec<_>>());
}

pub async fn failed_operations_record_no_event<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = fx.book(60, 120).await.expect("a");
    let before = fx
        .engine
        .store()
        .events_after(None, 1000)
        .await
        .expect("outbox")
        .len();
    assert!(is_unavailable(&fx.book(60, 120).await));
    let _ = fx.engine.confirm_booking(a.id).await; // already confirmed: refused
    let b = fx.book(180, 240).await.expect("b");
    let _ = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), b.id, range(90, 150))
        .await; // conflict
    let after = fx
        .engine
        .store()
        .events_after(None, 1000)
        .await
        .expect("outbox");
    assert_eq!(after.len(), before + 1, "only b's creation was recorded");
    assert_eq!(
        after.last().map(|e| e.kind),
        Some(EventKind::BookingCreated)
    );
}

// ---- directory and schedules -----------------------------------------------------------

pub async fn directory_roundtrip_and_tokens<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let token = unique("tok");
    let p = fx
        .engine
        .create_professional(
            &NewProfessional {
                name: "Róisín Ó Briain".into(),
                category: "yoga".into(),
                location: GeoPoint {
                    lat: -33.8688,
                    lng: 151.2093,
                },
                hourly_rate_cents: 12_345,
                currency: "aud".into(),
                timezone: "Australia/Sydney".into(),
                is_active: Some(true),
            },
            TokenHash::of(&token),
        )
        .await
        .expect("create");
    assert_eq!(fx.engine.get_professional(p.id).await.expect("get"), p);
    assert_eq!(
        fx.engine.authenticate(&token).await.expect("auth"),
        Some(Principal::Professional(p.id))
    );
    assert_eq!(fx.engine.authenticate("unknown").await.expect("auth"), None);
    // A second subject with the same token hash is refused.
    let dup = fx
        .engine
        .create_client(
            &NewClient {
                name: "x".into(),
                email: "x@example.com".into(),
            },
            TokenHash::of(&token),
        )
        .await;
    assert!(matches!(dup, Err(Error::AlreadyExists(_))), "{dup:?}");
    let ctoken = unique("ctok");
    let c = fx
        .engine
        .create_client(
            &NewClient {
                name: "Zoë".into(),
                email: "zoe@example.com".into(),
            },
            TokenHash::of(&ctoken),
        )
        .await
        .expect("client");
    assert_eq!(fx.engine.get_client(c.id).await.expect("get"), c);
    assert_eq!(
        fx.engine.authenticate(&ctoken).await.expect("auth"),
        Some(Principal::Client(c.id))
    );
    // Updates: self or admin only; validated; atomic.
    fx.clock.advance(Duration::minutes(1));
    let patch = ProfessionalPatch {
        hourly_rate_cents: Some(9_000),
        name: Some("Róisín".into()),
        ..ProfessionalPatch::default()
    };
    let updated = fx
        .engine
        .update_professional(Actor::Professional(p.id), p.id, &patch)
        .await
        .expect("self update");
    assert_eq!(updated.hourly_rate_cents, 9_000);
    assert_eq!(updated.updated_at, at(1));
    assert_eq!(
        fx.engine.get_professional(p.id).await.expect("get"),
        updated
    );
    let r = fx
        .engine
        .update_professional(Actor::Client(c.id), p.id, &patch)
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))));
    let bad = ProfessionalPatch {
        location: Some(GeoPoint {
            lat: 95.0,
            lng: 0.0,
        }),
        ..ProfessionalPatch::default()
    };
    let r = fx
        .engine
        .update_professional(Actor::Admin, p.id, &bad)
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))));
    assert_eq!(
        fx.engine.get_professional(p.id).await.expect("get"),
        updated
    );
    let missing = crate::domain::ProfessionalId::new_at(at(0));
    assert_eq!(
        fx.engine.get_professional(missing).await,
        Err(Error::NotFound(Entity::Professional))
    );
    assert_eq!(
        fx.engine
            .update_professional(Actor::Admin, missing, &patch)
            .await,
        Err(Error::NotFound(Entity::Professional))
    );
}

fn subject_client() -> NewClient {
    NewClient {
        name: "Lin".into(),
        email: "lin@example.com".into(),
    }
}

fn subject_professional() -> NewProfessional {
    NewProfessional {
        name: "Ada".into(),
        category: "physiotherapy".into(),
        location: GeoPoint {
            lat: 52.52,
            lng: 13.405,
        },
        hourly_rate_cents: 8_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
}

/// `DirectoryStore::insert_professional` / `insert_client` with a `request_ref` already
/// stored return `Registered::Existing` with the first subject and store nothing new.
pub async fn retry_of_a_created_subject_returns_it<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let (pro_ref, client_ref) = (unique("request"), unique("request"));
    let first_token = unique("tok");
    let Registered::Created(pro) = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&first_token),
            Some(&pro_ref),
        )
        .await
        .expect("first attempt")
    else {
        panic!("the first attempt creates");
    };
    // A retry, later, even with another token hash: the first professional, nothing new.
    fx.clock.advance(Duration::minutes(1));
    let retry_token = unique("tok");
    let again = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&retry_token),
            Some(&pro_ref),
        )
        .await
        .expect("retry");
    assert_eq!(again, Registered::Existing(pro.clone()));
    assert_eq!(
        fx.engine.authenticate(&retry_token).await.expect("auth"),
        None
    );
    // The usual retry carries the same token (derived from the request): same answer.
    let same = fx
        .engine
        .register_professional(
            &subject_professional(),
            TokenHash::of(&first_token),
            Some(&pro_ref),
        )
        .await
        .expect("retry with the same token");
    assert_eq!(same, Registered::Existing(pro.clone()));
    assert_eq!(
        fx.engine.authenticate(&first_token).await.expect("auth"),
        Some(Principal::Professional(pro.id))
    );
    // Store level too, with a new id: the existing one is returned, the new id not stored.
    let mut dup = pro.clone();
    dup.id = crate::domain::ProfessionalId::new_at(at(2));
    let r = fx
        .engine
        .store()
        .insert_professional(&dup, TokenHash::of(&unique("tok")), Some(&pro_ref))
        .await
        .expect("store retry");
    assert_eq!(r, Registered::Existing(pro.clone()));
    assert_eq!(fx.engine.store().get_professional(dup.id).await, Ok(None));
    // Clients alike.
    let client_token = unique("tok");
    let Registered::Created(client) = fx
        .engine
        .register_client(
            &subject_client(),
            TokenHash::of(&client_token),
            Some(&client_ref),
        )
        .await
        .expect("client")
    else {
        panic!("the first attempt creates");
    };
    let mut dup = client.clone();
    dup.id = crate::domain::ClientId::new_at(at(2));
    let r = fx
        .engine
        .store()
        .insert_client(&dup, TokenHash::of(&unique("tok")), Some(&client_ref))
        .await
        .expect("store retry");
    assert_eq!(r, Registered::Existing(client.clone()));
    assert_eq!(fx.engine.store().get_client(dup.id).await, Ok(None));
    // A reference belongs to one subject: a client cannot take a professional's.
    let other_token = unique("tok");
    let r = fx
        .engine
        .register_client(
            &subject_client(),
            TokenHash::of(&other_token),
            Some(&pro_ref),
        )
        .await;
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
    assert_eq!(
        fx.engine.authenticate(&other_token).await.expect("auth"),
        None
    );
    // Another reference, or none, is another subject.
    for request_ref in [Some(unique("request")), None, None] {
        let r = fx
            .engine
            .register_client(
                &subject_client(),
                TokenHash::of(&unique("tok")),
                request_ref.as_deref(),
            )
            .await
            .expect("another client");
        let Registered::Created(c) = r else {
            panic!("a new request creates");
        };
        assert_ne!(c.id, client.id);
    }
}

/// Concurrent `insert_client` calls with one `request_ref`: exactly one stores a client,
/// every other returns that client as `Registered::Existing`.
pub async fn race_one_request_ref_one_subject<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::new(store).await);
    let request_ref = unique("request");
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        let request_ref = request_ref.clone();
        tasks.push(tokio::spawn(async move {
            fx.engine
                .register_client(
                    &subject_client(),
                    TokenHash::of(&unique("tok")),
                    Some(&request_ref),
                )
                .await
                .expect("register")
        }));
    }
    let mut created = Vec::new();
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.expect("task");
        ids.insert(r.get().id);
        if let Registered::Created(c) = r {
            created.push(c);
        }
    }
    assert_eq!(created.len(), 1, "exactly one attempt creates");
    assert_eq!(ids.len(), 1, "every attempt answers with that client");
}

pub async fn search_filters_and_paginates<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await; // its professional: massage, 6000
    let mut made = vec![fx.pro.clone()];
    for (i, rate) in [3_000, 6_000, 6_000, 9_000, 12_000, 6_000]
        .into_iter()
        .enumerate()
    {
        let p = fx
            .engine
            .create_professional(
                &NewProfessional {
                    name: format!("P{i}"),
                    category: if i % 2 == 0 {
                        "massage".into()
                    } else {
                        "yoga".into()
                    },
                    location: GeoPoint { lat: 0.0, lng: 0.0 },
                    hourly_rate_cents: rate,
                    currency: "eur".into(),
                    timezone: "UTC".into(),
                    is_active: Some(i != 5),
                },
                TokenHash::of(&unique("t")),
            )
            .await
            .expect("create");
        made.push(p);
    }
    let query = |category: Option<&str>, min: Option<i64>, max: Option<i64>| ProfessionalQuery {
        category: category.map(|c| crate::domain::Category::parse(c).expect("slug")),
        min_rate_cents: min,
        max_rate_cents: max,
        near: None,
        text: None,
        limit: 2,
        after: None,
    };
    let collect = |q: ProfessionalQuery| {
        let engine = &fx.engine;
        async move {
            let mut q = q;
            let mut out = Vec::new();
            loop {
                let page = engine.search_professionals(&q).await.expect("search");
                assert!(page.items.len() <= 2);
                out.extend(page.items.iter().map(|p| (p.hourly_rate_cents, p.id)));
                match page.next_cursor {
                    Some(c) => q.after = Some(c),
                    None => return out,
                }
            }
        }
    };
    let expect = |f: &dyn Fn(&crate::domain::Professional) -> bool| {
        let mut v: Vec<_> = made
            .iter()
            .filter(|p| p.is_active && f(p))
            .map(|p| (p.hourly_rate_cents, p.id))
            .collect();
        v.sort();
        v
    };
    assert_eq!(collect(query(None, None, None)).await, expect(&|_| true));
    assert_eq!(
        collect(query(Some("massage"), None, None)).await,
        expect(&|p| p.category.as_str() == "massage")
    );
    assert_eq!(
        collect(query(None, Some(6_000), Some(9_000))).await,
        expect(&|p| (6_000..=9_000).contains(&p.hourly_rate_cents))
    );
    assert!(
        collect(query(Some("plumbing"), None, None))
            .await
            .is_empty()
    );
}

pub async fn schedule_roundtrip<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let input: crate::schedule::ScheduleInput = serde_json::from_value(serde_json::json!({
        "timezone": "America/New_York",
        "weekly": [
            {"weekday": "mon", "start": "09:00", "end": "12:00"},
            {"weekday": "mon", "start": "13:00", "end": "17:30"},
            {"weekday": "sat", "start": "10:00", "end": "24:00"}
        ],
        "overrides": [{"date": "2027-03-10", "intervals": []}],
        "buffer_before_minutes": 5, "buffer_after_minutes": 15,
        "min_notice_minutes": 120, "horizon_days": 60, "slot_step_minutes": 30
    }))
    .expect("schedule json");
    let schedule = input.validate().expect("valid schedule");
    fx.engine
        .set_schedule(Actor::Professional(fx.pro.id), fx.pro.id, schedule.clone())
        .await
        .expect("set");
    assert_eq!(
        fx.engine.get_schedule(fx.pro.id).await.expect("get"),
        schedule
    );
    // Replace, not merge.
    let open = Schedule::always_open(fx.pro.timezone);
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, open.clone())
        .await
        .expect("replace");
    assert_eq!(fx.engine.get_schedule(fx.pro.id).await.expect("get"), open);
    let stranger = new_client(&fx.engine).await;
    let r = fx
        .engine
        .set_schedule(Actor::Client(stranger.id), fx.pro.id, schedule.clone())
        .await;
    assert!(matches!(r, Err(Error::Forbidden(_))));
    let missing = crate::domain::ProfessionalId::new_at(at(0));
    assert_eq!(
        fx.engine.store().put_schedule(missing, &schedule).await,
        Err(Error::NotFound(Entity::Professional))
    );
    let bare = new_professional(&fx.engine).await;
    let _ = bare; // has the always-open schedule from the fixture helper
}

pub async fn booking_outside_availability_is_refused<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    // Working hours 09:00-17:00 Berlin (UTC+1 in March 2027 before the switch) on
    // Monday 2027-03-01; t0 is 08:00 UTC = 09:00 Berlin.
    let input: crate::schedule::ScheduleInput = serde_json::from_value(serde_json::json!({
        "timezone": "Europe/Berlin",
        "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"}],
        "min_notice_minutes": 60, "horizon_days": 30, "slot_step_minutes": 30
    }))
    .expect("json");
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, input.validate().expect("valid"))
        .await
        .expect("set");
    let outside = |r: &Result<Booking, Error>| matches!(r, Err(Error::OutsideAvailability(_)));
    assert!(outside(&fx.book(30, 90).await), "inside notice");
    fx.book(60, 120).await.expect("10:00-11:00 Berlin");
    assert!(outside(&fx.book(420, 500).await), "past 17:00");
    assert!(
        outside(&fx.book(60 * 24, 60 * 24 + 60).await),
        "Tuesday is off"
    );
    assert!(outside(&fx.book(-120, -60).await), "in the past");
    // Only slots that availability would offer: on the 30-minute grid from 09:00, and
    // of a bookable length.
    assert!(outside(&fx.book(125, 155).await), "off the slot grid");
    assert!(outside(&fx.book(120, 121).await), "one minute is too short");
    fx.book(120, 150).await.expect("on the grid, 30 minutes");
    // Not whole minutes.
    let odd =
        crate::domain::TimeRange::new(at(200) + Duration::seconds(30), at(260)).expect("range");
    let r = fx.book_for(&fx.pro, &fx.client, odd).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    // Without a schedule nobody can book.
    let bare = fx
        .engine
        .create_professional(
            &NewProfessional {
                name: "No schedule".into(),
                category: "massage".into(),
                location: GeoPoint { lat: 0.0, lng: 0.0 },
                hourly_rate_cents: 1,
                currency: "eur".into(),
                timezone: "UTC".into(),
                is_active: None,
            },
            TokenHash::of(&unique("t")),
        )
        .await
        .expect("create");
    assert!(outside(
        &fx.book_for(&bare, &fx.client, range(60, 120)).await
    ));
    // Nor with an inactive professional.
    let off = new_professional(&fx.engine).await;
    fx.engine
        .update_professional(
            Actor::Admin,
            off.id,
            &ProfessionalPatch {
                is_active: Some(false),
                ..ProfessionalPatch::default()
            },
        )
        .await
        .expect("deactivate");
    assert!(outside(
        &fx.book_for(&off, &fx.client, range(60, 120)).await
    ));
    // Rescheduling into closed hours is refused and changes nothing.
    let b = fx.book(180, 240).await.expect("b");
    let r = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), b.id, range(60 * 24, 60 * 25))
        .await;
    assert!(matches!(r, Err(Error::OutsideAvailability(_))), "{r:?}");
    assert_eq!(fx.reload(&b).await.range, range(180, 240));
}

pub async fn availability_excludes_blocked_slots<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let mut s = Schedule::always_open(fx.pro.timezone);
    s.slot_step_minutes = 30;
    s.buffer_after_minutes = 15;
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, s)
        .await
        .expect("set");
    let window = range(0, 240);
    let all = fx
        .engine
        .availability(fx.pro.id, window, Duration::minutes(60))
        .await
        .expect("availability");
    assert!(!all.is_empty());
    let b = fx.book(90, 150).await.expect("book");
    let after = fx
        .engine
        .availability(fx.pro.id, window, Duration::minutes(60))
        .await
        .expect("availability");
    for slot in &after {
        let blocked = slot
            .widen(Duration::zero(), Duration::minutes(15))
            .expect("widen");
        assert!(
            !blocked.overlaps(&b.blocked),
            "{slot:?} hits {:?}",
            b.blocked
        );
        // Every offered slot is bookable.
    }
    assert!(after.len() < all.len());
    let first = after[0];
    fx.book_for(&fx.pro, &fx.client, first)
        .await
        .expect("an offered slot can be booked");
}

// ---- races -----------------------------------------------------------------------------

const RACERS: usize = 64;

pub async fn race_many_tasks_one_slot_one_winner<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::new(store).await);
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        tasks.push(tokio::spawn(async move {
            let client = new_client(&fx.engine).await;
            fx.book_for(&fx.pro, &client, range(60, 120)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => wins += 1,
            Err(Error::SlotUnavailable) => {}
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of {RACERS} wins the slot");
    assert_eq!(
        all_bookings(&fx, Actor::Professional(fx.pro.id))
            .await
            .len(),
        1
    );
}

pub async fn race_overlapping_requests_never_overlap<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::with_holds(store).await);
    let mut tasks = Vec::new();
    for i in 0..RACERS as i64 {
        let fx = Arc::clone(&fx);
        tasks.push(tokio::spawn(async move {
            // Lengths 15..75 at starts spread over 4 hours: lots of partial overlaps.
            let start = 5 * ((i * 37) % 48);
            let len = 15 + 5 * ((i * 13) % 12);
            let r = fx.book(start, start + len).await;
            if let Ok(b) = &r {
                if i % 3 == 0 {
                    let _ = fx.engine.cancel_booking(Actor::Admin, b.id).await;
                } else if i % 3 == 1 {
                    let _ = fx.engine.confirm_booking(b.id).await;
                }
            }
            r
        }));
    }
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) | Err(Error::SlotUnavailable) => {}
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    let all = all_bookings(&fx, Actor::Admin).await;
    assert!(!all.is_empty());
    assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
}

pub async fn race_one_idempotency_key_one_start<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let fx = Arc::new(Fixture::new(store).await);
    let scope = Scope::new(unique("client"));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let fx = Arc::clone(&fx);
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            fx.engine
                .begin_request(&scope, &key("same"), fp("{}"))
                .await
                .expect("begin")
        }));
    }
    let mut started = 0;
    for t in tasks {
        match t.await.expect("task") {
            Decision::Started { .. } => started += 1,
            Decision::InFlight { .. } => {}
            other => panic!("unexpected decision {other:?}"),
        }
    }
    assert_eq!(started, 1);
}

pub async fn race_reschedule_against_new_booking<S: Store + ?Sized + 'static>(store: Arc<S>) {
    for round in 0..16_i64 {
        let fx = Arc::new(Fixture::new(Arc::clone(&store)).await);
        let base = round * 600;
        let a = fx.book(base, base + 60).await.expect("a");
        let target = range(base + 120, base + 180);
        let (fx1, fx2) = (Arc::clone(&fx), Arc::clone(&fx));
        let moving = tokio::spawn(async move {
            fx1.engine
                .reschedule_booking(Actor::Client(fx1.client.id), a.id, target)
                .await
        });
        let booking = tokio::spawn(async move {
            let other = new_client(&fx2.engine).await;
            fx2.book_for(&fx2.pro, &other, target).await
        });
        let m = moving.await.expect("task");
        let b = booking.await.expect("task");
        assert!(
            m.is_ok() != b.is_ok(),
            "exactly one gets the slot: reschedule {m:?}, booking {b:?}"
        );
        let a_now = fx.reload(&a).await;
        if m.is_ok() {
            assert_eq!(a_now.range, target);
        } else {
            assert!(is_unavailable(&m));
            assert_eq!(
                a_now.range, a.range,
                "a lost race leaves the booking where it was"
            );
        }
        let all = all_bookings(&fx, Actor::Professional(fx.pro.id)).await;
        assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
    }
}

pub async fn state_machine_matches_the_model<S: Store + ?Sized + 'static>(store: Arc<S>) {
    super::model::run_against(store).await;
}

/// Reading the fixture clock without importing the trait everywhere.
trait NowForChecks {
    fn now_for_checks(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowForChecks for crate::clock::ManualClock {
    fn now_for_checks(&self) -> chrono::DateTime<chrono::Utc> {
        crate::clock::Clock::now(self)
    }
}

/// A forged cursor whose position no booking can have is refused, not passed to the store.
pub async fn forged_booking_cursor_is_refused<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    fx.book(60, 120).await.expect("book");
    for primary in [i64::MIN, -100_000 * 365 * 86_400 * 1_000_000, i64::MAX] {
        let r = fx
            .engine
            .list_bookings(
                Actor::Admin,
                &BookingFilter {
                    after: Some(Cursor {
                        primary,
                        id: uuid::Uuid::nil(),
                    }),
                    ..BookingFilter::default()
                },
            )
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{primary}: {r:?}");
    }
}
