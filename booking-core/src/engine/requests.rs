//! The idempotent-request use cases of [`BookingEngine`]: begin, complete, abandon and
//! purge (see [`crate::idempotency`]).

use super::BookingEngine;
use crate::clock::Clock;
use crate::error::Result;
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, LeaseId, Scope, StoredResponse};
use crate::store::Store;

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// Begins an idempotent request.
    pub async fn begin_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
    ) -> Result<Decision> {
        self.store
            .begin(
                scope,
                key,
                fingerprint,
                self.now(),
                &self.config.idempotency,
            )
            .await
    }

    /// Stores the final response of a started request.
    pub async fn complete_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        self.store.complete(scope, key, lease, response).await
    }

    /// Releases a started request without a stored answer (a 5xx), so a retry runs again.
    pub async fn abandon_request(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
    ) -> Result<bool> {
        self.store.abandon(scope, key, lease).await
    }

    /// Deletes up to `limit` expired idempotency records.
    pub async fn purge_idempotency(&self, limit: usize) -> Result<u64> {
        self.store.purge_expired(self.now(), limit).await
    }
}
