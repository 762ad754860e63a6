//! The batched purges start where the previous batch stopped: the index scan skips the
//! entries of rows earlier batches deleted, and rows left behind go in the next pass.

use booking_core::domain::{BookingStatus, ProfessionalId};
use booking_core::events::Consumer;
use booking_core::store::{BookingStore, IdempotencyStore, Inserted, OutboxStore};
use booking_postgres::test_support;
use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, Row};

use crate::{booking, common, t};

/// Shared buffers (hit + read) the scan of the `expires_at` index read, from an
/// `EXPLAIN (ANALYZE, BUFFERS)`.
fn index_buffers(plan: &str) -> u64 {
    let count = |line: &str, field: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(field))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    plan.lines()
        .skip_while(|l| !l.contains("Index Scan using idempotency_keys_expires_at_idx"))
        .find(|l| l.trim_start().starts_with("Buffers: shared"))
        .map(|l| count(l, "hit=") + count(l, "read="))
        .unwrap_or_else(|| panic!("no scan of the expires_at index:\n{plan}"))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of one purge batch of 1,000 from `from`, in a transaction
/// rolled back, so that every plan sees the same table.
async fn purge_plan(
    conn: &mut sqlx::PgConnection,
    now: DateTime<Utc>,
    from: Option<DateTime<Utc>>,
) -> String {
    let explain = format!(
        "EXPLAIN (ANALYZE, BUFFERS) {}",
        test_support::sql::IDEMPOTENCY_PURGE
    );
    let mut tx = conn.begin().await.expect("begin");
    let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
        .bind(now)
        .bind(1000_i64)
        .bind(from)
        .fetch_all(&mut *tx)
        .await
        .expect("explain");
    tx.rollback().await.expect("rollback");
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_purge_skips_what_earlier_batches_deleted() {
    let Some(store) = common::store().await else {
        return;
    };
    let mut conn = store.pool().acquire().await.expect("conn");
    // 20,000 expired records, a millisecond apart. The first 10,000 are deleted as earlier
    // batches would have, and nothing vacuums behind them (autovacuum off for the table).
    for seed in [
        "ALTER TABLE idempotency_keys SET (autovacuum_enabled = false)",
        "INSERT INTO idempotency_keys (scope, key, fingerprint, response_status, \
             response_headers, response_body, created_at, expires_at) \
         SELECT 'client:' || (g % 100), 'k-' || g, sha256(g::text::bytea), 201, '{}'::jsonb, \
             '\\x7b7d'::bytea, now() - interval '2 days', \
             now() - interval '1 day' + g * interval '1 ms' \
         FROM generate_series(1, 20000) AS g",
        "ANALYZE idempotency_keys",
        "DELETE FROM idempotency_keys WHERE key IN ( \
             SELECT key FROM idempotency_keys ORDER BY expires_at LIMIT 10000)",
    ] {
        sqlx::query(seed).execute(&mut *conn).await.expect("seed");
    }
    let (stopped_at,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT now() - interval '1 day' + 10000 * interval '1 ms'")
            .fetch_one(&mut *conn)
            .await
            .expect("cursor");
    let now = Utc::now();
    let at_cursor = purge_plan(&mut conn, now, Some(stopped_at)).await;
    let from_start = purge_plan(&mut conn, now, None).await;
    let (near, far) = (index_buffers(&at_cursor), index_buffers(&from_start));
    assert!(near > 0, "{at_cursor}");
    // From the beginning the scan also reads the 10,000 deleted entries and their rows.
    assert!(
        far > 2 * near,
        "from the cursor {near} buffers, from the beginning {far}\n{at_cursor}\n{from_start}"
    );
    drop(conn);
    // Through the adapter: the whole backlog in full batches, then a short one.
    let mut purged = Vec::new();
    loop {
        let n = store.purge_expired(now, 1000).await.expect("purge");
        purged.push(n);
        if n < 1000 {
            break;
        }
    }
    assert_eq!(
        purged,
        [1000; 10].iter().copied().chain([0]).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_events_marked_behind_the_purge_are_still_pruned() {
    let Some(store) = common::store().await else {
        return;
    };
    // Five bookings, five events. Every consumer but one marks them all; the last one
    // marks the first two only after later events were pruned.
    let pro = ProfessionalId::new_at(t(0));
    for i in 0..5 {
        let b = booking(pro, i * 60, i * 60 + 30, BookingStatus::Confirmed);
        let created = store.insert_booking(&b, t(0)).await.expect("insert");
        assert!(matches!(created, Inserted::Created(_)));
    }
    let lease = Duration::minutes(5);
    let mut claims = Vec::new();
    for consumer in Consumer::ALL {
        let claim = store
            .claim_events(consumer, t(0), 100, lease)
            .await
            .expect("claim");
        assert_eq!(claim.events.len(), 5, "{consumer:?}");
        claims.push((consumer, claim));
    }
    let ((late_consumer, late_claim), early) = claims.split_last().expect("two consumers");
    for (consumer, claim) in early {
        let ids: Vec<_> = claim.events.iter().map(|e| e.id).collect();
        let marked = store
            .mark_events(*consumer, claim.lease, &ids, t(0))
            .await
            .expect("mark");
        assert_eq!(marked, 5);
    }
    let ids: Vec<_> = late_claim.events.iter().map(|e| e.id).collect();
    let (first, rest) = ids.split_at(2);
    let (consumer, lease) = (*late_consumer, late_claim.lease);
    let marked = store.mark_events(consumer, lease, rest, t(0)).await;
    assert_eq!(marked.expect("mark"), 3);
    let prune = || store.prune_events(t(10_000), &Consumer::ALL, 2);
    assert_eq!(prune().await.expect("prune"), 2, "the 3rd and 4th");
    let marked = store.mark_events(consumer, lease, first, t(0)).await;
    assert_eq!(marked.expect("mark"), 2);
    // The 5th from where the last batch stopped: the pass has caught up. The next pass
    // starts at the beginning and finds the 1st and 2nd.
    assert_eq!(prune().await.expect("prune"), 1, "the 5th");
    assert_eq!(prune().await.expect("prune"), 2, "the 1st and 2nd");
    assert_eq!(prune().await.expect("prune"), 0);
    assert!(store.events_after(None, 10).await.expect("read").is_empty());
}
