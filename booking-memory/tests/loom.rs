//! loom models of the memory store's lock protocol.
//!
//! Run with
//!
//! ```text
//! RUSTFLAGS="--cfg booking_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p booking-memory --release --test loom
//! ```
//!
//! Under `cfg(booking_loom)` every lock and `Arc` inside `MemoryStore` is loom's (through
//! `src/sync.rs`), so loom explores every interleaving of the critical sections below (up
//! to the preemption bound). The store's futures never suspend (no lock is held across an
//! `.await` because there is none), so each is driven by polling it once.

#![cfg(booking_loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use booking_core::conflict::find_overlap;
use booking_core::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope, StoredResponse,
};
use booking_core::store::{BookingStore, IdempotencyStore, OutboxStore};
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Error, EventKind, Inserted, Money,
    ProfessionalId, TimeRange, Transition,
};
use booking_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use loom::sync::Arc;
use loom::thread;

/// Polls `f` once; the store's futures are always ready at the first poll.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStore future suspended"),
    }
}

/// Runs `model` under loom with the given preemption bound, prints how many interleavings
/// were explored and fails unless there was more than one (a model whose threads never
/// interleave proves nothing). The count is a std atomic, outside loom's model.
fn check(name: &str, preemptions: usize, model: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    let explored = runs.load(Ordering::Relaxed);
    eprintln!("{name}: {explored} interleavings explored (preemption bound {preemptions})");
    assert!(
        explored > 1,
        "{name}: loom ran the model {explored} time(s); it explored no interleaving"
    );
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant")
}

fn range(a: i64, b: i64) -> TimeRange {
    TimeRange::new(t0() + Duration::minutes(a), t0() + Duration::minutes(b)).expect("range")
}

fn booking(pro: ProfessionalId, r: TimeRange, hold_until: Option<i64>) -> Booking {
    Booking {
        id: BookingId::new_at(t0()),
        professional_id: pro,
        client_id: ClientId::from_uuid(uuid_of(1)),
        range: r,
        blocked: r,
        status: if hold_until.is_some() {
            BookingStatus::PendingPayment
        } else {
            BookingStatus::Confirmed
        },
        price: Money {
            amount_cents: 100,
            currency: Currency::parse("usd").expect("currency"),
        },
        hold_expires_at: hold_until.map(|m| t0() + Duration::minutes(m)),
        request_ref: None,
        payment: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn uuid_of(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn pro() -> ProfessionalId {
    ProfessionalId::from_uuid(uuid_of(7))
}

/// Model 1: three threads book overlapping ranges of one professional; exactly one wins.
#[test]
fn loom_overlapping_inserts_one_winner() {
    check("overlapping_inserts_one_winner", 3, || {
        let store = Arc::new(MemoryStore::new());
        let requests = [range(0, 60), range(30, 90), range(45, 75)];
        let handles: Vec<_> = requests
            .into_iter()
            .map(|r| {
                let store = Arc::clone(&store);
                let b = booking(pro(), r, None);
                thread::spawn(move || block_on(store.insert_booking(&b, t0())))
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let won = results
            .iter()
            .filter(|r| matches!(r, Ok(Inserted::Created(_))))
            .count();
        let lost = results
            .iter()
            .filter(|r| matches!(r, Err(Error::SlotUnavailable)))
            .count();
        assert_eq!((won, lost), (1, 2), "{results:?}");
        assert_eq!(store.shard_stats(pro()), (1, 1));
        store.check_invariants().expect("invariants");
        let events = block_on(store.events_after(None, 10)).expect("outbox");
        assert_eq!(events.len(), 1);
    });
}

/// Model 2: concurrent `begin`s with one idempotency key; exactly one starts.
#[test]
fn loom_one_idempotency_key_one_start() {
    check("one_idempotency_key_one_start", 3, || {
        let store = Arc::new(MemoryStore::new());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let scope = Scope::new("client:1");
                    let key = IdempotencyKey::parse("k-1").expect("key");
                    let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
                    block_on(store.begin(&scope, &key, fp, t0(), &IdempotencyPolicy::default()))
                        .expect("begin")
                })
            })
            .collect();
        let decisions: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let started = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Started { .. }))
            .count();
        let in_flight = decisions
            .iter()
            .filter(|d| matches!(d, Decision::InFlight { .. }))
            .count();
        assert_eq!((started, in_flight), (1, 2), "{decisions:?}");
        store.check_invariants().expect("invariants");
    });
}

/// Model 3: a reschedule races a new booking into its target slot; exactly one gets it,
/// and a losing reschedule leaves the booking where it was.
#[test]
fn loom_reschedule_races_new_booking() {
    check("reschedule_races_new_booking", 5, || {
        let store = Arc::new(MemoryStore::new());
        let original = booking(pro(), range(0, 60), None);
        block_on(store.insert_booking(&original, t0())).expect("seed");
        let id = original.id;
        let mover = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                block_on(store.reschedule_booking(id, range(120, 180), range(120, 180), t0()))
            })
        };
        let rival = booking(pro(), range(150, 210), None);
        let rival_id = rival.id;
        let inserter = {
            let store = Arc::clone(&store);
            thread::spawn(move || block_on(store.insert_booking(&rival, t0())))
        };
        let moved = mover.join().expect("mover");
        let inserted = inserter.join().expect("inserter");
        let after = block_on(store.get_booking(id))
            .expect("get")
            .expect("still there");
        let rival_now = block_on(store.get_booking(rival_id)).expect("get");
        match (&moved, &inserted) {
            (Ok(b), Err(Error::SlotUnavailable)) => {
                assert_eq!(b.range, range(120, 180));
                assert_eq!(after.range, range(120, 180));
                assert_eq!(rival_now, None);
            }
            (Err(Error::SlotUnavailable), Ok(Inserted::Created(_))) => {
                assert_eq!(after, original, "a losing reschedule changes nothing");
                assert!(rival_now.is_some());
            }
            other => panic!("expected exactly one winner, got {other:?}"),
        }
        let all: Vec<Booking> = [Some(after), rival_now].into_iter().flatten().collect();
        assert_eq!(find_overlap(&all, t0()), None);
        store.check_invariants().expect("invariants");
        // Exactly one event besides the seed's creation.
        assert_eq!(
            block_on(store.events_after(None, 10))
                .expect("outbox")
                .len(),
            2
        );
    });
}

/// Model 4: the sweep races a late payment confirming the same ran-out hold. Either order
/// is fine, but the hold is expired at most once and the structures stay in step.
#[test]
fn loom_sweep_races_confirm_of_a_ran_out_hold() {
    check("sweep_races_confirm_of_a_ran_out_hold", 5, || {
        let store = Arc::new(MemoryStore::new());
        let hold = booking(pro(), range(0, 60), Some(15));
        block_on(store.insert_booking(&hold, t0())).expect("seed");
        let late = t0() + Duration::minutes(20);
        let id = hold.id;
        let sweeper = {
            let store = Arc::clone(&store);
            thread::spawn(move || block_on(store.expire_due_holds(late, 10)).expect("sweep"))
        };
        let payer = {
            let store = Arc::clone(&store);
            thread::spawn(move || block_on(store.transition_booking(id, Transition::Confirm, late)))
        };
        let swept = sweeper.join().expect("sweeper");
        let confirmed = payer
            .join()
            .expect("payer")
            .expect("slot is free either way");
        assert_eq!(confirmed.status, BookingStatus::Confirmed);
        assert!(swept.len() <= 1);
        let kinds: Vec<EventKind> = block_on(store.events_after(None, 10))
            .expect("outbox")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        let expected_expired = usize::from(!swept.is_empty());
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == EventKind::BookingExpired)
                .count(),
            expected_expired
        );
        assert_eq!(store.shard_stats(pro()), (1, 1));
        store.check_invariants().expect("invariants");
    });
}

/// Model 5: the first attempt of a request stalled past its lease; two retries race to take
/// over while the stalled attempt wakes up and stores its answer. If the late answer lands
/// before a takeover it is the answer (both retries replay it); otherwise it is refused and
/// exactly one retry takes over, with the request's first_seen, while the other waits
/// (`InFlight`) or replays that retry's answer.
#[test]
fn loom_retries_of_one_idempotent_request() {
    check("retries_of_one_idempotent_request", 3, || {
        let store = Arc::new(MemoryStore::new());
        let policy = IdempotencyPolicy::default();
        let scope = Scope::new("client:1");
        let key = IdempotencyKey::parse("k-1").expect("key");
        let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
        let Decision::Started {
            lease: stalled,
            first_seen,
        } = block_on(store.begin(&scope, &key, fp, t0(), &policy)).expect("begin")
        else {
            panic!("the first attempt starts");
        };
        let later = t0() + policy.lease;
        let answer = StoredResponse {
            status: 201,
            headers: Vec::new(),
            body: b"retried".to_vec(),
        };
        let retries: Vec<_> = (0..2)
            .map(|_| {
                let (store, scope, key, answer) = (
                    Arc::clone(&store),
                    scope.clone(),
                    key.clone(),
                    answer.clone(),
                );
                thread::spawn(move || {
                    let d = block_on(store.begin(&scope, &key, fp, later, &policy)).expect("begin");
                    if let Decision::Started { lease, .. } = d {
                        let stored = block_on(store.complete(&scope, &key, lease, &answer))
                            .expect("complete");
                        assert!(stored, "the lease that took over stores its answer");
                    }
                    d
                })
            })
            .collect();
        let late = {
            let (store, scope, key) = (Arc::clone(&store), scope.clone(), key.clone());
            thread::spawn(move || {
                let late_answer = StoredResponse {
                    status: 201,
                    headers: Vec::new(),
                    body: b"late".to_vec(),
                };
                block_on(store.complete(&scope, &key, stalled, &late_answer)).expect("complete")
            })
        };
        let decisions: Vec<Decision> = retries
            .into_iter()
            .map(|h| h.join().expect("retry"))
            .collect();
        let late_stored = late.join().expect("late");
        let started: Vec<_> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Started { first_seen, .. } => Some(*first_seen),
                _ => None,
            })
            .collect();
        let answer = if late_stored {
            assert!(started.is_empty(), "nobody takes over an answered request");
            StoredResponse {
                status: 201,
                headers: Vec::new(),
                body: b"late".to_vec(),
            }
        } else {
            assert_eq!(started, vec![first_seen], "{decisions:?}");
            answer
        };
        assert!(
            decisions.iter().all(|d| match d {
                Decision::Started { .. } | Decision::InFlight { .. } => !late_stored,
                Decision::Replay { response, .. } => *response == answer,
                Decision::Mismatch => false,
            }),
            "{decisions:?}"
        );
        let after = block_on(store.begin(&scope, &key, fp, later, &policy)).expect("begin");
        assert_eq!(
            after,
            Decision::Replay {
                response: answer,
                first_seen
            }
        );
        store.check_invariants().expect("invariants");
    });
}
