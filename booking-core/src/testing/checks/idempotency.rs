//! Idempotency records ([`IdempotencyStore`]) and retries of a created booking.
//!
//! [`IdempotencyStore`]: crate::store::IdempotencyStore

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, range, unique};
use super::support::*;
use crate::auth::Actor;
use crate::domain::BookingStatus;
use crate::engine::BookingRequest;
use crate::idempotency::{
    Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope, StoredResponse,
};
use crate::store::{Inserted, Store};

async fn begin<S: Store + ?Sized>(fx: &Fixture<S>, scope: &Scope, k: &str, body: &str) -> Decision {
    fx.engine
        .begin_request(scope, &key(k), fp(body))
        .await
        .expect("begin")
}

/// The response of a [`Decision::Replay`], if it is one.
fn replayed(d: Decision) -> Option<StoredResponse> {
    match d {
        Decision::Replay { response, .. } => Some(response),
        _ => None,
    }
}

/// `IdempotencyStore::complete`: later begins replay the stored response.
pub async fn idempotency_replays_the_stored_response<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "k1", "{\"a\":1}").await
    else {
        panic!("first begin starts");
    };
    let resp = response(409, "{\"code\":\"slot_unavailable\"}");
    assert!(
        fx.engine
            .complete_request(&scope, &key("k1"), lease, &resp)
            .await
            .expect("complete")
    );
    for _ in 0..3 {
        fx.clock.advance(Duration::seconds(1));
        assert_eq!(
            begin(&fx, &scope, "k1", "{ \"a\": 1 }").await,
            Decision::Replay {
                response: resp.clone(),
                first_seen
            }
        );
    }
    // The quoted form of a key is the same key.
    let quoted = IdempotencyKey::parse("\"k1\"").expect("quoted");
    assert_eq!(
        fx.engine
            .begin_request(&scope, &quoted, fp("{\"a\":1}"))
            .await
            .expect("begin"),
        Decision::Replay {
            response: resp,
            first_seen
        }
    );
}

/// `IdempotencyStore::begin`: another request under the same key is a `Mismatch`.
pub async fn idempotency_rejects_a_different_request<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "k", "{\"a\":1}").await else {
        panic!("starts");
    };
    assert_eq!(
        begin(&fx, &scope, "k", "{\"a\":2}").await,
        Decision::Mismatch
    );
    fx.engine
        .complete_request(&scope, &key("k"), lease, &response(201, "{}"))
        .await
        .expect("complete");
    assert_eq!(
        begin(&fx, &scope, "k", "{\"a\":2}").await,
        Decision::Mismatch
    );
    let other_path = Fingerprint::of_request("POST", "/v1/clients", b"{\"a\":1}");
    assert_eq!(
        fx.engine
            .begin_request(&scope, &key("k"), other_path)
            .await
            .expect("begin"),
        Decision::Mismatch
    );
}

/// `IdempotencyStore::begin`: `InFlight` until the lease runs out, then a retry takes over.
pub async fn idempotency_in_flight_until_the_lease_runs_out<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let lease_len = fx.engine.config().idempotency.lease;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease: first, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    match begin(&fx, &scope, "k", "{}").await {
        Decision::InFlight { retry_after } => {
            assert!(retry_after > Duration::zero() && retry_after <= lease_len)
        }
        other => panic!("expected InFlight, got {other:?}"),
    }
    // The first attempt crashed: after its lease a retry takes over.
    fx.clock.advance(lease_len);
    let Decision::Started { lease: second, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("a retry after the lease starts again");
    };
    assert_ne!(first, second);
    // The crashed attempt waking up late cannot overwrite the new attempt's record.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), first, &response(500, "late"))
            .await
            .expect("complete")
    );
    assert!(
        fx.engine
            .complete_request(&scope, &key("k"), second, &response(201, "ok"))
            .await
            .expect("complete")
    );
    assert_eq!(
        replayed(begin(&fx, &scope, "k", "{}").await),
        Some(response(201, "ok"))
    );
}

/// `IdempotencyStore::complete` / `abandon`: only the owning lease settles, once.
pub async fn idempotency_only_the_lease_owner_completes<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    let stranger = crate::idempotency::LeaseId::new_at(at(0));
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), stranger, &response(200, "x"))
            .await
            .expect("complete")
    );
    assert!(
        !fx.engine
            .abandon_request(&scope, &key("k"), stranger)
            .await
            .expect("abandon")
    );
    assert!(matches!(
        begin(&fx, &scope, "k", "{}").await,
        Decision::InFlight { .. }
    ));
    assert!(
        fx.engine
            .complete_request(&scope, &key("k"), lease, &response(200, "x"))
            .await
            .expect("complete")
    );
    // Completing twice changes nothing.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("k"), lease, &response(200, "y"))
            .await
            .expect("complete")
    );
    assert_eq!(
        replayed(begin(&fx, &scope, "k", "{}").await),
        Some(response(200, "x"))
    );
    // Unknown keys: nothing to complete.
    assert!(
        !fx.engine
            .complete_request(&scope, &key("nope"), lease, &response(200, "x"))
            .await
            .expect("complete")
    );
}

/// `IdempotencyStore::abandon`: the same request runs again at once, with its first_seen.
pub async fn idempotency_abandon_lets_a_retry_run<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "k", "{}").await else {
        panic!("starts");
    };
    fx.clock.advance(Duration::seconds(5));
    assert!(
        fx.engine
            .abandon_request(&scope, &key("k"), lease)
            .await
            .expect("abandon")
    );
    // The key still belongs to that request: another body is refused...
    assert_eq!(
        begin(&fx, &scope, "k", "{\"other\":true}").await,
        Decision::Mismatch
    );
    // ...and the same request runs again at once (a 5xx is not a final answer), as the same
    // request: same first_seen, so it finds what the failed attempt may have committed.
    match begin(&fx, &scope, "k", "{}").await {
        Decision::Started {
            lease: again,
            first_seen: seen,
        } => {
            assert_ne!(again, lease);
            assert_eq!(seen, first_seen);
        }
        other => panic!("expected Started, got {other:?}"),
    }
}

/// `IdempotencyStore::purge_expired`: records past their TTL are gone and purged exactly.
pub async fn idempotency_keys_expire_and_are_purged<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let ttl = fx.engine.config().idempotency.ttl;
    let scope = Scope::new(unique("client"));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "old", "{}").await else {
        panic!("starts");
    };
    fx.engine
        .complete_request(&scope, &key("old"), lease, &response(201, "1"))
        .await
        .expect("complete");
    fx.clock.advance(ttl - Duration::minutes(1));
    let Decision::Started { lease, .. } = begin(&fx, &scope, "young", "{}").await else {
        panic!("starts");
    };
    fx.engine
        .complete_request(&scope, &key("young"), lease, &response(201, "2"))
        .await
        .expect("complete");
    assert_eq!(fx.engine.purge_idempotency(1000).await.expect("purge"), 0);
    fx.clock.advance(Duration::minutes(1));
    // Expired: gone for callers even before the purge, and the purge deletes exactly it.
    assert!(matches!(
        begin(&fx, &scope, "old", "{\"new\":1}").await,
        Decision::Started { .. }
    ));
    fx.clock.advance(ttl);
    let purged = fx.engine.purge_idempotency(1000).await.expect("purge");
    assert_eq!(
        purged, 2,
        "the re-used 'old' record and 'young' are both past their TTL"
    );
    assert!(matches!(
        begin(&fx, &scope, "young", "{\"x\":1}").await,
        Decision::Started { .. }
    ));
}

/// `IdempotencyStore::purge_expired` in batches: two runs leave nothing due, also behind.
pub async fn idempotency_purge_in_batches_leaves_nothing_due<S: Store + ?Sized>(store: Arc<S>) {
    // A backlog goes batch by batch; a record that expires before the ones earlier batches
    // deleted (written by a process whose clock is behind) is found by the next run (a run:
    // calls until one comes back short). Unexpired records stay.
    let policy = IdempotencyPolicy::default();
    let scope = Scope::new(unique("client"));
    let write = |name: &'static str, minute: i64| {
        let store = store.clone();
        let scope = scope.clone();
        async move {
            let begun = store
                .begin(&scope, &key(name), fp(name), at(minute), &policy)
                .await
                .expect("begin");
            let Decision::Started { lease, .. } = begun else {
                panic!("{name} starts, got {begun:?}");
            };
            assert!(
                store
                    .complete(&scope, &key(name), lease, &response(201, name))
                    .await
                    .expect("complete")
            );
        }
    };
    for (i, name) in ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]
        .into_iter()
        .enumerate()
    {
        write(name, 10 * i64::try_from(i).expect("small")).await;
    }
    let now = at(60) + policy.ttl + Duration::minutes(1);
    write("young", 60 + policy.ttl.num_minutes() + 1).await;
    let purge = |limit| {
        let store = store.clone();
        async move {
            let n = store.purge_expired(now, limit).await.expect("purge");
            assert!(n <= limit as u64, "{n} records purged, limit {limit}");
            n
        }
    };
    assert_eq!(purge(3).await, 3);
    assert_eq!(purge(3).await, 3);
    write("late-clock", 5).await;
    let rest = two_runs(3, 6, purge).await;
    assert_eq!(
        rest.iter().sum::<u64>(),
        2,
        "k6 and late-clock, in {rest:?}"
    );
    for name in ["k0", "k3", "k6", "late-clock"] {
        let again = store
            .begin(&scope, &key(name), fp("other"), now, &policy)
            .await
            .expect("begin");
        assert!(
            matches!(again, Decision::Started { .. }),
            "{name} was purged: a new request, got {again:?}"
        );
    }
    let young = store
        .begin(&scope, &key("young"), fp("young"), now, &policy)
        .await
        .expect("begin");
    assert!(
        replayed(young).is_some(),
        "an unexpired record is never purged"
    );
}

/// Idempotency keys are scoped: one key in two scopes is two requests.
pub async fn idempotency_scopes_are_independent<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let a = Scope::new(unique("client"));
    let b = Scope::new(unique("client"));
    assert!(matches!(
        begin(&fx, &a, "same", "{\"a\":1}").await,
        Decision::Started { .. }
    ));
    assert!(matches!(
        begin(&fx, &b, "same", "{\"b\":1}").await,
        Decision::Started { .. }
    ));
}

/// A key reused after its TTL is a new request and books anew.
pub async fn key_reused_after_expiry_is_a_new_request<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let ttl = fx.engine.config().idempotency.ttl;
    let scope = Scope::new(unique("client"));
    let body = "{\"slot\":1}";
    let book = |first_seen| {
        let engine = &fx.engine;
        let request = BookingRequest {
            client_id: fx.client.id,
            professional_id: fx.pro.id,
            range: range(ttl.num_minutes() + 60, ttl.num_minutes() + 120),
            request_ref: Some(crate::idempotency::request_ref(
                &scope,
                &key("reused"),
                &fp(body),
                first_seen,
            )),
        };
        async move { engine.create_booking(&request).await.expect("create") }
    };
    let Decision::Started { lease, first_seen } = begin(&fx, &scope, "reused", body).await else {
        panic!("starts");
    };
    let Inserted::Created(first) = book(first_seen).await else {
        panic!("creates");
    };
    fx.engine
        .complete_request(&scope, &key("reused"), lease, &response(201, "first"))
        .await
        .expect("complete");
    fx.engine
        .cancel_booking(Actor::Admin, first.id)
        .await
        .expect("cancel");
    fx.clock.advance(ttl);
    // The key's record has expired: the same key and body are a new request, which must
    // book anew rather than hand back the old, cancelled booking.
    let Decision::Started {
        first_seen: later, ..
    } = begin(&fx, &scope, "reused", body).await
    else {
        panic!("an expired key starts afresh");
    };
    assert_ne!(later, first_seen);
    let Inserted::Created(second) = book(later).await else {
        panic!("a new booking, not the old one");
    };
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, BookingStatus::Confirmed);
}

/// `BookingStore::insert_booking` with a stored `request_ref` returns the first booking.
pub async fn retry_of_a_created_booking_returns_it<S: Store + ?Sized>(store: Arc<S>) {
    let fx = Fixture::new(store).await;
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    let Inserted::Created(first) = fx.engine.create_booking(&request).await.expect("first") else {
        panic!("first attempt must create");
    };
    // The retry conflicts with its own booking's slot, yet must not answer "taken".
    let Inserted::Existing(again) = fx.engine.create_booking(&request).await.expect("retry") else {
        panic!("retry must find the first booking");
    };
    assert_eq!(again.id, first.id);
    // Store level too, racing past the engine's look-up.
    let mut dup = first.clone();
    dup.id = crate::domain::BookingId::new_at(at(1));
    let r = fx
        .engine
        .store()
        .insert_booking(&dup, at(0))
        .await
        .expect("store retry");
    assert_eq!(r.booking().id, first.id);
    assert!(matches!(r, Inserted::Existing(_)));
    assert_eq!(all_bookings(&fx, Actor::Admin).await.len(), 1);
    // Another request for the same slot is refused.
    let other = BookingRequest {
        request_ref: Some(unique("request")),
        ..request
    };
    assert!(is_unavailable(&fx.engine.create_booking(&other).await));
}
