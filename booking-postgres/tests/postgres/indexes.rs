//! Every list order is served by a matching index, without a sort: the adapter's own
//! statements (bookings lists, the sweep, each search shape, the outbox read), explained
//! with their parameters bound.

use booking_core::Category;
use booking_core::domain::{ClientId, ProfessionalId};
use booking_core::search::GeoFilter;
use booking_core::store::{BookingOwner, BookingQuery, Cursor, ProfessionalQuery};
use booking_postgres::test_support::{self};
use chrono::{TimeZone, Utc};
use sqlx::Row;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_are_served_by_matching_indexes() {
    let Some(store) = common::store().await else {
        return;
    };
    let mut conn = store.pool().acquire().await.expect("conn");
    // Small tables would be scanned sequentially; make the planner show its index choice.
    // (Bitmap scans plus a sort are what the planner rightly picks for a few rows; what
    // matters here is that an index delivers each list order, so rule them out.)
    for setting in ["SET enable_seqscan = off", "SET enable_bitmapscan = off"] {
        sqlx::query(setting).execute(&mut *conn).await.expect("set");
    }
    // Enough rows for the statistics to mean something: 50 professionals in 5 categories,
    // 200 clients, 5,000 bookings, 5,000 events.
    for seed in [
        "INSERT INTO professionals SELECT gen_random_uuid(), 'p' || i, 'cat' || (i % 5), 0, 0, \
             (i * 37) % 10000, 'eur', 'UTC', i % 10 <> 0, now(), now() \
         FROM generate_series(1, 50) AS i",
        "INSERT INTO bookings SELECT gen_random_uuid(), \
             ('00000000-0000-0000-0000-' || lpad((i % 50)::text, 12, '0'))::uuid, \
             ('00000000-0000-0000-0001-' || lpad((i % 200)::text, 12, '0'))::uuid, \
             s, s + interval '30 minutes', tstzrange(s, s + interval '30 minutes', '[)'), \
             CASE WHEN i % 10 = 0 THEN 'pending_payment' ELSE 'cancelled' END, \
             100, 'eur', s, NULL, s, s \
         FROM generate_series(1, 5000) AS i, \
              LATERAL (SELECT timestamptz '2027-01-01Z' + i * interval '1 hour' AS s) AS x",
        "INSERT INTO domain_events (id, kind, booking_id, professional_id, occurred_at, payload) \
         SELECT gen_random_uuid(), 'booking_created', gen_random_uuid(), gen_random_uuid(), \
             now(), '{}' FROM generate_series(1, 5000)",
        "ANALYZE",
    ] {
        sqlx::query(seed).execute(&mut *conn).await.expect("seed");
    }
    // The adapter's own statements, with their parameters bound: each list order, and the
    // sweep.
    let y2027 = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("instant");
    let uuid = |s: &str| uuid::Uuid::parse_str(s).expect("uuid");
    let list = |owner, from, after| BookingQuery {
        owner,
        status: None,
        from,
        to: None,
        professional_id: None,
        limit: 20,
        after,
        now: y2027,
    };
    let cursor = Some(Cursor {
        primary: y2027.timestamp_micros(),
        id: uuid::Uuid::nil(),
    });
    let lists = [
        (
            list(
                BookingOwner::Client(ClientId::from_uuid(uuid(
                    "00000000-0000-0000-0001-000000000001",
                ))),
                None,
                cursor,
            ),
            "bookings_client_start_idx",
        ),
        (
            list(
                BookingOwner::Professional(ProfessionalId::from_uuid(uuid(
                    "00000000-0000-0000-0000-000000000001",
                ))),
                Some(y2027),
                None,
            ),
            "bookings_professional_start_idx",
        ),
        (list(BookingOwner::All, None, cursor), "bookings_start_idx"),
    ];
    for (query, index) in lists {
        let mut explain =
            test_support::sql::explain_list_bookings(&query, Some(y2027)).expect("a valid query");
        let sql = explain.sql().as_str().to_owned();
        let plan = plan_of(explain.build().fetch_all(&mut *conn).await, &sql);
        assert_index_without_sort(&sql, &plan, index);
    }
    let sweep = format!("EXPLAIN {}", test_support::sql::EXPIRE_DUE_HOLDS);
    for now in [Some(y2027), None] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sweep.clone()))
            .bind(now)
            .bind(100_i64)
            .fetch_all(&mut *conn)
            .await;
        let plan = plan_of(rows, &sweep);
        assert_index_without_sort(&sweep, &plan, "bookings_hold_expiry_idx");
    }
    // Search: the first statement of each shape (rate order, category, radius), as the
    // adapter builds it, with a cursor where the shape has one. Text is left out: its walk
    // sorts the page it found (at most `limit + 1` rows) by design, and which index the
    // walk takes depends on how rare the terms are at scale, which 50 rows cannot show
    // (`booking-postgres/docs/search-plans.md` has its plans at 1M).
    let after = Some(Cursor {
        primary: 100,
        id: uuid::Uuid::nil(),
    });
    let search = |edit: &dyn Fn(&mut ProfessionalQuery)| {
        let mut query = ProfessionalQuery::all(20);
        edit(&mut query);
        query
    };
    let searches = [
        (search(&|q| q.after = after), "professionals_rate_idx"),
        (
            search(&|q| {
                q.category = Some(Category::parse("cat1").expect("category"));
                q.after = after;
            }),
            "professionals_category_rate_idx",
        ),
        (
            search(&|q| q.near = Some(GeoFilter::new(0.0, 0.0, 10.0).expect("circle"))),
            "professionals_earth_idx",
        ),
    ];
    for (query, index) in searches {
        let mut explain = test_support::sql::explain_search(&query).expect("a valid query");
        let sql = explain.sql().as_str().to_owned();
        let plan = plan_of(explain.build().fetch_all(&mut *conn).await, &sql);
        assert_index_without_sort(&sql, &plan, index);
    }
    // The outbox read, from the start and after an event.
    let first = format!("EXPLAIN {}", test_support::sql::OUTBOX_EVENTS_FIRST);
    let rows = sqlx::query(sqlx::AssertSqlSafe(first.clone()))
        .bind(100_i64)
        .fetch_all(&mut *conn)
        .await;
    assert_index_without_sort(&first, &plan_of(rows, &first), "domain_events_seq_idx");
    let next = format!("EXPLAIN {}", test_support::sql::OUTBOX_EVENTS_AFTER);
    let rows = sqlx::query(sqlx::AssertSqlSafe(next.clone()))
        .bind(10_i64)
        .bind(100_i64)
        .fetch_all(&mut *conn)
        .await;
    assert_index_without_sort(&next, &plan_of(rows, &next), "domain_events_seq_idx");
}

/// The text of an `EXPLAIN`'s rows.
fn plan_of(rows: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>, sql: &str) -> String {
    rows.unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"))
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan reads `index` and sorts nothing (the index delivers the order).
fn assert_index_without_sort(sql: &str, plan: &str, index: &str) {
    assert!(plan.contains(index), "{sql}\nexpected {index}:\n{plan}");
    assert!(!plan.contains("Sort"), "{sql}\nmust not sort:\n{plan}");
}
