//! Background workers, stopped when the shutdown signal flips:
//!
//! * the sweep: expires holds that ran out, makes the payment-provider calls owed (cancel
//!   the intents of ended holds, issue owed refunds; retried every round until the
//!   provider answers), purges expired idempotency keys, prunes processed webhook events
//!   past their retention, prunes domain events every consumer delivered past theirs (each
//!   purge for at most 2 s a sweep: a backlog goes on at the next sweep, so it never holds
//!   up the expiry of holds for long), and keeps the metrics up to date;
//! * the inbox worker: claims due webhook events (on PostgreSQL with `SKIP LOCKED`, so any
//!   number of instances can run it), applies each one's effect and marks it processed in
//!   one atomic step, and retries failures with exponential backoff and full jitter until
//!   it dead-letters them. It wakes when an event arrives and at least every second.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use booking_core::engine::EventOutcome;
use booking_core::webhook::Next;

use crate::AppState;

/// Holds expired per sweep round (the sweep repeats while a round is full).
const EXPIRE_BATCH: usize = 500;
/// Idempotency records deleted per purge round.
const PURGE_BATCH: usize = 1000;
/// The purge runs every this many sweeps (every sweep while a backlog is left).
const PURGE_EVERY: u32 = 12;
/// The longest each purge runs in one sweep, so that a backlog (millions of rows after an
/// outage) does not hold up the expiry of holds behind it.
const PURGE_BUDGET: Duration = Duration::from_secs(2);
/// Payment-provider calls made per sweep round.
const OBLIGATION_BATCH: usize = 100;
/// Processed webhook events pruned per round.
const PRUNE_BATCH: usize = 1000;
/// Inbox events claimed at once.
const INBOX_BATCH: usize = 32;
/// How long a claimed event is withheld from other workers.
const INBOX_LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// The inbox worker looks for due events (retries) at least this often.
const INBOX_POLL: Duration = Duration::from_secs(1);

/// Makes the provider calls owed (cancels of ended holds' intents, owed refunds); returns
/// how many were answered.
pub async fn discharge_obligations(state: &AppState) -> usize {
    match state.engine().discharge_obligations(OBLIGATION_BATCH).await {
        Ok(r) => {
            metrics::counter!("payment_intents_cancelled_total").increment(r.intents_closed as u64);
            metrics::counter!("payment_refunds_issued_total").increment(r.refunds as u64);
            metrics::counter!("payment_obligation_failures_total").increment(r.failed as u64);
            r.intents_closed + r.refunds
        }
        Err(e) => {
            tracing::warn!(error = %e, "payment obligations sweep failed");
            0
        }
    }
}

/// What one sweep's purge did: the rows it deleted, and whether it stopped at
/// `PURGE_BUDGET` (2 s) with a backlog left (the next sweep goes on with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Rows deleted.
    pub deleted: u64,
    /// Whether it stopped for time with full batches still coming.
    pub backlog: bool,
}

/// Runs `batch` (deleting at most `limit` rows) until one comes back short, fails (logged
/// as `what`), or `budget` is spent.
async fn in_batches<F, Fut>(what: &str, limit: usize, budget: Duration, mut batch: F) -> Purged
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = booking_core::Result<u64>>,
{
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        match batch().await {
            Ok(n) => {
                deleted += n;
                if n < limit as u64 {
                    return Purged {
                        deleted,
                        backlog: false,
                    };
                }
                if started.elapsed() >= budget {
                    return Purged {
                        deleted,
                        backlog: true,
                    };
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed");
                return Purged {
                    deleted,
                    backlog: false,
                };
            }
        }
    }
}

/// Deletes processed webhook events older than the retention, in batches for up to
/// `PURGE_BUDGET` (2 s).
pub async fn prune_webhook_events(state: &AppState) -> Purged {
    let cutoff = state
        .webhook_policy()
        .retention_cutoff(state.engine().now());
    let store = state.engine().store();
    in_batches("webhook inbox prune", PRUNE_BATCH, PURGE_BUDGET, || {
        store.prune_processed(cutoff, PRUNE_BATCH)
    })
    .await
}

/// Deletes domain events older than the outbox retention that every consumer of this
/// server delivered, in batches for up to `PURGE_BUDGET` (2 s).
pub async fn prune_outbox(state: &AppState) -> Purged {
    let cutoff = state.engine().now() - state.outbox_retention();
    let store = state.engine().store();
    let consumers = state.outbox_consumers();
    in_batches("outbox prune", PRUNE_BATCH, PURGE_BUDGET, || {
        store.prune_events(cutoff, consumers, PRUNE_BATCH)
    })
    .await
}

/// A uniform draw from `[0, 1)` for a backoff's jitter (every worker's retries).
pub(crate) fn jitter() -> f64 {
    // 53 random bits make every double in [0, 1) on the grid of 2^-53 equally likely.
    getrandom::u64().map_or(0.5, |r| (r >> 11) as f64 / (1u64 << 53) as f64)
}

/// Processes the due inbox events once (one batch after another while batches are full);
/// returns how many events were handled.
pub async fn process_inbox(state: &AppState) -> usize {
    let engine = state.engine();
    let mut handled = 0;
    loop {
        let now = engine.now();
        let claimed = match engine
            .store()
            .claim_due(now, INBOX_BATCH, INBOX_LEASE)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook events failed");
                return handled;
            }
        };
        let n = claimed.len();
        for c in &claimed {
            process_one(state, c).await;
        }
        handled += n;
        if n < INBOX_BATCH {
            return handled;
        }
    }
}

async fn process_one(state: &AppState, c: &booking_core::webhook::inbox::Claimed) {
    let engine = state.engine();
    let store = engine.store();
    let key = &c.event.key;
    let outcome = engine.process_webhook_event(c).await;
    let now = engine.now();
    let error = match outcome {
        Ok(EventOutcome::Unprocessable(why)) => {
            tracing::warn!(event = key.event_id(), error = %why, "webhook event cannot be read; dead-lettered");
            match store.dead_letter(key, c.lease, &why, now).await {
                Ok(true) => {
                    metrics::counter!("webhook_events_dead_lettered_total").increment(1);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "dead-lettering failed"),
            }
            return;
        }
        Ok(EventOutcome::LeaseLost) => return,
        Ok(outcome) => {
            let label = match outcome {
                EventOutcome::Applied(_) => "applied",
                EventOutcome::Unchanged => "unchanged",
                EventOutcome::Acknowledged => "acknowledged",
                _ => "ignored",
            };
            metrics::counter!("webhook_events_processed_total", "outcome" => label).increment(1);
            let lag = (now - c.event.received_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("webhook_processing_lag_seconds").record(lag);
            return;
        }
        Err(e) => e,
    };
    let message = error.to_string();
    match state.webhook_policy().next(c.event.attempts, jitter()) {
        Next::RetryIn(delay) => {
            let at = now + delay;
            tracing::info!(event = key.event_id(), attempts = c.event.attempts, error = %message, retry_at = %at, "webhook event failed; retrying");
            match store.schedule_retry(key, c.lease, at, &message).await {
                Ok(true) => metrics::counter!("webhook_events_retried_total").increment(1),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "scheduling a webhook retry failed"),
            }
        }
        Next::DeadLetter => {
            tracing::warn!(event = key.event_id(), attempts = c.event.attempts, error = %message, "webhook event failed for the last time; dead-lettered");
            match store.dead_letter(key, c.lease, &message, now).await {
                Ok(true) => metrics::counter!("webhook_events_dead_lettered_total").increment(1),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "dead-lettering failed"),
            }
        }
    }
}

/// Spawns the inbox worker; it ends soon after `shutdown` becomes `true`.
pub fn spawn_inbox(state: AppState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            process_inbox(&state).await;
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = state.inbox_woken() => {}
                _ = tokio::time::sleep(INBOX_POLL) => {}
            }
        }
        tracing::debug!("inbox worker stopped");
    })
}

/// Runs one sweep: expires due holds (all of them, in batches) and returns how many.
pub async fn expire_holds(state: &AppState) -> usize {
    let mut total = 0;
    loop {
        match state.engine().expire_due_holds(EXPIRE_BATCH).await {
            Ok(expired) => {
                let n = expired.len();
                total += n;
                metrics::counter!("holds_expired_total").increment(n as u64);
                if n < EXPIRE_BATCH {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "hold expiry sweep failed");
                return total;
            }
        }
    }
}

/// Deletes expired idempotency records, in batches for up to `PURGE_BUDGET` (2 s).
pub async fn purge_idempotency(state: &AppState) -> Purged {
    let engine = state.engine();
    in_batches("idempotency purge", PURGE_BATCH, PURGE_BUDGET, || {
        engine.purge_idempotency(PURGE_BATCH)
    })
    .await
}

/// Spawns the worker loop; it ends soon after `shutdown` becomes `true` (or its sender is
/// dropped).
pub fn spawn(
    state: AppState,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u32 = 0;
        // A purge stopped for time: the next sweep goes on with it.
        let mut backlog = false;
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    expire_holds(&state).await;
                    discharge_obligations(&state).await;
                    if backlog || round.is_multiple_of(PURGE_EVERY) {
                        let runs = [
                            ("expired idempotency keys deleted", purge_idempotency(&state).await),
                            ("processed webhook events pruned", prune_webhook_events(&state).await),
                            ("delivered domain events pruned", prune_outbox(&state).await),
                        ];
                        for (what, run) in runs {
                            if run.deleted > 0 {
                                tracing::debug!(rows = run.deleted, backlog = run.backlog, "{what}");
                            }
                        }
                        backlog = runs.iter().any(|(_, run)| run.backlog);
                    }
                    round = round.wrapping_add(1);
                    state.metrics().run_upkeep();
                }
            }
        }
        tracing::debug!("background workers stopped");
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_purge_runs_until_a_batch_comes_back_short() {
        let calls = AtomicU64::new(0);
        let purged = in_batches("test purge", 10, Duration::from_secs(3600), || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok(if n < 3 { 10 } else { 4 }) }
        })
        .await;
        assert_eq!(
            purged,
            Purged {
                deleted: 34,
                backlog: false
            }
        );
    }

    #[tokio::test]
    async fn a_purge_stops_at_its_budget_and_says_a_backlog_is_left() {
        let calls = AtomicU64::new(0);
        let purged = in_batches("test purge", 10, Duration::from_millis(20), || {
            calls.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(10)
            }
        })
        .await;
        assert!(purged.backlog);
        assert_eq!(purged.deleted, 10 * calls.load(Ordering::Relaxed));
        assert!(purged.deleted >= 10);
    }

    #[tokio::test]
    async fn a_failed_batch_ends_the_purge_with_what_it_did() {
        let calls = AtomicU64::new(0);
        let purged = in_batches("test purge", 10, Duration::from_secs(3600), || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n == 0 {
                    Ok(10)
                } else {
                    Err(booking_core::Error::Unavailable("down".into()))
                }
            }
        })
        .await;
        assert_eq!(
            purged,
            Purged {
                deleted: 10,
                backlog: false
            }
        );
    }
}
