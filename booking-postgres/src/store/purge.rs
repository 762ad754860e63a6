//! Where each batched purge stopped, so that the next batch starts there.
//!
//! A purge deletes expired rows in batches (`.. ORDER BY expires_at LIMIT n`). Without a
//! starting point every batch walks the index from its beginning, over the entries of all
//! the rows earlier batches deleted, until a vacuum removes them: with a backlog of millions
//! the work per batch grows with the rows already deleted, and the rate falls from tens of
//! thousands of rows per second to a few thousand (`docs/RELIABILITY.md`, "Cleanup at
//! scale"). A [`PurgeCursor`] keeps the sort key of the last row the previous batch deleted;
//! the next batch asks for rows at or after it (`>=`, so rows that tie with it are not
//! skipped), and the index scan starts there.
//!
//! A row the cursor has passed can still be due: one another transaction held locked when
//! its batch ran (`SKIP LOCKED` leaves it), an outbox event its last consumer marked after
//! the batches went past it, or a caller that moved its cutoff back. So a pass ends with the
//! first batch that comes back short (the purge has caught up), and the next pass starts
//! from the beginning again: the rows left behind go then. Every pass reads the index once,
//! instead of once per batch.
//!
//! That next pass steps over the index entries of the rows the previous one deleted, until
//! a vacuum removes them: after a backlog of millions, with autovacuum off, its first batch
//! can run into the statement timeout (it is retried at the next sweep, and succeeds once
//! the table is vacuumed). `docs/RELIABILITY.md` ("Cleanup at scale") has the figures.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use booking_core::Result;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::error::{PgError, retrying};

/// The sort key the previous full batch of one purge stopped at (see the module docs).
/// Shared by the clones of a [`super::PgStore`]; every process keeps its own.
#[derive(Debug, Default)]
pub(crate) struct PurgeCursor<T> {
    last: Mutex<Option<T>>,
}

impl<T: Copy> PurgeCursor<T> {
    /// Where the next batch starts: `None` for the beginning.
    pub(crate) fn start(&self) -> Option<T> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One batch of a purge: `batch(from, limit)` deletes up to `limit` due rows whose key
    /// is at or after `from` (`None`: all of them) and answers how many and the greatest key
    /// among them. Starts at the cursor and moves it. Returns the rows deleted.
    pub(crate) async fn run<F, Fut>(&self, limit: i64, batch: F) -> Result<u64>
    where
        F: FnOnce(Option<T>, i64) -> Fut,
        Fut: Future<Output = Result<(i64, Option<T>)>>,
    {
        let (deleted, last) = batch(self.start(), limit).await?;
        let deleted = u64::try_from(deleted).unwrap_or(0);
        self.advance(deleted, limit, last);
        Ok(deleted)
    }

    /// Records a batch's outcome: `deleted` rows of at most `limit`, the greatest sort key
    /// among them `last`. A short batch means the purge caught up: the next one starts from
    /// the beginning.
    pub(crate) fn advance(&self, deleted: u64, limit: i64, last: Option<T>) {
        let full = i64::try_from(deleted).is_ok_and(|n| n >= limit);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = if full { last } else { None };
    }
}

impl PgStore {
    /// One batch of a purge keyed on a timestamp (idempotency records, processed inbox
    /// events): `sql` takes `$1` the cutoff, `$2` the limit and `$3` the cursor, and answers
    /// the rows deleted and the greatest key among them. Returns the rows deleted.
    pub(super) async fn purge_batch(
        &self,
        cursor: &PurgeCursor<DateTime<Utc>>,
        sql: &'static str,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        cursor
            .run(limit, |from, n| async move {
                retrying!(self.retry, async {
                    sqlx::query_as(sql)
                        .bind(cutoff)
                        .bind(n)
                        .bind(from)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(PgError::from)
                })
            })
            .await
    }
}

/// The cursors of the three purges of a store.
#[derive(Debug, Default)]
pub(crate) struct PurgeCursors {
    /// Idempotency records, by `expires_at`.
    pub(crate) idempotency: PurgeCursor<DateTime<Utc>>,
    /// Processed webhook events, by `processed_at`.
    pub(crate) inbox: PurgeCursor<DateTime<Utc>>,
    /// Outbox events marked by every consumer, by `seq`.
    pub(crate) outbox: PurgeCursor<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch over the sorted keys `rows` (deleting what it returns).
    fn batch(rows: &Mutex<Vec<i64>>, from: Option<i64>, limit: i64) -> Result<(i64, Option<i64>)> {
        let mut rows = rows.lock().unwrap_or_else(PoisonError::into_inner);
        let take: Vec<i64> = rows
            .iter()
            .copied()
            .filter(|k| from.is_none_or(|f| *k >= f))
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        rows.retain(|k| !take.contains(k));
        Ok((i64::try_from(take.len()).unwrap_or(0), take.last().copied()))
    }

    fn run(cursor: &PurgeCursor<i64>, rows: &Mutex<Vec<i64>>, limit: i64) -> u64 {
        let done = cursor.run(limit, |from, n| std::future::ready(batch(rows, from, n)));
        futures_executor(done).unwrap_or(0)
    }

    /// Polls a future that never waits.
    fn futures_executor<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => unreachable!("the batches never wait"),
        }
    }

    #[test]
    fn a_row_behind_the_cursor_goes_in_the_next_pass() {
        let rows = Mutex::new(vec![10, 20, 30, 40]);
        let cursor = PurgeCursor::default();
        assert_eq!(run(&cursor, &rows, 2), 2);
        assert_eq!(cursor.start(), Some(20));
        // A due row appears behind the cursor (a lock released, a late mark).
        rows.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(0, 5);
        assert_eq!(
            run(&cursor, &rows, 3),
            2,
            "30 and 40: the pass has caught up"
        );
        assert_eq!(cursor.start(), None);
        assert_eq!(
            run(&cursor, &rows, 3),
            1,
            "the next pass starts at the beginning"
        );
        assert!(
            rows.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
        assert_eq!(run(&cursor, &rows, 3), 0);
    }

    #[test]
    fn a_full_call_continues_where_it_stopped() {
        let rows = Mutex::new((1..=9).collect());
        let cursor = PurgeCursor::default();
        assert_eq!(run(&cursor, &rows, 4), 4);
        assert_eq!(run(&cursor, &rows, 4), 4);
        assert_eq!(cursor.start(), Some(8));
        assert_eq!(run(&cursor, &rows, 4), 1);
        assert_eq!(cursor.start(), None);
        assert_eq!(run(&cursor, &rows, 4), 0);
    }

    #[test]
    fn starts_at_the_beginning() {
        let cursor = PurgeCursor::<i64>::default();
        assert_eq!(cursor.start(), None);
    }

    #[test]
    fn a_full_batch_moves_the_start_to_its_last_key() {
        let cursor = PurgeCursor::<i64>::default();
        cursor.advance(3, 3, Some(17));
        assert_eq!(cursor.start(), Some(17));
        cursor.advance(3, 3, Some(40));
        assert_eq!(cursor.start(), Some(40));
    }

    #[test]
    fn a_short_batch_starts_the_next_one_from_the_beginning() {
        let cursor = PurgeCursor::<i64>::default();
        cursor.advance(3, 3, Some(17));
        cursor.advance(2, 3, Some(20));
        assert_eq!(cursor.start(), None);
        cursor.advance(3, 3, Some(5));
        cursor.advance(0, 3, None);
        assert_eq!(cursor.start(), None);
    }
}
