//! Background workers: the hold-expiry sweep, the idempotency purge and metrics upkeep.
//! They stop when the shutdown signal flips.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;

/// Holds expired per sweep round (the sweep repeats while a round is full).
const EXPIRE_BATCH: usize = 500;
/// Idempotency records deleted per purge round.
const PURGE_BATCH: usize = 1000;
/// The purge runs every this many sweeps.
const PURGE_EVERY: u32 = 12;

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

/// Deletes expired idempotency records (in batches) and returns how many.
pub async fn purge_idempotency(state: &AppState) -> u64 {
    let mut total = 0;
    loop {
        match state.engine().purge_idempotency(PURGE_BATCH).await {
            Ok(n) => {
                total += n;
                if n < PURGE_BATCH as u64 {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "idempotency purge failed");
                return total;
            }
        }
    }
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
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    expire_holds(&state).await;
                    if round.is_multiple_of(PURGE_EVERY) {
                        let n = purge_idempotency(&state).await;
                        if n > 0 {
                            tracing::debug!(purged = n, "expired idempotency keys deleted");
                        }
                    }
                    round = round.wrapping_add(1);
                    state.metrics().run_upkeep();
                }
            }
        }
        tracing::debug!("background workers stopped");
    })
}
