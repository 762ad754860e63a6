//! Idempotency records.

use std::collections::{BTreeSet, HashMap};

use crate::MemoryStore;
use crate::sync::lock;
use async_trait::async_trait;
use booking_core::Result;
use booking_core::idempotency::{
    self, Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, IdempotencyRecord, LeaseId,
    RecordState, Scope, StoredResponse,
};
use booking_core::store::IdempotencyStore;
use chrono::{DateTime, Utc};

type RecordKey = (Scope, IdempotencyKey);

/// Records by `(scope, key)` plus an expiry order, so a purge visits only what it deletes
/// (`O(k log n)` for `k` deleted records) instead of scanning every record.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyTable {
    records: HashMap<RecordKey, IdempotencyRecord>,
    by_expiry: BTreeSet<(DateTime<Utc>, Scope, IdempotencyKey)>,
}

impl IdempotencyTable {
    /// Looks the record up and applies [`idempotency::decide`], storing what it returns.
    pub(crate) fn begin(
        &mut self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Decision {
        let k = (scope.clone(), key.clone());
        let (decision, record) =
            idempotency::decide(self.records.get(&k), scope, key, fingerprint, now, policy);
        if let Some(record) = record {
            if let Some(old) = self.records.get(&k) {
                self.by_expiry
                    .remove(&(old.expires_at, scope.clone(), key.clone()));
            }
            self.by_expiry
                .insert((record.expires_at, scope.clone(), key.clone()));
            self.records.insert(k, record);
        }
        decision
    }

    /// Stores the final response if `lease` owns the record.
    pub(crate) fn complete(
        &mut self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> bool {
        match self.records.get_mut(&(scope.clone(), key.clone())) {
            Some(rec) if idempotency::owns(rec, lease) => {
                rec.state = RecordState::Completed(response.clone());
                true
            }
            _ => false,
        }
    }

    /// Deletes the record if `lease` owns it.
    pub(crate) fn abandon(&mut self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> bool {
        let k = (scope.clone(), key.clone());
        match self.records.get(&k) {
            Some(rec) if idempotency::owns(rec, lease) => {
                // Release the lease rather than forget the record: a retry takes over at
                // once and keeps `created_at`, hence the same request reference.
                if let Some(rec) = self.records.get_mut(&k) {
                    rec.state = idempotency::RecordState::InFlight {
                        lease,
                        locked_until: rec.created_at,
                    };
                }
                true
            }
            _ => false,
        }
    }

    /// Deletes up to `limit` records with `expires_at <= now`.
    pub(crate) fn purge_expired(&mut self, now: DateTime<Utc>, limit: usize) -> u64 {
        let mut purged = 0;
        while purged < limit {
            match self.by_expiry.first() {
                Some((at, _, _)) if *at <= now => {}
                _ => break,
            }
            let Some((_, scope, key)) = self.by_expiry.pop_first() else {
                break;
            };
            self.records.remove(&(scope, key));
            purged += 1;
        }
        purged as u64
    }

    /// Checks that the expiry order matches the records.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ok = self.by_expiry.len() == self.records.len()
            && self.records.values().all(|r| {
                self.by_expiry
                    .contains(&(r.expires_at, r.scope.clone(), r.key.clone()))
            });
        if ok {
            Ok(())
        } else {
            Err("idempotency expiry order out of step".into())
        }
    }

    /// Number of stored records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
        policy: &IdempotencyPolicy,
    ) -> Result<Decision> {
        Ok(lock(&self.idempotency).begin(scope, key, fingerprint, now, policy))
    }

    async fn complete(
        &self,
        scope: &Scope,
        key: &IdempotencyKey,
        lease: LeaseId,
        response: &StoredResponse,
    ) -> Result<bool> {
        Ok(lock(&self.idempotency).complete(scope, key, lease, response))
    }

    async fn abandon(&self, scope: &Scope, key: &IdempotencyKey, lease: LeaseId) -> Result<bool> {
        Ok(lock(&self.idempotency).abandon(scope, key, lease))
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        Ok(lock(&self.idempotency).purge_expired(now, limit))
    }
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use booking_core::idempotency::IdempotencyPolicy;
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn len_counts_records_and_check_spots_a_drifted_expiry_order() {
        let now = Utc
            .with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
            .single()
            .expect("a valid instant");
        let scope = Scope::new("client:1");
        let policy = IdempotencyPolicy::default();
        let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
        let mut table = IdempotencyTable::default();
        assert_eq!(table.len(), 0);
        for k in ["a", "b"] {
            let key = IdempotencyKey::parse(k).expect("a valid key");
            table.begin(&scope, &key, fp, now, &policy);
        }
        assert_eq!(table.len(), 2);
        table.check().expect("consistent");

        // The same number of entries, one with the wrong deadline.
        let (at, s, k) = table.by_expiry.pop_first().expect("two entries");
        table
            .by_expiry
            .insert((at + chrono::Duration::seconds(1), s, k));
        assert_eq!(
            table.check(),
            Err("idempotency expiry order out of step".into())
        );
        // One entry missing.
        table.by_expiry.pop_first();
        assert!(table.check().is_err());
    }
}
