//! Postgres-only guarantees of payments on bookings: the migration's constraints, the
//! answer stored with an attached intent, settling under a lost lease, concurrent payments
//! for two expired holds of one slot, every read carrying the payment, and the obligation
//! sweep served by its partial index.
//!
//! Each test runs on a fresh database (see `booking_postgres::test_support`); without a
//! reachable server they print `SKIPPED` and return, unless `BOOKING_REQUIRE_POSTGRES=1`.

mod common;

use std::sync::Arc;

use booking_core::domain::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Money, ProfessionalId, TimeRange,
};
use booking_core::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope, StoredResponse,
};
use booking_core::payment::{Obligation, ObligationMet, Payment, PaymentChange, PaymentOutcome};
use booking_core::store::{
    BookingOwner, BookingQuery, BookingStore, IdempotencyStore, InboxStore, Inserted, OutboxStore,
    PaymentStore, RequestAnswer,
};
use booking_core::webhook::inbox::{Claimed, InboxKey, InboxState, NewInboxEvent};
use booking_core::{Entity, Error};
use booking_postgres::PgStore;
use booking_postgres::test_support::TestDatabase;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{Connection, Row};

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
        .single()
        .expect("valid instant")
        + Duration::minutes(minutes)
}

/// A hold of `[start, end)` minutes after t(0), made at `at`, running out at `at + 15`.
fn hold(pro: ProfessionalId, start: i64, end: i64, at: i64) -> Booking {
    let range = TimeRange::new(t(start), t(end)).expect("valid range");
    Booking {
        id: BookingId::new_at(t(at)),
        professional_id: pro,
        client_id: ClientId::new_at(t(0)),
        range,
        blocked: range,
        status: BookingStatus::PendingPayment,
        price: Money::new(1_000, Currency::parse("eur").expect("currency")).expect("money"),
        hold_expires_at: Some(t(at + 15)),
        request_ref: None,
        payment: None,
        created_at: t(at),
        updated_at: t(at),
    }
}

async fn insert(store: &PgStore, b: &Booking, now: DateTime<Utc>) -> Booking {
    match store.insert_booking(b, now).await.expect("insert") {
        Inserted::Created(b) => b,
        Inserted::Existing(b) => panic!("unexpected existing booking {b:?}"),
    }
}

/// Records a provider event and claims it at `now` for one minute.
async fn claimed_event(store: &PgStore, event_id: &str, now: DateTime<Utc>) -> Claimed {
    let key = InboxKey::new("stripe", event_id).expect("key");
    let event =
        NewInboxEvent::new(key.clone(), "payment_intent.succeeded", b"{}".to_vec()).expect("event");
    store.record(&event, now).await.expect("record");
    let mut claimed = store
        .claim_due(now, 10, Duration::minutes(1))
        .await
        .expect("claim");
    claimed.retain(|c| c.event.key == key);
    claimed.pop().expect("claimed the event")
}

/// Runs SQL; the SQLSTATE and constraint on failure.
async fn try_sql(conn: &mut sqlx::PgConnection, sql: &str) -> Result<(), (String, String)> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            sqlx::Error::Database(db) => (
                db.code().map(|c| c.into_owned()).unwrap_or_default(),
                db.constraint().unwrap_or_default().to_owned(),
            ),
            other => (other.to_string(), String::new()),
        })
}

/// A booking row of professional `pro` in its own hour `slot`, with payment columns `cols`
/// set to `values`.
fn raw_booking(pro: &str, slot: i64, cols: &str, values: &str) -> String {
    format!(
        "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
             blocked_range, status, price_cents, currency, created_at, updated_at{cols}) \
         SELECT gen_random_uuid(), '{pro}', gen_random_uuid(), s, s + interval '1 hour', \
             tstzrange(s, s + interval '1 hour', '[)'), 'confirmed', 100, 'eur', s, s{values} \
         FROM (SELECT timestamptz '2027-01-01Z' + {slot} * interval '1 hour' AS s) AS x"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_pairs_provider_and_intent_and_keeps_intents_unique_per_professional() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    let pro = "00000000-0000-7000-8000-000000000001";
    let other = "00000000-0000-7000-8000-000000000002";
    let check = |name: &str| Err(("23514".to_owned(), name.to_owned()));

    try_sql(&mut conn, &raw_booking(pro, 0, "", ""))
        .await
        .expect("a booking without payment");
    assert_eq!(
        try_sql(
            &mut conn,
            &raw_booking(pro, 1, ", payment_provider", ", 'stripe'")
        )
        .await,
        check("bookings_payment_intent_check")
    );
    assert_eq!(
        try_sql(
            &mut conn,
            &raw_booking(pro, 1, ", payment_intent_id", ", 'pi_1'")
        )
        .await,
        check("bookings_payment_intent_check")
    );
    assert_eq!(
        try_sql(
            &mut conn,
            &raw_booking(pro, 1, ", payment_refund_owed", ", true")
        )
        .await,
        check("bookings_payment_fields_check"),
        "no payment state without an intent"
    );
    let paid = ", payment_provider, payment_intent_id";
    try_sql(&mut conn, &raw_booking(pro, 1, paid, ", 'stripe', 'pi_1'"))
        .await
        .expect("a paid booking");
    assert_eq!(
        try_sql(&mut conn, &raw_booking(pro, 2, paid, ", 'stripe', 'pi_1'")).await,
        Err(("23505".to_owned(), "bookings_payment_intent_key".to_owned())),
        "one intent pays for one booking of a professional"
    );
    // The uniqueness is per professional (shardable); the adapter refuses a duplicate
    // across professionals when it is read by intent.
    try_sql(
        &mut conn,
        &raw_booking(other, 2, paid, ", 'stripe', 'pi_1'"),
    )
    .await
    .expect("another professional's row");
    drop(conn);
    let store = db.into_store(2).await;
    assert!(matches!(
        store.booking_by_intent("pi_1").await,
        Err(Error::Internal(_))
    ));
    assert_eq!(
        store.booking_by_intent("pi_none").await.expect("read"),
        None
    );

    // Through the store: an intent already attached to another booking of the same
    // professional is refused.
    let pid = ProfessionalId::from_uuid(pro.parse().expect("uuid"));
    let b = insert(&store, &hold(pid, 600, 660, 0), t(0)).await;
    let taken = Payment::new("stripe", "pi_1", "secret");
    assert!(matches!(
        store.attach_payment(b.id, &taken, None, t(1)).await,
        Err(Error::InvalidState(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_stores_the_answer_with_the_intent_in_one_step() {
    let Some(store) = common::store().await else {
        return;
    };
    let scope = Scope::new("client:x");
    let key = IdempotencyKey::parse("pay-1").expect("key");
    let fingerprint = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
    let policy = IdempotencyPolicy::default();
    let Decision::Started { lease, .. } = store
        .begin(&scope, &key, fingerprint, t(0), &policy)
        .await
        .expect("begin")
    else {
        panic!("a fresh key starts");
    };
    let pro = ProfessionalId::new_at(t(0));
    let b = insert(&store, &hold(pro, 60, 120, 0), t(0)).await;
    let payment = Payment::new("stripe", "pi_a", "pi_a_secret");
    let answer = RequestAnswer {
        scope: scope.clone(),
        key: key.clone(),
        lease,
        response: StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"paid\":true}".to_vec(),
        },
    };

    let missing = BookingId::new_at(t(0));
    assert_eq!(
        store
            .attach_payment(missing, &payment, Some(&answer), t(1))
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
    let (attached, answered) = store
        .attach_payment(b.id, &payment, Some(&answer), t(1))
        .await
        .expect("attach");
    assert!(answered, "the lease owned the record");
    assert_eq!(attached.payment.as_ref(), Some(&payment));
    assert_eq!(attached.updated_at, t(1));
    match store.begin(&scope, &key, fingerprint, t(2), &policy).await {
        Ok(Decision::Replay { response, .. }) => assert_eq!(response, answer.response),
        other => panic!("the answer is stored: {other:?}"),
    }

    // The same intent again changes nothing (the lease no longer owns the record).
    let (again, answered) = store
        .attach_payment(b.id, &payment, Some(&answer), t(3))
        .await
        .expect("same intent");
    assert_eq!((again, answered), (attached.clone(), false));
    // Another intent is refused, and stores nothing.
    let other = Payment::new("stripe", "pi_b", "pi_b_secret");
    assert!(matches!(
        store.attach_payment(b.id, &other, None, t(3)).await,
        Err(Error::InvalidState(_))
    ));
    assert_eq!(store.get_booking(b.id).await.expect("read"), Some(attached));
    // Only the hold's creation was recorded: attaching is not a status change.
    assert_eq!(store.events_after(None, 10).await.expect("events").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_under_a_lost_lease_changes_nothing() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let b = insert(&store, &hold(pro, 60, 120, 0), t(0)).await;
    let (b, _) = store
        .attach_payment(b.id, &Payment::new("stripe", "pi_a", "s"), None, t(0))
        .await
        .expect("attach");
    let first = claimed_event(&store, "evt_1", t(1)).await;
    // The first lease runs out and another worker claims the event.
    let mut second = store
        .claim_due(t(3), 10, Duration::minutes(1))
        .await
        .expect("claim again");
    let second = second.pop().expect("claimed again");
    assert_ne!(first.lease, second.lease);

    let key = &first.event.key;
    let lost = store
        .settle_payment(key, first.lease, b.id, PaymentChange::Succeeded, t(4))
        .await
        .expect("settle");
    assert_eq!(lost, None);
    assert_eq!(
        store.get_booking(b.id).await.expect("read"),
        Some(b.clone())
    );
    let event = store.inbox_event(key).await.expect("read").expect("event");
    assert_eq!(event.state, InboxState::Pending);
    assert_eq!(store.events_after(None, 10).await.expect("events").len(), 1);

    // An unknown booking: NotFound, and the event stays pending.
    assert_eq!(
        store
            .settle_payment(
                key,
                second.lease,
                BookingId::new_at(t(0)),
                PaymentChange::Succeeded,
                t(4)
            )
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
    let event = store.inbox_event(key).await.expect("read").expect("event");
    assert_eq!(event.state, InboxState::Pending);

    // The current lease settles it: confirmed and processed together.
    let settled = store
        .settle_payment(key, second.lease, b.id, PaymentChange::Succeeded, t(4))
        .await
        .expect("settle")
        .expect("owned");
    assert_eq!(settled.outcome, Some(PaymentOutcome::Confirmed));
    assert_eq!(settled.booking.status, BookingStatus::Confirmed);
    let event = store.inbox_event(key).await.expect("read").expect("event");
    assert_eq!(
        (event.state, event.processed_at),
        (InboxState::Processed, Some(t(4)))
    );
    // Once processed, the same lease settles nothing more.
    assert_eq!(
        store
            .settle_payment(key, second.lease, b.id, PaymentChange::Succeeded, t(5))
            .await
            .expect("settle"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_for_two_expired_holds_of_one_slot_confirm_at_most_one() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = Arc::new(db.into_store(8).await);
    for round in 0..8_i64 {
        let pro = ProfessionalId::new_at(t(round));
        // Hold `a` runs out at 15; `b` takes the slot at 20 (releasing `a`) and runs out at
        // 35. Both get paid at 40.
        let a = insert(&store, &hold(pro, 600, 660, 0), t(0)).await;
        let b = insert(&store, &hold(pro, 600, 660, 20), t(20)).await;
        for (booking, intent) in [(&a, "pi_a"), (&b, "pi_b")] {
            store
                .attach_payment(
                    booking.id,
                    &Payment::new("stripe", intent, "s"),
                    None,
                    t(20),
                )
                .await
                .expect("attach");
        }
        let events = [
            claimed_event(&store, &format!("evt_{round}_a"), t(40)).await,
            claimed_event(&store, &format!("evt_{round}_b"), t(40)).await,
        ];
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [a.id, b.id]
            .into_iter()
            .zip(events)
            .map(|(id, claimed)| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        // A lost race on the constraint rolls back; the worker retries.
                        match store
                            .settle_payment(
                                &claimed.event.key,
                                claimed.lease,
                                id,
                                PaymentChange::Succeeded,
                                t(40),
                            )
                            .await
                        {
                            Err(Error::SlotUnavailable) if attempts < 5 => continue,
                            other => break other,
                        }
                    }
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            let settled = task.await.expect("task").expect("settle").expect("owned");
            outcomes.push(settled.outcome);
        }
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            [
                Some(PaymentOutcome::Confirmed),
                Some(PaymentOutcome::RefundOwed)
            ],
            "round {round}"
        );
        let mut stored = Vec::new();
        for id in [a.id, b.id] {
            stored.push(store.get_booking(id).await.expect("read").expect("booking"));
        }
        let confirmed = stored
            .iter()
            .filter(|b| b.status == BookingStatus::Confirmed)
            .count();
        assert_eq!(confirmed, 1, "round {round}: {stored:?}");
        let loser = stored
            .iter()
            .find(|b| b.status != BookingStatus::Confirmed)
            .expect("a loser");
        assert_eq!(loser.status, BookingStatus::Expired);
        assert!(loser.payment.as_ref().is_some_and(|p| p.refund_owed));
        let owed = store.payment_obligations(t(41), 10).await.expect("sweep");
        assert_eq!(owed.iter().map(|b| b.id).collect::<Vec<_>>(), [loser.id]);
        assert_eq!(
            booking_core::payment::obligation(&owed[0], t(41)),
            Some(Obligation::Refund)
        );
        // Settle the refund so the next round's sweep starts empty.
        store
            .obligation_met(loser.id, &ObligationMet::Refunded("re_1".into()), t(42))
            .await
            .expect("refunded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_round_trips_through_every_read() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let payment = Payment {
        provider: "stripe".into(),
        intent_id: "pi_fast".into(),
        client_secret: Some("pi_fast_secret".into()),
        amount_refunded_cents: 250,
        refund_owed: true,
        refund_id: None,
        intent_closed: true,
    };
    // The one-statement insert path.
    let mut fast = hold(pro, 60, 120, 0);
    fast.request_ref = Some("ref-fast".into());
    fast.payment = Some(payment.clone());
    assert_eq!(insert(&store, &fast, t(0)).await, fast);
    // The transaction path: a hold that ran out overlaps the slot and is released first.
    insert(&store, &hold(pro, 200, 260, 0), t(0)).await;
    let mut slow = hold(pro, 200, 260, 20);
    slow.request_ref = Some("ref-slow".into());
    slow.payment = Some(Payment {
        intent_id: "pi_slow".into(),
        refund_owed: false,
        refund_id: Some("re_9".into()),
        ..payment.clone()
    });
    assert_eq!(insert(&store, &slow, t(20)).await, slow);

    for b in [&fast, &slow] {
        assert_eq!(
            store.get_booking(b.id).await.expect("get").as_ref(),
            Some(b)
        );
        let r = b.request_ref.as_deref().expect("request ref");
        assert_eq!(
            store
                .find_booking_by_request(pro, r)
                .await
                .expect("find")
                .as_ref(),
            Some(b)
        );
        let intent = &b.payment.as_ref().expect("payment").intent_id;
        assert_eq!(
            store
                .booking_by_intent(intent)
                .await
                .expect("by intent")
                .as_ref(),
            Some(b)
        );
    }
    let page = store
        .list_bookings(&BookingQuery {
            owner: BookingOwner::Professional(pro),
            status: None,
            from: None,
            to: None,
            professional_id: None,
            limit: 10,
            after: None,
            now: t(20),
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3);
    assert!(page.items.contains(&fast) && page.items.contains(&slow));
    assert!(page.items.iter().any(|b| b.payment.is_none()));
    // `fast` owes a refund (none issued yet); `slow`'s intent is closed.
    let owed = store.payment_obligations(t(20), 10).await.expect("sweep");
    assert_eq!(owed, [fast]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_an_unpaid_hold_frees_its_slot_and_its_request() {
    let Some(store) = common::store().await else {
        return;
    };
    let pro = ProfessionalId::new_at(t(0));
    let mut h = hold(pro, 60, 120, 0);
    h.request_ref = Some("ref-1".into());
    let h = insert(&store, &h, t(0)).await;
    let released = store
        .release_unpaid_hold(h.id, t(1))
        .await
        .expect("release")
        .expect("an unpaid hold");
    assert_eq!(
        (
            released.status,
            released.hold_expires_at,
            released.request_ref.as_deref(),
            released.updated_at
        ),
        (BookingStatus::Expired, Some(t(1)), None, t(1))
    );
    let events = store.events_after(None, 10).await.expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].kind,
        booking_core::events::EventKind::BookingExpired
    );
    assert_eq!(events[1].booking, released);
    // Not a hold any more: nothing to release.
    assert_eq!(store.release_unpaid_hold(h.id, t(2)).await, Ok(None));
    assert_eq!(
        store
            .release_unpaid_hold(BookingId::new_at(t(0)), t(2))
            .await,
        Ok(None)
    );
    // The slot and the request reference are free for a retry.
    let mut retry = hold(pro, 60, 120, 2);
    retry.request_ref = Some("ref-1".into());
    insert(&store, &retry, t(2)).await;
    // A hold with a payment is not released.
    store
        .attach_payment(retry.id, &Payment::new("stripe", "pi_r", "s"), None, t(2))
        .await
        .expect("attach");
    assert_eq!(store.release_unpaid_hold(retry.id, t(3)).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_obligation_sweep_is_served_by_its_partial_index() {
    let Some(store) = common::store().await else {
        return;
    };
    let mut conn = store.pool().acquire().await.expect("conn");
    for setting in ["SET enable_seqscan = off", "SET enable_bitmapscan = off"] {
        sqlx::query(setting).execute(&mut *conn).await.expect("set");
    }
    // 5,000 paid bookings, one in fifty owing something.
    for seed in [
        "INSERT INTO bookings (id, professional_id, client_id, starts_at, ends_at, \
             blocked_range, status, price_cents, currency, hold_expires_at, created_at, \
             updated_at, payment_provider, payment_intent_id, payment_intent_closed) \
         SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), s, \
             s + interval '30 minutes', tstzrange(s, s + interval '30 minutes', '[)'), \
             CASE WHEN i % 50 = 0 THEN 'expired' ELSE 'confirmed' END, 100, 'eur', NULL, s, s, \
             'stripe', 'pi_' || i, i % 50 <> 0 \
         FROM generate_series(1, 5000) AS i, \
              LATERAL (SELECT timestamptz '2027-01-01Z' + i * interval '1 hour' AS s) AS x",
        "ANALYZE",
    ] {
        sqlx::query(seed).execute(&mut *conn).await.expect("seed");
    }
    let explain = format!(
        "EXPLAIN {}",
        booking_postgres::test_support::sql::PAYMENT_OBLIGATIONS
            .replace("$1", "'2027-06-01Z'::timestamptz")
            .replace("$2", "100")
    );
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(explain))
        .fetch_all(&mut *conn)
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("bookings_payment_obligation_idx"), "{plan}");
    assert!(!plan.contains("Sort"), "must not sort:\n{plan}");
    drop(conn);
    let owed = store.payment_obligations(t(0), 1_000).await.expect("sweep");
    assert_eq!(owed.len(), 100);
    assert!(
        owed.windows(2)
            .all(|w| (w[0].updated_at, w[0].id) <= (w[1].updated_at, w[1].id))
    );
}
