//! Unit tests of the memory-specific structure: shard routing, the outbox order, the
//! due-hold queue and the per-client index. Behaviour shared with other adapters is
//! checked by the conformance suite in `tests/conformance.rs`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use booking_core::conflict::find_overlap;
use booking_core::events::EventKind;
use booking_core::store::{BookingOwner, BookingQuery, BookingStore, OutboxStore};
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Error, Inserted, Money, ProfessionalId,
    TimeRange, Transition,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::MemoryStore;

/// The store's futures never suspend, so one poll finishes them.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStore future suspended"),
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant")
}

fn at(min: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(min)
}

fn range(a: i64, b: i64) -> TimeRange {
    TimeRange::new(at(a), at(b)).expect("test step")
}

fn booking(
    pro: ProfessionalId,
    client: ClientId,
    r: TimeRange,
    hold_until: Option<i64>,
) -> Booking {
    Booking {
        id: BookingId::new_at(t0()),
        professional_id: pro,
        client_id: client,
        range: r,
        blocked: r,
        status: if hold_until.is_some() {
            BookingStatus::PendingPayment
        } else {
            BookingStatus::Confirmed
        },
        price: Money {
            amount_cents: 100,
            currency: Currency::parse("usd").expect("test step"),
        },
        hold_expires_at: hold_until.map(at),
        request_ref: None,
        payment: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn ids() -> (ProfessionalId, ProfessionalId, ClientId) {
    (
        ProfessionalId::new_at(t0()),
        ProfessionalId::new_at(t0()),
        ClientId::new_at(t0()),
    )
}

fn query(owner: BookingOwner, limit: u32) -> BookingQuery {
    BookingQuery {
        owner,
        status: None,
        from: None,
        to: None,
        professional_id: None,
        limit,
        after: None,
        now: t0(),
    }
}

fn all_pages(store: &MemoryStore, mut q: BookingQuery) -> Vec<Booking> {
    let mut out = Vec::new();
    loop {
        let page = block_on(store.list_bookings(&q)).expect("test step");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.after = Some(c),
            None => return out,
        }
    }
}

#[test]
fn bookings_are_routed_to_their_professionals_shard() {
    let store = MemoryStore::new();
    let (p1, p2, c) = ids();
    let a = booking(p1, c, range(0, 60), None);
    let b = booking(p2, c, range(0, 60), None);
    // Same range, different professionals: no conflict, separate shards.
    assert!(matches!(
        block_on(store.insert_booking(&a, t0())),
        Ok(Inserted::Created(_))
    ));
    assert!(matches!(
        block_on(store.insert_booking(&b, t0())),
        Ok(Inserted::Created(_))
    ));
    assert_eq!(store.route(a.id), Some(p1));
    assert_eq!(store.route(b.id), Some(p2));
    assert_eq!(store.shard_stats(p1), (1, 1));
    assert_eq!(store.shard_stats(p2), (1, 1));
    assert_eq!(store.shard_stats(ProfessionalId::new_at(t0())), (0, 0));
    // Routed transitions reach the right shard only.
    block_on(store.transition_booking(b.id, Transition::Cancel, t0())).expect("test step");
    assert_eq!(store.shard_stats(p1), (1, 1));
    assert_eq!(store.shard_stats(p2), (1, 0));
    assert_eq!(
        block_on(store.transition_booking(BookingId::new_at(t0()), Transition::Cancel, t0())),
        Err(Error::NotFound(booking_core::Entity::Booking))
    );
    store.check_invariants().expect("test step");
}

#[test]
fn a_reused_booking_id_is_refused_without_side_effects() {
    let store = MemoryStore::new();
    let (p1, p2, c) = ids();
    let a = booking(p1, c, range(0, 60), None);
    block_on(store.insert_booking(&a, t0())).expect("test step");
    let mut twin = booking(p2, c, range(0, 60), None);
    twin.id = a.id;
    assert_eq!(
        block_on(store.insert_booking(&twin, t0())),
        Err(Error::AlreadyExists(booking_core::Entity::Booking))
    );
    assert_eq!(store.shard_stats(p2), (0, 0));
    assert_eq!(
        block_on(store.events_after(None, 10))
            .expect("test step")
            .len(),
        1
    );
    store.check_invariants().expect("test step");
}

#[test]
fn outbox_keeps_one_global_recording_order() {
    let store = MemoryStore::new();
    let (p1, p2, c) = ids();
    let mut expected = Vec::new();
    for i in 0..10 {
        let pro = if i % 2 == 0 { p1 } else { p2 };
        let b = booking(pro, c, range(i * 60, i * 60 + 30), None);
        block_on(store.insert_booking(&b, t0())).expect("test step");
        expected.push((b.id, EventKind::BookingCreated));
        if i % 3 == 0 {
            block_on(store.transition_booking(b.id, Transition::Cancel, at(1))).expect("test step");
            expected.push((b.id, EventKind::BookingCancelled));
        }
    }
    let all = block_on(store.events_after(None, 1000)).expect("test step");
    let got: Vec<_> = all.iter().map(|e| (e.booking_id, e.kind)).collect();
    assert_eq!(got, expected);
    // Any cursor continues exactly after itself.
    for (i, e) in all.iter().enumerate() {
        let rest = block_on(store.events_after(Some(e.id), 3)).expect("test step");
        let want: Vec<_> = all[i + 1..].iter().take(3).map(|e| e.id).collect();
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), want);
    }
    assert!(
        block_on(store.events_after(None, 0))
            .expect("test step")
            .is_empty()
    );
    assert!(matches!(
        block_on(store.events_after(Some(booking_core::EventId::new_at(t0())), 5)),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn due_queue_tracks_exactly_the_stored_holds() {
    let store = MemoryStore::new();
    let (p1, p2, c) = ids();
    let h1 = booking(p1, c, range(0, 60), Some(15));
    let h2 = booking(p1, c, range(60, 120), Some(30));
    let h3 = booking(p2, c, range(0, 60), Some(45));
    for h in [&h1, &h2, &h3] {
        block_on(store.insert_booking(h, t0())).expect("test step");
    }
    assert_eq!(store.due_len(), 3);
    // Confirming a hold takes it off the queue.
    block_on(store.transition_booking(h2.id, Transition::Confirm, at(1))).expect("test step");
    assert_eq!(store.due_len(), 2);
    store.check_invariants().expect("test step");
    // A sweep at 20 min expires only h1; a limit of 0 expires nothing.
    assert!(
        block_on(store.expire_due_holds(at(60), 0))
            .expect("test step")
            .is_empty()
    );
    let swept = block_on(store.expire_due_holds(at(20), 10)).expect("test step");
    assert_eq!(swept.iter().map(|b| b.id).collect::<Vec<_>>(), vec![h1.id]);
    assert_eq!(swept[0].status, BookingStatus::Expired);
    assert_eq!(store.due_len(), 1);
    assert_eq!(store.shard_stats(p1), (2, 1));
    // An insert over a hold that ran out expires it in the same step.
    let over = booking(p2, c, range(30, 90), None);
    block_on(store.insert_booking(&over, at(50))).expect("test step");
    assert_eq!(store.due_len(), 0);
    let kinds: Vec<_> = block_on(store.events_after(None, 100))
        .expect("test step")
        .into_iter()
        .filter(|e| e.booking_id == h3.id)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![EventKind::BookingCreated, EventKind::BookingExpired]
    );
    // The sweep finds nothing more.
    assert!(
        block_on(store.expire_due_holds(at(1000), 10))
            .expect("test step")
            .is_empty()
    );
    store.check_invariants().expect("test step");
}

#[test]
fn a_refused_insert_expires_nothing() {
    let store = MemoryStore::new();
    let (p1, _, c) = ids();
    let hold = booking(p1, c, range(0, 60), Some(15));
    let firm = booking(p1, c, range(60, 120), None);
    block_on(store.insert_booking(&hold, t0())).expect("test step");
    block_on(store.insert_booking(&firm, t0())).expect("test step");
    // Overlaps the ran-out hold and the confirmed booking: refused, and the hold stays.
    let wide = booking(p1, c, range(30, 90), None);
    assert_eq!(
        block_on(store.insert_booking(&wide, at(20))),
        Err(Error::SlotUnavailable)
    );
    assert_eq!(store.due_len(), 1);
    assert_eq!(
        block_on(store.events_after(None, 100))
            .expect("test step")
            .len(),
        2
    );
    store.check_invariants().expect("test step");
}

#[test]
fn client_index_follows_reschedules_and_pages_across_shards() {
    let store = MemoryStore::new();
    let (p1, p2, c) = ids();
    let other = ClientId::new_at(t0());
    let mut mine = Vec::new();
    for i in 0..7 {
        let pro = if i % 2 == 0 { p1 } else { p2 };
        let b = booking(pro, c, range(i * 60, i * 60 + 30), None);
        block_on(store.insert_booking(&b, t0())).expect("test step");
        mine.push(b.id);
        let noise = booking(pro, other, range(i * 60 + 30, i * 60 + 60), None);
        block_on(store.insert_booking(&noise, t0())).expect("test step");
    }
    // Move the first booking to the end.
    block_on(store.reschedule_booking(mine[0], range(1000, 1030), range(1000, 1030), t0()))
        .expect("test step");
    mine.rotate_left(1);
    store.check_invariants().expect("test step");
    let listed = all_pages(&store, query(BookingOwner::Client(c), 2));
    assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), mine);
    // Admin sees everything, merged across shards in (start, id) order.
    let everything = all_pages(&store, query(BookingOwner::All, 3));
    assert_eq!(everything.len(), 14);
    assert!(
        everything
            .windows(2)
            .all(|w| crate::shard::list_key(&w[0]) < crate::shard::list_key(&w[1]))
    );
    // A professional sees only their own; a filter for another professional is empty.
    let p1s = all_pages(&store, query(BookingOwner::Professional(p1), 100));
    assert!(p1s.iter().all(|b| b.professional_id == p1));
    assert_eq!(p1s.len(), 8);
    let mut cross = query(BookingOwner::Professional(p1), 100);
    cross.professional_id = Some(p2);
    assert!(all_pages(&store, cross).is_empty());
    // Time filters bound the scan.
    let mut window = query(BookingOwner::Client(c), 100);
    window.from = Some(at(60));
    window.to = Some(at(240));
    let ids: Vec<_> = all_pages(&store, window).iter().map(|b| b.id).collect();
    assert_eq!(ids, mine[..3].to_vec());
}

#[test]
fn blocked_ranges_use_the_index_and_skip_ran_out_holds() {
    let store = MemoryStore::new();
    let (p1, _, c) = ids();
    let hold = booking(p1, c, range(0, 60), Some(15));
    let firm = booking(p1, c, range(60, 120), None);
    let far = booking(p1, c, range(600, 660), None);
    for b in [&hold, &firm, &far] {
        block_on(store.insert_booking(b, t0())).expect("test step");
    }
    let w = range(30, 300);
    assert_eq!(
        block_on(store.blocked_ranges(p1, w, t0())).expect("test step"),
        vec![hold.blocked, firm.blocked]
    );
    assert_eq!(
        block_on(store.blocked_ranges(p1, w, at(15))).expect("test step"),
        vec![firm.blocked]
    );
    assert!(
        block_on(store.blocked_ranges(ProfessionalId::new_at(t0()), w, t0()))
            .expect("test step")
            .is_empty()
    );
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        pro: bool,
        client: bool,
        start: i64,
        len: i64,
        hold: Option<i64>,
    },
    Transition {
        pick: usize,
        t: Transition,
    },
    Reschedule {
        pick: usize,
        start: i64,
    },
    Sweep {
        limit: usize,
    },
    Advance {
        minutes: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let transition = prop_oneof![
        Just(Transition::Confirm),
        Just(Transition::Cancel),
        Just(Transition::Expire)
    ];
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), 0i64..400, 10i64..90, proptest::option::of(1i64..60))
            .prop_map(|(pro, client, start, len, hold)| Op::Insert { pro, client, start, len, hold }),
        2 => (any::<usize>(), transition).prop_map(|(pick, t)| Op::Transition { pick, t }),
        2 => (any::<usize>(), 0i64..400).prop_map(|(pick, start)| Op::Reschedule { pick, start }),
        1 => (0usize..4).prop_map(|limit| Op::Sweep { limit }),
        1 => (1i64..30).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever happens, the internal structures stay in step, active bookings never
    /// overlap, and lists agree with a filter over every booking.
    #[test]
    fn structures_stay_in_step(ops in proptest::collection::vec(op(), 1..60)) {
        let store = MemoryStore::new();
        let (p1, p2, c1) = ids();
        let c2 = ClientId::new_at(t0());
        let mut now = t0();
        let mut known: Vec<BookingId> = Vec::new();
        for op in ops {
            match op {
                Op::Insert { pro, client, start, len, hold } => {
                    let mut b = booking(
                        if pro { p1 } else { p2 },
                        if client { c1 } else { c2 },
                        range(start, start + len),
                        None,
                    );
                    if let Some(h) = hold {
                        b.status = BookingStatus::PendingPayment;
                        b.hold_expires_at = Some(now + Duration::minutes(h));
                    }
                    if block_on(store.insert_booking(&b, now)).is_ok() {
                        known.push(b.id);
                    }
                }
                Op::Transition { pick, t } if !known.is_empty() => {
                    let _ = block_on(store.transition_booking(known[pick % known.len()], t, now));
                }
                Op::Reschedule { pick, start } if !known.is_empty() => {
                    let id = known[pick % known.len()];
                    let b = store.get_booking_now(id).expect("known booking");
                    let r = TimeRange::new(at(start), at(start) + b.range.duration()).expect("range");
                    let before = b.clone();
                    match block_on(store.reschedule_booking(id, r, r, now)) {
                        Ok(moved) => prop_assert_eq!(moved.range, r),
                        Err(_) => prop_assert_eq!(store.get_booking_now(id), Some(before)),
                    }
                }
                Op::Sweep { limit } => {
                    let swept = block_on(store.expire_due_holds(now, limit)).expect("sweep");
                    prop_assert!(swept.len() <= limit);
                }
                Op::Advance { minutes } => now += Duration::minutes(minutes),
                _ => {}
            }
            if let Err(e) = store.check_invariants() {
                prop_assert!(false, "{}", e);
            }
            let mut q = query(BookingOwner::All, 7);
            q.now = now;
            let all = all_pages(&store, q);
            prop_assert_eq!(all.len(), known.len());
            prop_assert_eq!(find_overlap(&all, now), None);
            let mut q = query(BookingOwner::Client(c1), 3);
            q.now = now;
            q.status = Some(BookingStatus::Confirmed);
            let mine: Vec<_> = all_pages(&store, q).into_iter().map(|b| b.id).collect();
            let want: Vec<_> = all
                .iter()
                .filter(|b| b.client_id == c1 && b.effective_status(now) == BookingStatus::Confirmed)
                .map(|b| b.id)
                .collect();
            prop_assert_eq!(mine, want);
        }
    }
}

/// The webhook indexes stay in step with the deliveries through the whole life of a
/// delivery (fan-out, claim, retry, failure, redelivery, delete).
#[test]
fn webhook_indexes_match_the_deliveries_after_every_check() {
    use booking_core::testing::checks;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = std::sync::Arc::new(MemoryStore::new());
        checks::webhook_retry_is_scheduled_and_failure_is_final(store.clone()).await;
        store
            .check_invariants()
            .expect("after retries and a failure");
        let store = std::sync::Arc::new(MemoryStore::new());
        checks::webhook_redeliver_keeps_the_id(store.clone()).await;
        store.check_invariants().expect("after a redelivery");
        let store = std::sync::Arc::new(MemoryStore::new());
        checks::webhook_delete_stops_new_deliveries(store.clone()).await;
        store.check_invariants().expect("after a delete");
    });
}

/// `check_invariants`, which the models and races rely on to spot corruption, reports
/// each kind of drift between the shards and the indexes beside them.
#[test]
fn check_invariants_reports_drift_between_shards_and_indexes() {
    use crate::sync::lock;

    let (p1, p2, c) = ids();
    let hold = booking(p1, c, range(0, 60), Some(30));
    let b = booking(p1, c, range(60, 120), None);
    let d = booking(p2, c, range(0, 60), None);
    let filled = || {
        let store = MemoryStore::new();
        for x in [&hold, &b, &d] {
            block_on(store.insert_booking(x, t0())).expect("test step");
        }
        store
            .check_invariants()
            .expect("consistent before the damage");
        store
    };
    let error = |store: &MemoryStore| store.check_invariants().expect_err("drift is reported");

    let store = filled();
    store.routes.write(&b.id, |m| m.remove(&b.id));
    assert!(error(&store).contains("has no route"), "{}", error(&store));

    let store = filled();
    lock(&store.due).insert((at(999), BookingId::new_at(t0()), p1));
    assert!(
        error(&store).contains("due-hold queue"),
        "{}",
        error(&store)
    );

    // The same client and professionals, one booking filed under the wrong professional.
    let store = filled();
    store.by_client.write(&c, |m| {
        let groups = m.get_mut(&c).expect("the client is indexed");
        groups
            .get_mut(&p1)
            .expect("indexed with p1")
            .retain(|id| *id != b.id);
        groups.get_mut(&p2).expect("indexed with p2").push(b.id);
    });
    assert!(
        error(&store).contains("per-client index"),
        "{}",
        error(&store)
    );

    // A client indexed with no bookings at all.
    let store = filled();
    let stranger = ClientId::new_at(t0());
    store.by_client.write(&stranger, |m| {
        m.insert(stranger, Default::default());
    });
    assert!(
        error(&store).contains("per-client index"),
        "{}",
        error(&store)
    );
}

#[test]
fn debug_shows_the_sizes_of_the_outbox_and_the_idempotency_table() {
    let store = MemoryStore::new();
    let (p1, _, c) = ids();
    block_on(store.insert_booking(&booking(p1, c, range(0, 60), None), t0())).expect("test step");
    let shown = format!("{store:?}");
    assert_eq!(
        shown,
        "MemoryStore { events: 1, idempotency_records: 0, .. }"
    );
}

/// The directory's search indexes (rate order, spatial tree, trigram lists) follow every
/// update of the fields they hold, and a token or id already taken is refused.
#[test]
fn directory_indexes_follow_updates() {
    use booking_core::store::DirectoryStore;
    use booking_core::store::Registered;
    use booking_core::{Entity, GeoPoint, NewProfessional, ProfessionalPatch, TokenHash};

    let store = MemoryStore::new();
    let new = |name: &str| {
        NewProfessional {
            name: name.into(),
            category: "massage".into(),
            location: GeoPoint::new(52.5, 13.4).expect("a valid point"),
            hourly_rate_cents: 5_000,
            currency: "eur".into(),
            timezone: "Europe/Berlin".into(),
            is_active: None,
        }
        .validate(ProfessionalId::new_at(t0()), t0())
        .expect("a valid professional")
    };
    let ada = new("Ada Lovelace");
    let stored = block_on(store.insert_professional(&ada, TokenHash::of("ada"), None));
    assert!(matches!(stored, Ok(Registered::Created(_))));
    // Another professional with Ada's token, and Ada again with a new token: refused.
    let twin = new("Ada Twin");
    assert_eq!(
        block_on(store.insert_professional(&twin, TokenHash::of("ada"), None)),
        Err(Error::AlreadyExists(Entity::Professional))
    );
    assert_eq!(
        block_on(store.insert_professional(&ada, TokenHash::of("ada-2"), None)),
        Err(Error::AlreadyExists(Entity::Professional))
    );
    store
        .check_invariants()
        .expect("consistent after the refusals");
    let patches = [
        ProfessionalPatch {
            hourly_rate_cents: Some(7_000),
            ..ProfessionalPatch::default()
        },
        ProfessionalPatch {
            location: Some(GeoPoint::new(48.1, 11.6).expect("a valid point")),
            ..ProfessionalPatch::default()
        },
        ProfessionalPatch {
            name: Some("Grace Hopper".into()),
            ..ProfessionalPatch::default()
        },
        ProfessionalPatch {
            category: Some("physiotherapy".into()),
            ..ProfessionalPatch::default()
        },
    ];
    for patch in &patches {
        block_on(store.update_professional(ada.id, patch, at(1))).expect("update");
        store
            .check_invariants()
            .unwrap_or_else(|e| panic!("after {patch:?}: {e}"));
    }
}

/// `ProShard::check` (part of `check_invariants`) reports each way a shard's index, list
/// order and request index can drift from its bookings.
#[test]
fn shard_check_reports_each_drift() {
    use crate::shard::list_key;
    use crate::sync::lock;

    let (p1, _, c) = ids();
    let mut a = booking(p1, c, range(0, 60), None);
    a.request_ref = Some("req-a".into());
    let b = booking(p1, c, range(60, 120), None);
    let filled = || {
        let store = MemoryStore::new();
        for x in [&a, &b] {
            block_on(store.insert_booking(x, t0())).expect("test step");
        }
        block_on(store.transition_booking(b.id, Transition::Cancel, t0())).expect("cancel b");
        store
            .check_invariants()
            .expect("consistent before the damage");
        store
    };
    let shard_error = |store: &MemoryStore| {
        let shard = store.shard(p1).expect("p1 has a shard");
        lock(&shard).check().expect_err("drift is reported")
    };

    // A booking whose range changed behind the index's back.
    let store = filled();
    {
        let shard = store.shard(p1).expect("p1 has a shard");
        let mut s = lock(&shard);
        let stored = s.bookings.get_mut(&a.id).expect("stored");
        stored.blocked = range(0, 30);
    }
    assert!(shard_error(&store).contains("stale index entry"));

    // The same number of indexable bookings, but the indexed one is now cancelled and the
    // cancelled one active.
    let store = filled();
    {
        let shard = store.shard(p1).expect("p1 has a shard");
        let mut s = lock(&shard);
        s.bookings.get_mut(&a.id).expect("stored").status = BookingStatus::Cancelled;
        s.bookings.get_mut(&b.id).expect("stored").status = BookingStatus::Confirmed;
    }
    assert!(shard_error(&store).contains("stale index entry"));

    // A list key replaced by another of the same count.
    let store = filled();
    {
        let shard = store.shard(p1).expect("p1 has a shard");
        let mut s = lock(&shard);
        let stored = s.bookings.get(&a.id).expect("stored").as_ref().clone();
        s.order.remove(&list_key(&stored));
        s.order.insert((0, BookingId::new_at(t0())));
    }
    assert!(shard_error(&store).contains("stored under a wrong key"));

    // A request reference pointing at another booking.
    let store = filled();
    {
        let shard = store.shard(p1).expect("p1 has a shard");
        lock(&shard).by_request.insert("req-a".into(), b.id);
    }
    assert!(shard_error(&store).contains("request ref"));
}

/// `prune_events` reports what it pruned: whole chunks of 4096 events, once every
/// consumer has marked them.
#[test]
fn prune_events_counts_the_whole_chunks_it_drops() {
    use booking_core::events::Consumer;

    let store = MemoryStore::new();
    let (p1, _, c) = ids();
    // One event per booking; 4096 + 4 bookings fill one chunk and start the next.
    for i in 0..4100 {
        let b = booking(p1, c, range(i * 10, i * 10 + 5), None);
        block_on(store.insert_booking(&b, t0())).expect("test step");
    }
    let later = t0() + Duration::days(1);
    assert_eq!(
        block_on(store.prune_events(later, &Consumer::ALL, usize::MAX)),
        Ok(0),
        "nothing marked yet"
    );
    for consumer in Consumer::ALL {
        let claim = block_on(store.claim_events(consumer, t0(), 5000, Duration::minutes(1)))
            .expect("claim");
        let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 4100);
        let marked = block_on(store.mark_events(consumer, claim.lease, &ids, t0()));
        assert_eq!(marked, Ok(4100));
    }
    assert_eq!(
        block_on(store.prune_events(later, &Consumer::ALL, usize::MAX)),
        Ok(4096)
    );
    let left = block_on(store.events_after(None, 100)).expect("read the outbox");
    assert_eq!(left.len(), 4);
}
