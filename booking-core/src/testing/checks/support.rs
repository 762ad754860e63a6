//! Helpers shared by the checks: reading lists and the outbox whole, keys, fingerprints.

use super::super::fixtures::Fixture;
use crate::auth::Actor;
use crate::domain::Booking;
use crate::engine::BookingFilter;
use crate::error::Error;
use crate::events::EventKind;
use crate::idempotency::{Fingerprint, IdempotencyKey, StoredResponse};
use crate::store::Store;

pub(super) fn is_unavailable<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::SlotUnavailable))
}

pub(super) async fn all_bookings<S: Store + ?Sized>(fx: &Fixture<S>, actor: Actor) -> Vec<Booking> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = fx
            .engine
            .list_bookings(
                actor,
                &BookingFilter {
                    limit: Some(100),
                    after,
                    ..BookingFilter::default()
                },
            )
            .await
            .expect("list bookings");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

pub(super) async fn events_of<S: Store + ?Sized>(store: &S, booking: &Booking) -> Vec<EventKind> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let batch = store.events_after(after, 500).await.expect("read outbox");
        let Some(last) = batch.last() else {
            return out;
        };
        after = Some(last.id);
        out.extend(
            batch
                .iter()
                .filter(|e| e.booking_id == booking.id)
                .map(|e| e.kind),
        );
    }
}

pub(super) fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).expect("valid key")
}

pub(super) fn fp(body: &str) -> Fingerprint {
    Fingerprint::of_request("POST", "/v1/bookings", body.as_bytes())
}

pub(super) fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// Reading the fixture clock without importing the trait everywhere.
pub(super) trait NowForChecks {
    fn now_for_checks(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowForChecks for crate::clock::ManualClock {
    fn now_for_checks(&self) -> chrono::DateTime<chrono::Utc> {
        crate::clock::Clock::now(self)
    }
}

/// Two runs of a batched purge (a run: calls of `limit` until one comes back short), at
/// most `max_calls` calls in all; returns what each call deleted.
pub(super) async fn two_runs<F, Fut>(limit: usize, max_calls: usize, mut call: F) -> Vec<u64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut calls = Vec::new();
    for _run in 0..2 {
        loop {
            assert!(calls.len() < max_calls, "runs that never end: {calls:?}");
            let n = call(limit).await;
            calls.push(n);
            if n < limit as u64 {
                break;
            }
        }
    }
    calls
}
