//! Races: every racer is built first and all are released together (see [`racing`]);
//! exactly one wins, nothing overlaps, and the attempts really overlapped in time.
//!
//! [`racing`]: super::racing

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, new_client, range, unique};
use super::directory::subject_client;
use super::racing::{Racer, keep_racing, race, racer};
use super::support::*;
use crate::auth::{Actor, TokenHash};
use crate::conflict::find_overlap;
use crate::domain::{Booking, BookingStatus, TimeRange};
use crate::error::Error;
use crate::idempotency::{Decision, Scope};
use crate::store::{Registered, Store};

pub(super) const RACERS: usize = 64;

/// Racers for one slot, released together: exactly one wins.
pub async fn race_many_tasks_one_slot_one_winner<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("one slot", 1, || {
        race_many_tasks_one_slot_one_winner_round(Arc::clone(&store))
    })
    .await;
}

async fn race_many_tasks_one_slot_one_winner_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    let fx = Arc::new(Fixture::new(store).await);
    let mut racers: Vec<Racer<_>> = Vec::new();
    for _ in 0..RACERS {
        let client = new_client(&fx.engine).await;
        let fx = Arc::clone(&fx);
        racers.push(racer(async move {
            fx.book_for(&fx.pro, &client, range(60, 120)).await
        }));
    }
    let raced = race(racers).await;
    let mut wins = 0;
    for r in raced.results {
        match r {
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
    raced.overlapped
}

/// Racers for overlapping ranges, released together: no two active bookings overlap.
pub async fn race_overlapping_requests_never_overlap<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("overlapping ranges", 1, || {
        race_overlapping_requests_never_overlap_round(Arc::clone(&store))
    })
    .await;
}

async fn race_overlapping_requests_never_overlap_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    let fx = Arc::new(Fixture::with_holds(store).await);
    let mut racers: Vec<Racer<_>> = Vec::new();
    for i in 0..RACERS as i64 {
        let fx = Arc::clone(&fx);
        // Lengths 15..75 at starts spread over 4 hours: lots of partial overlaps.
        let start = 5 * ((i * 37) % 48);
        let wanted = range(start, start + 5 * (3 + (i * 13) % 12));
        racers.push(racer(async move {
            let r = fx.book_for(&fx.pro, &fx.client, wanted).await;
            // Each winner then cancels, confirms or keeps its own hold.
            let then = match (&r, i % 3) {
                (Ok(b), 0) => Some(fx.engine.cancel_booking(Actor::Admin, b.id).await),
                (Ok(b), 1) => Some(fx.engine.confirm_booking(b.id).await),
                _ => None,
            };
            (i, wanted, r, then)
        }));
    }
    let raced = race(racers).await;
    let all = all_bookings(&fx, Actor::Professional(fx.pro.id)).await;
    let mut wins = 0;
    for (i, wanted, r, then) in raced.results {
        match r {
            Ok(b) => {
                wins += 1;
                let want = match i % 3 {
                    0 => BookingStatus::Cancelled,
                    1 => BookingStatus::Confirmed,
                    _ => BookingStatus::PendingPayment,
                };
                if let Some(then) = then {
                    assert_eq!(then.map(|x| x.status), Ok(want), "racer {i}");
                }
                let stored = all.iter().find(|x| x.id == b.id).expect("a win is stored");
                assert_eq!(stored.status, want, "racer {i}");
            }
            // A refusal names a booking that really held part of the range: it is still
            // stored (perhaps cancelled since).
            Err(Error::SlotUnavailable) => assert!(
                all.iter().any(|x| x.range.overlaps(&wanted)),
                "racer {i} was refused {wanted:?} although nothing overlapped it"
            ),
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    assert_eq!(all.len(), wins, "every win is stored, nothing else");
    assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
    raced.overlapped
}

/// `IdempotencyStore::begin` raced on one key: exactly one starts.
pub async fn race_one_idempotency_key_one_start<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("one key", 1, || {
        race_one_idempotency_key_one_start_round(Arc::clone(&store))
    })
    .await;
}

async fn race_one_idempotency_key_one_start_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    let fx = Arc::new(Fixture::new(store).await);
    let scope = Scope::new(unique("client"));
    let racers: Vec<Racer<_>> = (0..RACERS)
        .map(|_| {
            let fx = Arc::clone(&fx);
            let scope = scope.clone();
            racer(async move {
                fx.engine
                    .begin_request(&scope, &key("same"), fp("{}"))
                    .await
                    .expect("begin")
            })
        })
        .collect();
    let raced = race(racers).await;
    let mut started = 0;
    for d in raced.results {
        match d {
            Decision::Started { .. } => started += 1,
            Decision::InFlight { .. } => {}
            other => panic!("unexpected decision {other:?}"),
        }
    }
    assert_eq!(started, 1);
    raced.overlapped
}

/// Retries of one request raced after its first attempt crashed: one takes over, once.
pub async fn race_retries_of_one_idempotent_request<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("retries of one request", 1, || {
        race_retries_of_one_idempotent_request_round(Arc::clone(&store))
    })
    .await;
}

/// The taker finds the first attempt's booking, and its answer is what later retries replay.
async fn race_retries_of_one_idempotent_request_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    let fx = Arc::new(Fixture::new(store).await);
    let scope = Scope::new(unique("client"));
    let body = "{\"slot\":60}";
    let request = {
        let fx = Arc::clone(&fx);
        let scope = scope.clone();
        move |first_seen| crate::engine::BookingRequest {
            client_id: fx.client.id,
            professional_id: fx.pro.id,
            range: range(60, 120),
            request_ref: Some(crate::idempotency::request_ref(
                &scope,
                &key("retried"),
                &fp(body),
                first_seen,
            )),
        }
    };
    // The first attempt books, then crashes before storing its answer.
    let Decision::Started { first_seen, .. } = fx
        .engine
        .begin_request(&scope, &key("retried"), fp(body))
        .await
        .expect("begin")
    else {
        panic!("the first attempt starts");
    };
    let first = fx
        .engine
        .create_booking(&request(first_seen))
        .await
        .expect("first attempt books")
        .booking()
        .clone();
    fx.clock.advance(fx.engine.config().idempotency.lease);
    let racers: Vec<Racer<_>> = (0..RACERS)
        .map(|_| {
            let (fx, scope, request) = (Arc::clone(&fx), scope.clone(), request.clone());
            racer(async move {
                let d = fx
                    .engine
                    .begin_request(&scope, &key("retried"), fp(body))
                    .await
                    .expect("begin");
                let Decision::Started { lease, first_seen } = d else {
                    return (d, None);
                };
                let found = fx
                    .engine
                    .create_booking(&request(first_seen))
                    .await
                    .expect("the retry finds its booking");
                let answer = response(201, &found.booking().id.to_string());
                let stored = fx
                    .engine
                    .complete_request(&scope, &key("retried"), lease, &answer)
                    .await
                    .expect("complete");
                assert!(stored, "the lease that took over stores the answer");
                (Decision::Started { lease, first_seen }, Some(found))
            })
        })
        .collect();
    let raced = race(racers).await;
    let answer = response(201, &first.id.to_string());
    let mut took_over = 0;
    for (d, found) in raced.results {
        match d {
            Decision::Started { .. } => {
                took_over += 1;
                let found = found.expect("a started retry books");
                assert!(
                    matches!(found, crate::store::Inserted::Existing(_)),
                    "the retry must find the crashed attempt's booking: {found:?}"
                );
                assert_eq!(found.booking().id, first.id);
            }
            Decision::InFlight { .. } => {}
            Decision::Replay { response, .. } => assert_eq!(response, answer),
            Decision::Mismatch => panic!("the same request is no mismatch"),
        }
    }
    assert_eq!(took_over, 1, "exactly one retry takes over the lease");
    assert!(matches!(
        fx.engine.begin_request(&scope, &key("retried"), fp(body)).await,
        Ok(Decision::Replay { response, .. }) if response == answer
    ));
    assert_eq!(
        all_bookings(&fx, Actor::Professional(fx.pro.id))
            .await
            .len(),
        1
    );
    raced.overlapped
}

/// Racers for the slot of a hold that ran out, and the hold's late confirmation: one wins.
pub async fn race_for_the_slot_of_an_expired_hold<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("the slot of an expired hold", 1, || {
        race_for_the_slot_of_an_expired_hold_round(Arc::clone(&store))
    })
    .await;
}

async fn race_for_the_slot_of_an_expired_hold_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    let fx = Arc::new(Fixture::with_holds(store).await);
    let hold = fx.book(60, 120).await.expect("hold");
    fx.clock.advance(Duration::minutes(15));
    let mut racers: Vec<Racer<Result<_, Error>>> = Vec::new();
    for _ in 0..RACERS {
        let client = new_client(&fx.engine).await;
        let fx = Arc::clone(&fx);
        racers.push(racer(async move {
            fx.book_for(&fx.pro, &client, range(60, 120)).await
        }));
    }
    {
        let fx = Arc::clone(&fx);
        racers.push(racer(
            async move { fx.engine.confirm_booking(hold.id).await },
        ));
    }
    let raced = race(racers).await;
    let mut winners = Vec::new();
    for r in raced.results {
        match r {
            Ok(b) => winners.push(b),
            Err(Error::SlotUnavailable) => {}
            Err(other) => panic!("unexpected error in race: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one gets the slot: {winners:?}");
    let hold_now = fx.status(&hold).await;
    if winners[0].id == hold.id {
        assert_eq!(hold_now, BookingStatus::Confirmed);
    } else {
        assert_eq!(hold_now, BookingStatus::Expired);
    }
    let all = all_bookings(&fx, Actor::Professional(fx.pro.id)).await;
    let now = fx.clock.now_for_checks();
    assert_eq!(all.iter().filter(|b| b.is_active(now)).count(), 1);
    assert_eq!(find_overlap(&all, now), None);
    raced.overlapped
}

/// A cancel raced by a reschedule of the same booking: either order, never both half-done.
pub async fn race_cancel_against_reschedule<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("cancel against reschedule", 1, || {
        cancel_against_reschedule_round(Arc::clone(&store))
    })
    .await;
}

/// Pairs of one professional's bookings race, each pair on one booking.
const PAIRS: i64 = 32;

/// `[base, base + 60)` and the target `[base + 120, base + 180)` of pair `k`.
fn pair_ranges(k: i64) -> (TimeRange, TimeRange) {
    let base = k * 600;
    (range(base, base + 60), range(base + 120, base + 180))
}

async fn cancel_against_reschedule_round<S: Store + ?Sized + 'static>(store: Arc<S>) -> usize {
    let fx = Arc::new(Fixture::new(store).await);
    let client = Actor::Client(fx.client.id);
    let mut racers: Vec<Racer<Result<Booking, Error>>> = Vec::new();
    let mut booked = Vec::new();
    for k in 0..PAIRS {
        let (old, target) = pair_ranges(k);
        let a = fx.book_for(&fx.pro, &fx.client, old).await.expect("a");
        let (fx1, fx2) = (Arc::clone(&fx), Arc::clone(&fx));
        racers.push(racer(async move {
            fx1.engine.cancel_booking(client, a.id).await
        }));
        racers.push(racer(async move {
            fx2.engine.reschedule_booking(client, a.id, target).await
        }));
        booked.push(a);
    }
    let raced = race(racers).await;
    let other = new_client(&fx.engine).await;
    for ((k, a), pair) in (0..PAIRS).zip(&booked).zip(raced.results.chunks(2)) {
        let (old, target) = pair_ranges(k);
        let cancelled = pair[0]
            .clone()
            .expect("a cancel of an active booking succeeds");
        let now = fx.reload(a).await;
        assert_eq!(now.status, BookingStatus::Cancelled);
        assert_eq!(now, cancelled, "the cancel came last either way");
        let events = events_of(fx.engine.store().as_ref(), a).await;
        match &pair[1] {
            Ok(m) => {
                assert_eq!(m.range, target);
                assert_eq!(now.range, target, "the cancel saw the move");
                assert_eq!(
                    events.len(),
                    3,
                    "created, rescheduled, cancelled: {events:?}"
                );
            }
            Err(Error::InvalidState(_)) => {
                assert_eq!(now.range, old, "a refused move changes nothing");
                assert_eq!(events.len(), 2, "created, cancelled: {events:?}");
            }
            Err(other) => panic!("unexpected reschedule error: {other:?}"),
        }
        // Both ranges are free again.
        for r in [old, target] {
            fx.book_for(&fx.pro, &other, r).await.expect("free");
        }
    }
    raced.overlapped
}

/// A reschedule raced by a new booking into its target: exactly one gets the slot.
pub async fn race_reschedule_against_new_booking<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("reschedule against a new booking", 1, || {
        reschedule_against_new_booking_round(Arc::clone(&store))
    })
    .await;
}

async fn reschedule_against_new_booking_round<S: Store + ?Sized + 'static>(store: Arc<S>) -> usize {
    let fx = Arc::new(Fixture::new(store).await);
    let other = new_client(&fx.engine).await;
    let mut racers: Vec<Racer<Result<Booking, Error>>> = Vec::new();
    let mut booked = Vec::new();
    for k in 0..PAIRS {
        let (old, target) = pair_ranges(k);
        let a = fx.book_for(&fx.pro, &fx.client, old).await.expect("a");
        let (fx1, fx2, other) = (Arc::clone(&fx), Arc::clone(&fx), other.clone());
        racers.push(racer(async move {
            fx1.engine
                .reschedule_booking(Actor::Client(fx1.client.id), a.id, target)
                .await
        }));
        racers.push(racer(async move {
            fx2.book_for(&fx2.pro, &other, target).await
        }));
        booked.push(a);
    }
    let raced = race(racers).await;
    for ((k, a), pair) in (0..PAIRS).zip(&booked).zip(raced.results.chunks(2)) {
        let (old, target) = pair_ranges(k);
        let (m, b) = (&pair[0], &pair[1]);
        assert!(
            m.is_ok() != b.is_ok(),
            "exactly one gets the slot: reschedule {m:?}, booking {b:?}"
        );
        let a_now = fx.reload(a).await;
        if m.is_ok() {
            assert_eq!(a_now.range, target);
        } else {
            assert!(is_unavailable(m));
            assert_eq!(
                a_now.range, old,
                "a lost race leaves the booking where it was"
            );
        }
    }
    let all = all_bookings(&fx, Actor::Professional(fx.pro.id)).await;
    let new_won = raced.results.chunks(2).filter(|p| p[1].is_ok()).count();
    assert_eq!(
        all.len(),
        PAIRS as usize + new_won,
        "the moved and the new bookings"
    );
    assert_eq!(find_overlap(&all, fx.clock.now_for_checks()), None);
    raced.overlapped
}

/// `DirectoryStore::insert_client` raced with one `request_ref`: exactly one client.
pub async fn race_one_request_ref_one_subject<S: Store + ?Sized + 'static>(store: Arc<S>) {
    keep_racing("one request_ref", 1, || {
        race_one_request_ref_one_subject_round(Arc::clone(&store))
    })
    .await;
}

async fn race_one_request_ref_one_subject_round<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) -> usize {
    // Every other attempt returns that client as `Registered::Existing`.
    let fx = Arc::new(Fixture::new(store).await);
    let request_ref = unique("request");
    let racers: Vec<Racer<_>> = (0..RACERS)
        .map(|_| {
            let (fx, request_ref) = (Arc::clone(&fx), request_ref.clone());
            let token = TokenHash::of(&unique("tok"));
            racer(async move {
                fx.engine
                    .register_client(&subject_client(), token, Some(&request_ref))
                    .await
                    .expect("register")
            })
        })
        .collect();
    let raced = race(racers).await;
    let mut created = Vec::new();
    let mut ids = HashSet::new();
    for r in raced.results {
        ids.insert(r.get().id);
        if let Registered::Created(c) = r {
            created.push(c);
        }
    }
    assert_eq!(created.len(), 1, "exactly one attempt creates");
    assert_eq!(ids.len(), 1, "every attempt answers with that client");
    raced.overlapped
}
