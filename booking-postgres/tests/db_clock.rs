//! [`PgClock::Database`]: hold expiry is decided on the database's clock, whatever the
//! callers' clocks say, so two servers with skewed clocks agree.
//!
//! Every store here is told a wildly wrong `now` (years off, ahead or behind). Each test
//! runs on a fresh database (see `booking_postgres::test_support`); without a reachable
//! server they print `SKIPPED` and return, unless `BOOKING_REQUIRE_POSTGRES=1`.

mod common;

use std::time::Duration as StdDuration;

use booking_core::Error;
use booking_core::Schedule;
use booking_core::auth::TokenHash;
use booking_core::domain::{
    Booking, BookingId, BookingStatus, ClientId, Currency, GeoPoint, Money, NewProfessional,
    ProfessionalId, TimeRange, Transition,
};
use booking_core::events::EventKind;
use booking_core::payment::Payment;
use booking_core::store::{
    BookingOwner, BookingQuery, BookingStore, DirectoryStore, Inserted, OutboxStore, PaymentStore,
    RequestStore, ScheduleStore,
};
use booking_postgres::{PgClock, PgStore};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A caller clock years ahead of the database's.
fn ahead() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0)
        .single()
        .expect("valid instant")
}

/// A caller clock years behind the database's.
fn behind() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("valid instant")
}

/// The booked slot: minutes after a fixed instant (the slot's own time does not matter).
fn slot(start: i64, end: i64) -> TimeRange {
    let base = Utc
        .with_ymd_and_hms(2031, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant");
    TimeRange::new(
        base + Duration::minutes(start),
        base + Duration::minutes(end),
    )
    .expect("valid range")
}

/// A hold of `range` as the engine builds it on a caller clock reading `now`: created at
/// `now`, running out `ttl` later.
fn hold(pro: ProfessionalId, range: TimeRange, now: DateTime<Utc>, ttl: Duration) -> Booking {
    Booking {
        id: BookingId::new_at(now),
        professional_id: pro,
        client_id: ClientId::new_at(now),
        range,
        blocked: range,
        status: BookingStatus::PendingPayment,
        price: Money::new(1_000, Currency::parse("eur").expect("currency")).expect("money"),
        hold_expires_at: Some(now + ttl),
        request_ref: None,
        payment: None,
        created_at: now,
        updated_at: now,
    }
}

/// A store on a fresh database, on the database's clock.
async fn db_clock_store() -> Option<PgStore> {
    let store = common::store().await?.with_clock(PgClock::Database);
    assert_eq!(store.clock(), PgClock::Database);
    Some(store)
}

/// A second "server" on the same database (its own pool, its own wrong clock).
async fn second_instance(store: &PgStore) -> PgStore {
    let options = store.pool().connect_options().as_ref().clone();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("second pool");
    PgStore::from_pool(pool)
}

/// A professional with an always-open schedule (for availability snapshots).
async fn professional(store: &PgStore) -> ProfessionalId {
    let pro = NewProfessional {
        name: "Ada".into(),
        category: "massage".into(),
        location: GeoPoint {
            lat: 52.5,
            lng: 13.4,
        },
        hourly_rate_cents: 6_000,
        currency: "eur".into(),
        timezone: "Europe/Berlin".into(),
        is_active: None,
    }
    .validate(ProfessionalId::new_at(behind()), behind())
    .expect("valid professional");
    store
        .insert_professional(&pro, TokenHash::of("pro"), None)
        .await
        .expect("professional");
    store
        .put_schedule(pro.id, &Schedule::always_open(pro.timezone))
        .await
        .expect("schedule");
    pro.id
}

/// The blocked ranges of the availability snapshot around the slot.
async fn snapshot(store: &PgStore, pro: ProfessionalId, now: DateTime<Utc>) -> Vec<TimeRange> {
    store
        .availability_snapshot(pro, slot(-600, 600), now)
        .await
        .expect("snapshot")
        .expect("the professional exists")
        .blocked
}

async fn db_now(store: &PgStore) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(store.pool())
        .await
        .expect("database time")
}

fn created(inserted: Inserted) -> Booking {
    match inserted {
        Inserted::Created(b) => b,
        Inserted::Existing(b) => panic!("expected a new booking, got existing {b:?}"),
    }
}

async fn blocked(store: &PgStore, pro: ProfessionalId, now: DateTime<Utc>) -> Vec<TimeRange> {
    store
        .blocked_ranges(pro, slot(-600, 600), now)
        .await
        .expect("blocked ranges")
}

async fn listed(
    store: &PgStore,
    pro: ProfessionalId,
    status: BookingStatus,
    now: DateTime<Utc>,
) -> Vec<BookingId> {
    store
        .list_bookings(&BookingQuery {
            owner: BookingOwner::Professional(pro),
            status: Some(status),
            from: None,
            to: None,
            professional_id: None,
            limit: 100,
            after: None,
            now,
        })
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|b| b.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_hold_blocks_its_slot_whatever_the_callers_clocks_say() {
    let Some(a) = db_clock_store().await else {
        return;
    };
    let b = second_instance(&a).await;
    let pro = professional(&a).await;

    // Server A's clock is years ahead: were it trusted, the hold would be born expired.
    let before = db_now(&a).await;
    let stored = created(
        a.insert_booking(
            &hold(pro, slot(0, 60), ahead(), Duration::minutes(15)),
            ahead(),
        )
        .await
        .expect("insert"),
    );
    let after = db_now(&a).await;
    // (d) The booking is stamped with the database's time; the hold keeps its length.
    assert!(
        before <= stored.created_at && stored.created_at <= after,
        "created_at {} is not the database's time ({before}..{after})",
        stored.created_at
    );
    assert_eq!(stored.updated_at, stored.created_at);
    assert_eq!(
        stored.hold_expires_at,
        Some(stored.created_at + Duration::minutes(15))
    );
    assert_eq!(
        a.get_booking(stored.id).await.expect("get"),
        Some(stored.clone())
    );
    // The event describes the booking as stored.
    let events = a.events_after(None, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::BookingCreated);
    assert_eq!(events[0].booking, stored);
    assert_eq!(events[0].occurred_at, stored.updated_at);

    // (a) and (c): both servers, one ahead and one behind, see the hold as active.
    for (store, now) in [(&a, ahead()), (&b, behind())] {
        let overlapping = hold(pro, slot(30, 90), now, Duration::minutes(15));
        match store.insert_booking(&overlapping, now).await {
            Err(Error::SlotUnavailable) => {}
            other => panic!("an overlapping insert at {now} must be refused, got {other:?}"),
        }
        assert_eq!(blocked(store, pro, now).await, vec![slot(0, 60)]);
        assert_eq!(
            listed(store, pro, BookingStatus::PendingPayment, now).await,
            vec![stored.id]
        );
        assert!(
            listed(store, pro, BookingStatus::Expired, now)
                .await
                .is_empty()
        );
        assert!(
            store
                .expire_due_holds(now, 10)
                .await
                .expect("sweep")
                .is_empty()
        );
        assert_eq!(snapshot(store, pro, now).await, vec![slot(0, 60)]);
        // Expiring it is refused: by the database's clock it has not run out.
        match store
            .transition_booking(stored.id, Transition::Expire, now)
            .await
        {
            Err(Error::InvalidState(_)) => {}
            other => panic!("expire at {now} must be refused, got {other:?}"),
        }
        match store
            .transition_booking_from(&stored, Transition::Expire, now)
            .await
        {
            Err(Error::InvalidState(_)) => {}
            other => panic!("expire (from a read) at {now} must be refused, got {other:?}"),
        }
    }

    // Confirming through the server whose clock is behind: a plain confirm of a live hold,
    // stamped with the database's time, its event patched to match.
    let before = db_now(&b).await;
    let confirmed = b
        .transition_booking_from(&stored, Transition::Confirm, behind())
        .await
        .expect("confirm");
    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    assert!(confirmed.updated_at >= before && confirmed.updated_at <= db_now(&b).await);
    let events = b
        .events_after(Some(events[0].id), 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::BookingConfirmed);
    assert_eq!(events[0].booking, confirmed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_a_hold_when_the_database_says_it_ran_out() {
    let Some(a) = db_clock_store().await else {
        return;
    };
    let b = second_instance(&a).await;
    let pro = professional(&a).await;

    let stored = created(
        a.insert_booking(
            &hold(pro, slot(0, 60), behind(), Duration::seconds(1)),
            behind(),
        )
        .await
        .expect("insert"),
    );
    let deadline = stored.hold_expires_at.expect("a hold has a deadline");
    // Not before its deadline, even for a server whose clock is years ahead.
    assert!(
        a.expire_due_holds(ahead(), 10)
            .await
            .expect("sweep")
            .is_empty()
    );
    assert!(
        b.expire_due_holds(ahead(), 10)
            .await
            .expect("sweep")
            .is_empty()
    );

    tokio::time::sleep(StdDuration::from_millis(1_200)).await;
    assert!(db_now(&a).await > deadline);

    // Both servers agree now, even the one whose clock is years behind.
    for store in [&a, &b] {
        assert!(blocked(store, pro, behind()).await.is_empty());
        assert!(snapshot(store, pro, behind()).await.is_empty());
        assert_eq!(
            listed(store, pro, BookingStatus::Expired, behind()).await,
            vec![stored.id]
        );
        assert!(
            listed(store, pro, BookingStatus::PendingPayment, behind())
                .await
                .is_empty()
        );
    }
    let expired = b.expire_due_holds(behind(), 10).await.expect("sweep");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, stored.id);
    assert_eq!(expired[0].status, BookingStatus::Expired);
    assert!(
        expired[0].updated_at > deadline,
        "stamped with the database's time"
    );
    assert!(
        a.expire_due_holds(behind(), 10)
            .await
            .expect("sweep")
            .is_empty()
    );

    // The slot is free again for either server.
    created(
        a.insert_booking(
            &hold(pro, slot(0, 60), behind(), Duration::minutes(15)),
            behind(),
        )
        .await
        .expect("the slot is free"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_releases_a_hold_that_ran_out_by_the_database_clock_only() {
    let Some(a) = db_clock_store().await else {
        return;
    };
    let b = second_instance(&a).await;
    let pro = ProfessionalId::new_at(behind());

    let first = created(
        a.insert_booking(
            &hold(pro, slot(0, 60), ahead(), Duration::seconds(1)),
            ahead(),
        )
        .await
        .expect("insert"),
    );
    tokio::time::sleep(StdDuration::from_millis(1_200)).await;

    // Server B's clock is years behind (the hold would still run for decades by it), yet
    // its insert releases the hold that ran out on the database's clock.
    let second = created(
        b.insert_booking(
            &hold(pro, slot(30, 90), behind(), Duration::minutes(15)),
            behind(),
        )
        .await
        .expect("the hold that ran out is released"),
    );
    let released = a.get_booking(first.id).await.expect("get").expect("kept");
    assert_eq!(released.status, BookingStatus::Expired);
    assert!(second.created_at >= released.hold_expires_at.expect("deadline kept"));

    // A confirm of the released hold needs its slot, which is taken now.
    match a
        .transition_booking(first.id, Transition::Confirm, ahead())
        .await
    {
        Err(Error::SlotUnavailable) => {}
        other => panic!("the slot is taken, got {other:?}"),
    }
    // Rescheduling the live hold through the server whose clock is ahead works: by the
    // database's clock the hold is active.
    let moved = a
        .reschedule_booking(second.id, slot(120, 180), slot(120, 180), ahead())
        .await
        .expect("reschedule");
    assert_eq!(moved.range, slot(120, 180));
    assert!(moved.updated_at < ahead() && moved.updated_at > behind());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_obligations_use_the_database_clock() {
    let Some(a) = db_clock_store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(behind());
    let stored = created(
        a.insert_booking(
            &hold(pro, slot(0, 60), behind(), Duration::seconds(1)),
            behind(),
        )
        .await
        .expect("insert"),
    );
    let payment = Payment {
        provider: "stripe".into(),
        intent_id: "pi_db_clock".into(),
        client_secret: None,
        amount_refunded_cents: 0,
        refund_owed: false,
        refund_id: None,
        intent_closed: false,
    };
    let (attached, _) = a
        .attach_payment(stored.id, &payment, None, behind())
        .await
        .expect("attach");
    assert!(
        attached.updated_at >= stored.updated_at,
        "the database's time"
    );
    // A live hold owes nothing, even for a caller whose clock is years ahead.
    assert!(
        a.payment_obligations(ahead(), 10)
            .await
            .expect("obligations")
            .is_empty()
    );
    tokio::time::sleep(StdDuration::from_millis(1_200)).await;
    // Ran out by the database's clock: its intent must be cancelled, even for a caller
    // whose clock is years behind.
    let owed = a
        .payment_obligations(behind(), 10)
        .await
        .expect("obligations");
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].id, stored.id);
}
