//! Checks of [`InboxStore`](crate::store::InboxStore): the webhook inbox.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::super::fixtures::at;
use super::support::two_runs;
use crate::error::{Entity, Error};
use crate::idempotency::LeaseId;
use crate::store::{Cursor, Store};
use crate::webhook::inbox::{Claimed, InboxEvent, InboxKey, InboxState, NewInboxEvent, Recorded};

fn key(n: usize) -> InboxKey {
    InboxKey::new("stripe", format!("evt_{n:04}")).expect("valid key")
}

fn new_event(n: usize) -> NewInboxEvent {
    NewInboxEvent::new(
        key(n),
        "payment_intent.succeeded",
        format!("{{\"id\":\"evt_{n:04}\"}}").into_bytes(),
    )
    .expect("valid event")
}

const LEASE: Duration = Duration::minutes(5);

async fn record_all<S: Store + ?Sized>(store: &S, ns: impl IntoIterator<Item = usize>) {
    for n in ns {
        let recorded = store.record(&new_event(n), at(0)).await.expect("record");
        assert_eq!(recorded, Recorded::New, "event {n} is new");
    }
}

async fn get<S: Store + ?Sized>(store: &S, n: usize) -> Option<InboxEvent> {
    store.inbox_event(&key(n)).await.expect("read inbox event")
}

/// Claims exactly one event at `now` and returns it.
async fn claim_one<S: Store + ?Sized>(store: &S, now: DateTime<Utc>) -> Claimed {
    let mut claimed = store.claim_due(now, 10, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 1, "exactly one event is due at {now}");
    claimed.remove(0)
}

fn keys_of(claimed: &[Claimed]) -> Vec<InboxKey> {
    claimed.iter().map(|c| c.event.key.clone()).collect()
}

/// `InboxStore::record`: a second record of a key is `Duplicate` and changes nothing.
pub async fn inbox_duplicate_record_changes_nothing<S: Store + ?Sized>(store: Arc<S>) {
    // `record`: a second record of the same key is `Duplicate` and changes nothing, whatever
    // the event's state (pending and claimed, processed); another key is `New`.
    record_all(&*store, [1]).await;
    let fresh = get(&*store, 1).await.expect("recorded");
    assert_eq!(fresh, InboxEvent::received(&new_event(1), at(0)));
    let claimed = claim_one(&*store, at(1)).await;
    let before = get(&*store, 1).await.expect("recorded");
    assert_eq!(claimed.event, before, "the claim returns the stored event");

    let mut again = NewInboxEvent::new(key(1), "charge.refunded", b"other".to_vec()).expect("ok");
    assert_eq!(
        store.record(&again, at(2)).await.expect("record"),
        Recorded::Duplicate
    );
    assert_eq!(
        get(&*store, 1).await,
        Some(before.clone()),
        "nothing changed"
    );
    assert!(
        store
            .claim_due(at(2), 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "a duplicate does not make a claimed event due again"
    );
    assert!(
        store
            .mark_processed(&key(1), claimed.lease, at(3))
            .await
            .expect("settle"),
        "the claim still owns the event"
    );
    let processed = get(&*store, 1).await.expect("recorded");
    again.payload = b"third".to_vec();
    assert_eq!(
        store.record(&again, at(4)).await.expect("record"),
        Recorded::Duplicate
    );
    assert_eq!(get(&*store, 1).await, Some(processed), "still processed");
    assert!(
        store
            .claim_due(at(100), 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    record_all(&*store, [2]).await;
}

/// `InboxStore::claim_due`: earliest due first; a claimed event is hidden from others.
pub async fn inbox_claim_hides_rows_from_a_second_claimer<S: Store + ?Sized>(store: Arc<S>) {
    // `claim_due`: earliest due first, at most `limit`; a claimed event is invisible to a
    // second claimer, and nothing is claimed twice.
    for (n, minute) in [(1, 2), (2, 0), (3, 1)] {
        store
            .record(&new_event(n), at(minute))
            .await
            .expect("record");
    }
    for bad in [Duration::zero(), -LEASE] {
        assert!(
            matches!(
                store.claim_due(at(5), 10, bad).await,
                Err(Error::Invalid(_))
            ),
            "a lease must be positive"
        );
    }
    assert!(
        store
            .claim_due(at(5), 0, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "limit 0 claims nothing"
    );
    let first = store.claim_due(at(5), 2, LEASE).await.expect("claim");
    let mut got = keys_of(&first);
    got.sort();
    assert_eq!(got, vec![key(2), key(3)], "the two earliest due events");
    for c in &first {
        assert_eq!(c.event.attempts, 1);
        assert_eq!(c.event.state, InboxState::Pending);
        assert_eq!(
            c.event.next_attempt_at,
            at(5) + LEASE,
            "due when the lease ends"
        );
    }
    let second = store.claim_due(at(5), 10, LEASE).await.expect("claim");
    assert_eq!(keys_of(&second), vec![key(1)], "only the unclaimed event");
    assert_ne!(
        second[0].lease, first[0].lease,
        "each claim has its own lease"
    );
    assert!(
        store
            .claim_due(at(5) + LEASE - Duration::seconds(1), 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is due while the leases last"
    );
}

/// `InboxStore::claim_due`: a claim whose lease ran out is due again under a new lease.
pub async fn inbox_lease_expiry_returns_the_row<S: Store + ?Sized>(store: Arc<S>) {
    // `claim_due`: a claim whose lease ran out (a crashed worker) is due again and claimed under
    // a new lease; the old lease no longer owns the event.
    record_all(&*store, [1]).await;
    let first = claim_one(&*store, at(0)).await;
    assert!(
        store
            .claim_due(at(4), 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "still leased"
    );
    let second = claim_one(&*store, at(5)).await;
    assert_eq!(second.event.key, key(1));
    assert_eq!(second.event.attempts, 2, "the crashed attempt counts");
    assert_ne!(second.lease, first.lease);
    assert!(
        !store
            .mark_processed(&key(1), first.lease, at(6))
            .await
            .expect("settle"),
        "the superseded lease cannot settle"
    );
    assert!(
        store
            .mark_processed(&key(1), second.lease, at(6))
            .await
            .expect("settle")
    );
    let done = get(&*store, 1).await.expect("kept");
    assert_eq!(done.state, InboxState::Processed);
    assert_eq!(done.processed_at, Some(at(6)));
}

/// `InboxStore::mark_processed` and friends: only the owning lease settles, once.
pub async fn inbox_only_the_owning_lease_settles<S: Store + ?Sized>(store: Arc<S>) {
    // `mark_processed`, `schedule_retry`, `dead_letter`: only the lease that owns the event
    // settles it, and only once; a refused settle changes nothing.
    record_all(&*store, [1]).await;
    let claimed = claim_one(&*store, at(0)).await;
    let stranger = LeaseId::new_at(at(0));
    let k = key(1);
    assert!(!store.mark_processed(&k, stranger, at(1)).await.expect("op"));
    assert!(
        !store
            .schedule_retry(&k, stranger, at(1), "x")
            .await
            .expect("op")
    );
    assert!(
        !store
            .dead_letter(&k, stranger, "x", at(1))
            .await
            .expect("op")
    );
    assert!(
        !store
            .mark_processed(&key(2), claimed.lease, at(1))
            .await
            .expect("op")
    );
    assert_eq!(
        get(&*store, 1).await,
        Some(claimed.event.clone()),
        "unchanged"
    );

    // A retry releases the claim: its lease owns the event no longer.
    assert!(
        store
            .schedule_retry(&k, claimed.lease, at(10), "boom")
            .await
            .expect("op")
    );
    let after_retry = get(&*store, 1).await.expect("kept");
    assert!(
        !store
            .mark_processed(&k, claimed.lease, at(2))
            .await
            .expect("op")
    );
    assert!(
        !store
            .dead_letter(&k, claimed.lease, "x", at(2))
            .await
            .expect("op")
    );
    assert_eq!(get(&*store, 1).await, Some(after_retry));

    // Settled events stay settled.
    let again = claim_one(&*store, at(10)).await;
    assert!(
        store
            .mark_processed(&k, again.lease, at(11))
            .await
            .expect("op")
    );
    let done = get(&*store, 1).await.expect("kept");
    assert!(
        !store
            .mark_processed(&k, again.lease, at(12))
            .await
            .expect("op")
    );
    assert!(
        !store
            .schedule_retry(&k, again.lease, at(12), "x")
            .await
            .expect("op")
    );
    assert!(
        !store
            .dead_letter(&k, again.lease, "x", at(12))
            .await
            .expect("op")
    );
    assert_eq!(
        get(&*store, 1).await,
        Some(done),
        "processed_at is the first settle's"
    );
}

/// `InboxStore::schedule_retry`: not due before `at`, due at `at` exactly.
pub async fn inbox_retry_is_not_due_before_its_time<S: Store + ?Sized>(store: Arc<S>) {
    // `schedule_retry`: the event keeps its error and is not due before `at`, then is due at
    // `at` exactly (also when `at` is before the old lease's end).
    record_all(&*store, [1, 2]).await;
    let claimed = store.claim_due(at(0), 10, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let (late, early) = (&claimed[0], &claimed[1]);
    assert!(
        store
            .schedule_retry(&late.event.key, late.lease, at(30), "boom")
            .await
            .expect("retry")
    );
    assert!(
        store
            .schedule_retry(&early.event.key, early.lease, at(1), "soon")
            .await
            .expect("retry")
    );
    let waiting = store
        .inbox_event(&late.event.key)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(waiting.state, InboxState::Pending);
    assert_eq!(waiting.next_attempt_at, at(30));
    assert_eq!(waiting.last_error.as_deref(), Some("boom"));
    assert_eq!(waiting.attempts, 1);

    let at_one = store.claim_due(at(1), 10, LEASE).await.expect("claim");
    assert_eq!(
        keys_of(&at_one),
        vec![early.event.key.clone()],
        "due at its `at`"
    );
    assert!(
        store
            .mark_processed(&early.event.key, at_one[0].lease, at(2))
            .await
            .expect("settle")
    );
    assert!(
        store
            .claim_due(at(29), 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    let retried = claim_one(&*store, at(30)).await;
    assert_eq!(retried.event.key, late.event.key);
    assert_eq!(retried.event.attempts, 2);
    assert_eq!(retried.event.last_error.as_deref(), Some("boom"));
}

/// `InboxStore::list_dead_letters` / `replay_dead_letter`: clean pages, replay makes it due.
pub async fn inbox_dead_letters_list_and_replay<S: Store + ?Sized>(store: Arc<S>) {
    // `dead_letter`, `list_dead_letters`, `replay_dead_letter`: dead letters are listed in
    // `(dead_lettered_at, list_id)` order, page by page without gaps or duplicates, and a
    // replay makes one pending and due again.
    record_all(&*store, 1..=7).await;
    let claimed = store.claim_due(at(0), 10, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 7);
    // Event 6 is processed and event 7 waits for a retry: neither is a dead letter.
    for c in claimed {
        let n: usize = c.event.key.event_id()[4..].parse().expect("number");
        let ok = match n {
            6 => store.mark_processed(&c.event.key, c.lease, at(1)).await,
            7 => {
                store
                    .schedule_retry(&c.event.key, c.lease, at(100), "later")
                    .await
            }
            // Ties at minute 2 (ordered by list id) and distinct instants around them.
            _ => {
                let minute = [0, 3, 2, 2, 1, 2][n];
                let error = format!("failed {n}");
                store
                    .dead_letter(&c.event.key, c.lease, &error, at(minute))
                    .await
            }
        };
        assert!(ok.expect("settle"));
    }
    let mut expected: Vec<InboxEvent> = Vec::new();
    for n in 1..=5 {
        let e = get(&*store, n).await.expect("kept");
        assert_eq!(e.state, InboxState::DeadLettered);
        assert_eq!(e.last_error, Some(format!("failed {n}")));
        expected.push(e);
    }
    expected.sort_by_key(|e| e.dead_letter_cursor().map(|c| (c.primary, c.id)));

    assert!(matches!(
        store.list_dead_letters(0, None).await,
        Err(Error::Invalid(_))
    ));
    let whole = store.list_dead_letters(100, None).await.expect("list");
    assert_eq!(whole.items, expected);
    assert_eq!(whole.next_cursor, None);
    let exact = store.list_dead_letters(5, None).await.expect("list");
    assert_eq!(exact.items, expected);
    assert_eq!(
        exact.next_cursor, None,
        "a full last page has no next cursor"
    );

    // Page by two; replaying an event already listed does not shift later pages.
    let first = store.list_dead_letters(2, None).await.expect("list");
    assert_eq!(first.items, expected[..2]);
    let replayed = store
        .replay_dead_letter(&first.items[0].key, at(20))
        .await
        .expect("replay");
    let mut after: Option<Cursor> = first.next_cursor;
    let mut rest = Vec::new();
    while let Some(cursor) = after {
        let page = store
            .list_dead_letters(2, Some(cursor))
            .await
            .expect("list");
        assert!(page.items.len() <= 2);
        rest.extend(page.items);
        after = page.next_cursor;
    }
    assert_eq!(rest, expected[2..], "no gap, no duplicate");

    assert_eq!(replayed.state, InboxState::Pending);
    assert_eq!(replayed.attempts, 0);
    assert_eq!(replayed.next_attempt_at, at(20));
    assert_eq!(replayed.dead_lettered_at, None);
    assert_eq!(
        replayed.last_error, expected[0].last_error,
        "the error stays"
    );
    assert_eq!(
        store.inbox_event(&replayed.key).await.expect("read"),
        Some(replayed.clone())
    );
    let listed = store.list_dead_letters(100, None).await.expect("list");
    assert_eq!(listed.items, expected[1..]);
    assert!(
        store
            .claim_due(at(19), 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = claim_one(&*store, at(20)).await;
    assert_eq!(again.event.key, replayed.key);
    assert_eq!(again.event.attempts, 1);

    for k in [replayed.key.clone(), key(6), key(7), key(99)] {
        assert_eq!(
            store.replay_dead_letter(&k, at(21)).await,
            Err(Error::NotFound(Entity::InboxEvent)),
            "{k} is not a dead letter"
        );
    }
}

/// `InboxStore::prune_processed` in batches: two runs leave nothing prunable, also behind.
pub async fn inbox_prune_in_batches_leaves_nothing_behind<S: Store + ?Sized>(store: Arc<S>) {
    // Events processed at minutes 1..=6 go two by two; one processed at minute 0 after the
    // first batch (behind where it stopped) is found by the next run (a run: calls until
    // one comes back short).
    let process = |ns: std::ops::RangeInclusive<usize>, minute: fn(usize) -> i64| {
        let store = store.clone();
        async move {
            record_all(&*store, ns.clone()).await;
            for c in store.claim_due(at(0), 10, LEASE).await.expect("claim") {
                let n: usize = c.event.key.event_id()[4..].parse().expect("number");
                assert!(ns.contains(&n));
                let done = store
                    .mark_processed(&c.event.key, c.lease, at(minute(n)))
                    .await
                    .expect("mark");
                assert!(done);
            }
        }
    };
    process(1..=6, |n| i64::try_from(n).expect("small")).await;
    let prune = |limit| {
        let store = store.clone();
        async move {
            let n = store.prune_processed(at(10), limit).await.expect("prune");
            assert!(n <= limit as u64, "{n} events pruned, limit {limit}");
            n
        }
    };
    assert_eq!(prune(2).await, 2);
    process(7..=7, |_| 0).await;
    let rest = two_runs(2, 8, prune).await;
    assert_eq!(rest.iter().sum::<u64>(), 5, "3 to 7, in {rest:?}");
    for n in 1..=7 {
        assert_eq!(get(&*store, n).await, None, "event {n} is pruned");
    }
}

/// `InboxStore::prune_processed`: only processed events older than the cutoff go.
pub async fn inbox_prune_removes_only_old_processed_rows<S: Store + ?Sized>(store: Arc<S>) {
    // `prune_processed`: deletes processed events with `processed_at` before the cutoff, at
    // most `limit` at a time; pending and dead-lettered events stay, whatever their age.
    record_all(&*store, 1..=6).await;
    let claimed = store.claim_due(at(0), 10, LEASE).await.expect("claim");
    for c in claimed {
        let n: usize = c.event.key.event_id()[4..].parse().expect("number");
        let ok = match n {
            // Processed at minutes 1, 2, 5 (the cutoff) and 9.
            1..=4 => {
                let minute = [0, 1, 2, 5, 9][n];
                store
                    .mark_processed(&c.event.key, c.lease, at(minute))
                    .await
            }
            5 => store.dead_letter(&c.event.key, c.lease, "x", at(1)).await,
            _ => {
                store
                    .schedule_retry(&c.event.key, c.lease, at(1), "x")
                    .await
            }
        };
        assert!(ok.expect("settle"));
    }
    assert_eq!(store.prune_processed(at(5), 0).await.expect("prune"), 0);
    assert_eq!(store.prune_processed(at(5), 1).await.expect("prune"), 1);
    assert_eq!(store.prune_processed(at(5), 100).await.expect("prune"), 1);
    assert_eq!(store.prune_processed(at(5), 100).await.expect("prune"), 0);
    assert_eq!(get(&*store, 1).await, None);
    assert_eq!(get(&*store, 2).await, None);
    for n in 3..=6 {
        assert!(get(&*store, n).await.is_some(), "event {n} stays");
    }
    // Once pruned, a redelivery is new again (hence the retention period).
    record_all(&*store, [1]).await;
    assert_eq!(
        store.record(&new_event(3), at(10)).await.expect("record"),
        Recorded::Duplicate
    );
}

/// `InboxStore::claim_due` raced: no event is claimed twice, every due event once.
pub async fn race_inbox_claims_never_claim_one_event_twice<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) {
    // `claim_due` under contention: 16 tasks claiming at once never claim one event twice,
    // and together claim every due event.
    const EVENTS: usize = 48;
    const TASKS: usize = 16;
    record_all(&*store, 0..EVENTS).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(at(1), 2, LEASE).await.expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch);
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for c in t.await.expect("task") {
            total += 1;
            assert!(
                seen.insert(c.event.key.clone()),
                "{} claimed twice",
                c.event.key
            );
            assert_eq!(c.event.attempts, 1);
        }
    }
    assert_eq!(total, EVENTS, "every due event is claimed exactly once");
}
