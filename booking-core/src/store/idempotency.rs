//! [`IdempotencyStore`]: the records of idempotent requests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, LeaseId, Scope, StoredResponse,
};

/// Idempotency records; see [`crate::idempotency`].
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically looks up `(scope, key)` and applies [`crate::idempotency::decide`].
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision>;

    /// Stores the final response, if `lease` still owns the record (otherwise does nothing
    /// and returns `false`).
    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool>;

    /// Releases the lease of the in-flight record owned by `lease`, so that a retry runs the
    /// request again at once (used after a 5xx). The record itself stays, with its
    /// fingerprint and `created_at`: the retry takes over with the same `first_seen`, hence
    /// the same request reference, and finds whatever the failed attempt committed. Returns
    /// whether a lease was released.
    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool>;

    /// Deletes up to `limit` records with `expires_at <= now`; returns how many. To delete
    /// a backlog, call again until a call comes back short (a *run*). A record such a run
    /// skipped (one another transaction held) is left for the next run.
    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64>;
}
