//! [`InboxStore`]: the inbound webhook inbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cursor, Page};
use crate::error::Result;
use crate::idempotency::LeaseId;
use crate::webhook::inbox::{Claimed, InboxEvent, InboxKey, NewInboxEvent, Recorded};

/// The inbound webhook inbox; see [`crate::webhook::inbox`] for an event's life.
///
/// Each method is one atomic step. Settling methods (`mark_processed`, `schedule_retry`,
/// `dead_letter`) act only for the lease that claimed the event, and only while the event is
/// still pending under that lease (a later claim, after the lease ran out, takes ownership
/// away); they return whether they did. A lease that ran out but was not yet superseded by
/// another claim may still settle: nobody else is processing the event.
///
/// Applying an event's effect (e.g. confirming a booking) and marking the event processed
/// commit together in [`PaymentStore::settle_payment`](super::PaymentStore::settle_payment);
/// `mark_processed` alone serves events without an effect on bookings.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Records a new event, pending and due at `now`. If an event with the same key is
    /// already in the inbox, in any state, nothing changes ([`Recorded::Duplicate`]).
    async fn record(&self, event: &NewInboxEvent, now: DateTime<Utc>) -> Result<Recorded>;

    /// The event with this key, in whatever state.
    async fn inbox_event(&self, key: &InboxKey) -> Result<Option<InboxEvent>>;

    /// Claims up to `limit` pending events due at `now` (`next_attempt_at <= now`), earliest
    /// first, under one fresh lease that lasts until `now + lease`: each claimed event counts
    /// one more attempt and is not due again until the lease runs out, so no other claimer
    /// gets it meanwhile.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: chrono::Duration,
    ) -> Result<Vec<Claimed>>;

    /// Marks the event processed at `now` if `lease` owns it; returns whether it did.
    async fn mark_processed(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Releases the claim of `lease` and makes the event due again at `at`, keeping `error`
    /// (clipped, see [`crate::webhook::inbox::clip_error`]) as its last error; returns whether
    /// `lease` owned it.
    async fn schedule_retry(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool>;

    /// Moves the event to the dead letters at `now` with `error` (clipped) as its last
    /// error, if `lease` owns it; returns whether it did.
    async fn dead_letter(
        &self,
        key: &InboxKey,
        lease: LeaseId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// A page of dead-lettered events in `(dead_lettered_at, key.list_id())` order
    /// (`limit` 1..=100, see [`check_limit`](super::check_limit)), after `after` (exclusive).
    async fn list_dead_letters(
        &self,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<Page<InboxEvent>>;

    /// Puts a dead-lettered event back to pending, due at `now`, with its attempt count reset
    /// (its last error stays, for the record); returns it.
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no dead-lettered event with this
    /// key.
    async fn replay_dead_letter(&self, key: &InboxKey, now: DateTime<Utc>) -> Result<InboxEvent>;

    /// Deletes up to `limit` processed events with `processed_at < older_than`; returns how
    /// many. Pending and dead-lettered events are never pruned. To prune a backlog, call
    /// again until a call comes back short (a *run*); an event such a run skipped (one
    /// another transaction held) is left for the next run.
    async fn prune_processed(&self, older_than: DateTime<Utc>, limit: usize) -> Result<u64>;
}
