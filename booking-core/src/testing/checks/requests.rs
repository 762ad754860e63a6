//! Checks of [`RequestStore`](crate::store::RequestStore): the use cases that span traits.

use std::sync::Arc;

use chrono::Duration;

use super::super::fixtures::{Fixture, at, new_client, range, unique};
use crate::auth::Actor;
use crate::domain::{BookingStatus, ClientId, ProfessionalId};
use crate::engine::{AnsweredRequest, BookingRequest};
use crate::error::{Entity, Error};
use crate::idempotency::{Decision, Fingerprint, IdempotencyKey, LeaseId, Scope, StoredResponse};
use crate::store::{Inserted, RequestAnswer, Store};

fn answer_for(b: &crate::domain::Booking) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!("{{\"id\":\"{}\"}}", b.id).into_bytes(),
    }
}

/// Begins a request on a fresh key; returns scope, key, fingerprint and the lease.
async fn started<S: Store + ?Sized>(
    fx: &Fixture<S>,
) -> (Scope, IdempotencyKey, Fingerprint, LeaseId) {
    let scope = Scope::new(format!("client:{}", fx.client.id));
    let key = IdempotencyKey::parse(&unique("key")).expect("key");
    let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{}");
    let Decision::Started { lease, .. } = fx
        .engine
        .begin_request(&scope, &key, fp)
        .await
        .expect("begin")
    else {
        panic!("a fresh key starts");
    };
    (scope, key, fp, lease)
}

/// `RequestStore::insert_booking_answered`: the booking and its answer in one step.
pub async fn booking_and_its_answer_commit_together<S: Store + ?Sized>(store: Arc<S>) {
    // `insert_booking_answered`: the booking and the request's answer are stored in one
    // step; a replay returns exactly that answer and the request creates nothing more.
    let fx = Fixture::new(store).await;
    let (scope, key, fp, lease) = started(&fx).await;
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 120),
        request_ref: Some(unique("request")),
    };
    let (inserted, answered) = fx
        .engine
        .create_booking_answered(
            &request,
            AnsweredRequest {
                scope: &scope,
                key: &key,
                lease,
                context: None,
                render: &answer_for,
            },
        )
        .await
        .expect("create");
    let Inserted::Created(booking) = inserted else {
        panic!("a new request creates");
    };
    assert!(
        answered,
        "the lease owned the record, so the answer is stored"
    );
    assert_eq!(fx.reload(&booking).await.id, booking.id);
    // No `complete` was called: the answer came with the booking.
    match fx
        .engine
        .begin_request(&scope, &key, fp)
        .await
        .expect("again")
    {
        Decision::Replay { response, .. } => assert_eq!(response, answer_for(&booking)),
        other => panic!("expected a replay of the stored answer, got {other:?}"),
    }
}

/// `RequestStore::insert_booking_answered`: a stale lease stores no answer.
pub async fn stale_lease_stores_no_answer<S: Store + ?Sized>(store: Arc<S>) {
    // `insert_booking_answered`: a lease that no longer owns the record stores no answer (the
    // booking is still stored: the attempt that took over finds it by its request reference).
    let fx = Fixture::new(store).await;
    let (scope, key, fp, lease) = started(&fx).await;
    let booking = fx.book(0, 30).await.expect("book a first slot");
    let mut other = booking.clone();
    other.id = crate::domain::BookingId::new_at(at(1));
    other.range = range(60, 90);
    other.blocked = range(60, 90);
    let stale = RequestAnswer {
        scope: scope.clone(),
        key: key.clone(),
        lease: LeaseId::new_at(at(2)),
        response: answer_for(&other),
    };
    let (inserted, answered) = fx
        .engine
        .store()
        .insert_booking_answered(&other, at(0), &stale)
        .await
        .expect("insert");
    assert!(matches!(inserted, Inserted::Created(_)));
    assert!(!answered, "a foreign lease must not complete the record");
    match fx
        .engine
        .begin_request(&scope, &key, fp)
        .await
        .expect("again")
    {
        Decision::InFlight { .. } => {}
        other => panic!("the record must still be in flight under {lease:?}, got {other:?}"),
    }
}

/// `RequestStore::insert_booking_answered`: a refused or existing insert stores no answer.
pub async fn refused_or_existing_insert_stores_no_answer<S: Store + ?Sized>(store: Arc<S>) {
    // `insert_booking_answered`: a refused insert stores neither the booking nor an answer;
    // the request's earlier booking is returned as `Existing` without storing an answer.
    let fx = Fixture::new(store).await;
    let taken = fx.book(60, 120).await.expect("book");
    let (scope, key, fp, lease) = started(&fx).await;
    let request_ref = unique("request");
    let mut clash = taken.clone();
    clash.id = crate::domain::BookingId::new_at(at(1));
    clash.request_ref = Some(request_ref.clone());
    let answer = RequestAnswer {
        scope: scope.clone(),
        key: key.clone(),
        lease,
        response: answer_for(&clash),
    };
    let refused = fx
        .engine
        .store()
        .insert_booking_answered(&clash, at(0), &answer)
        .await;
    assert!(
        matches!(refused, Err(Error::SlotUnavailable)),
        "{refused:?}"
    );
    assert!(matches!(
        fx.engine
            .begin_request(&scope, &key, fp)
            .await
            .expect("again"),
        Decision::InFlight { .. }
    ));
    // Same request reference as a stored booking: that booking, and no answer.
    let mut first = taken.clone();
    first.id = crate::domain::BookingId::new_at(at(2));
    first.range = range(180, 240);
    first.blocked = range(180, 240);
    first.request_ref = Some(request_ref.clone());
    let stored = fx
        .engine
        .store()
        .insert_booking(&first, at(0))
        .await
        .expect("insert with ref");
    let mut retry = first.clone();
    retry.id = crate::domain::BookingId::new_at(at(3));
    let (again, answered) = fx
        .engine
        .store()
        .insert_booking_answered(&retry, at(0), &answer)
        .await
        .expect("retry");
    assert_eq!(again, Inserted::Existing(stored.booking().clone()));
    assert!(!answered);
    assert!(matches!(
        fx.engine
            .begin_request(&scope, &key, fp)
            .await
            .expect("again"),
        Decision::InFlight { .. }
    ));
}

/// `RequestStore::begin_booking`: a fresh claim reads its context, other decisions nothing.
pub async fn begin_booking_reads_the_context<S: Store + ?Sized>(store: Arc<S>) {
    // `begin_booking`: a fresh claim reads the professional, their schedule and whether the
    // client exists; any other decision reads nothing.
    let fx = Fixture::new(store).await;
    fx.set_buffers(10, 20).await;
    let scope = Scope::new(format!("client:{}", fx.client.id));
    let key = IdempotencyKey::parse(&unique("key")).expect("key");
    let fp = Fingerprint::of_request("POST", "/v1/bookings", b"{\"a\":1}");
    let (decision, context) = fx
        .engine
        .begin_booking_request(&scope, &key, fp, fx.client.id, fx.pro.id)
        .await
        .expect("begin");
    let Decision::Started { lease, .. } = decision else {
        panic!("a fresh key starts, got {decision:?}");
    };
    let context = context.expect("a fresh claim carries the context");
    assert_eq!(context.professional.as_ref(), Some(&fx.pro));
    let schedule = context.schedule.expect("the fixture has a schedule");
    assert_eq!(
        (
            schedule.buffer_before_minutes,
            schedule.buffer_after_minutes
        ),
        (10, 20)
    );
    assert!(context.client_exists);
    // The same key again: in flight, no context.
    let (again, none) = fx
        .engine
        .begin_booking_request(&scope, &key, fp, fx.client.id, fx.pro.id)
        .await
        .expect("again");
    assert!(matches!(again, Decision::InFlight { .. }), "{again:?}");
    assert!(none.is_none());
    // Completed: a replay, no context.
    let done = StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: b"done".to_vec(),
    };
    assert!(
        fx.engine
            .complete_request(&scope, &key, lease, &done)
            .await
            .expect("complete")
    );
    let (replay, none) = fx
        .engine
        .begin_booking_request(&scope, &key, fp, fx.client.id, fx.pro.id)
        .await
        .expect("replay");
    assert!(
        matches!(&replay, Decision::Replay { response, .. } if *response == done),
        "{replay:?}"
    );
    assert!(none.is_none());
    // Unknown professional and client: a context that says so.
    let key2 = IdempotencyKey::parse(&unique("key")).expect("key");
    let ghost_pro = ProfessionalId::new_at(at(5));
    let ghost_client = ClientId::new_at(at(5));
    let (_, context) = fx
        .engine
        .begin_booking_request(&scope, &key2, fp, ghost_client, ghost_pro)
        .await
        .expect("begin");
    let context = context.expect("fresh claim");
    assert_eq!(context.professional, None);
    assert_eq!(context.schedule, None);
    assert!(!context.client_exists);
}

/// The engine over `begin_booking`: unknown parties are 404, retries find their booking.
pub async fn answered_create_refuses_unknown_parties_and_finds_retries<S: Store + ?Sized>(
    store: Arc<S>,
) {
    // The engine over `begin_booking`'s context: an unknown professional is 404, an unknown
    // client is 404, and a retry that took over finds its first attempt's booking even when
    // the range is no longer bookable.
    let fx = Fixture::new(store).await;
    let mut schedule = crate::schedule::Schedule::always_open(fx.pro.timezone);
    schedule.min_notice_minutes = 30;
    fx.engine
        .set_schedule(Actor::Admin, fx.pro.id, schedule)
        .await
        .expect("schedule");
    let (scope, key, _, lease) = started(&fx).await;
    let idem = |context| AnsweredRequest {
        scope: &scope,
        key: &key,
        lease,
        context,
        render: &answer_for,
    };
    let request = BookingRequest {
        client_id: fx.client.id,
        professional_id: fx.pro.id,
        range: range(60, 90),
        request_ref: Some(unique("request")),
    };
    let ghost = BookingRequest {
        professional_id: ProfessionalId::new_at(at(9)),
        ..request.clone()
    };
    assert_eq!(
        fx.engine.create_booking_answered(&ghost, idem(None)).await,
        Err(Error::NotFound(Entity::Professional))
    );
    let stranger = BookingRequest {
        client_id: ClientId::new_at(at(9)),
        ..request.clone()
    };
    assert_eq!(
        fx.engine
            .create_booking_answered(&stranger, idem(None))
            .await,
        Err(Error::NotFound(Entity::Client))
    );
    let (first, _) = fx
        .engine
        .create_booking_answered(&request, idem(None))
        .await
        .expect("first");
    let Inserted::Created(first) = first else {
        panic!("the first attempt creates");
    };
    // Time passes past the notice: the range is no longer bookable, yet a retry of the
    // same request (same reference) must answer with its booking.
    fx.clock.advance(Duration::minutes(45));
    let (again, answered) = fx
        .engine
        .create_booking_answered(&request, idem(None))
        .await
        .expect("retry");
    assert_eq!(again, Inserted::Existing(first.clone()));
    assert!(!answered);
    // A client of another fixture cannot see it, and a new request for it is refused.
    let other = new_client(&fx.engine).await;
    assert_eq!(
        fx.engine
            .get_booking(Actor::Client(other.id), first.id)
            .await,
        Err(Error::NotFound(Entity::Booking))
    );
    assert_eq!(fx.status(&first).await, BookingStatus::Confirmed);
}

/// `RequestStore::availability_snapshot`: equals its parts read one by one.
pub async fn availability_snapshot_matches_its_parts<S: Store + ?Sized>(store: Arc<S>) {
    // `availability_snapshot`: the professional, the schedule, and the blocked ranges of
    // active bookings in reach of the window (buffers included), in start order; holds that
    // ran out and cancelled bookings do not block.
    let fx = Fixture::with_holds(store).await;
    fx.set_buffers(15, 30).await;
    let a = fx.book(120, 180).await.expect("a"); // blocked [105, 210)
    let b = fx.book(300, 360).await.expect("b"); // blocked [285, 390)
    let c = fx.book(600, 660).await.expect("c"); // blocked [585, 690)
    fx.engine
        .cancel_booking(Actor::Admin, c.id)
        .await
        .expect("cancel");
    let store = fx.engine.store();
    // The window [0, 90) widened by the buffers is [-15, 120): it reaches a's blocked
    // range [105, 210), not b's.
    let snap = store
        .availability_snapshot(fx.pro.id, range(0, 90), at(0))
        .await
        .expect("snapshot")
        .expect("the professional exists");
    assert_eq!(snap.professional, fx.pro);
    assert_eq!(snap.blocked, vec![a.blocked]);
    let snap = store
        .availability_snapshot(fx.pro.id, range(0, 720), at(0))
        .await
        .expect("snapshot")
        .expect("exists");
    assert_eq!(snap.blocked, vec![a.blocked, b.blocked]);
    let schedule = snap.schedule.expect("schedule");
    assert_eq!(schedule.buffer_after_minutes, 30);
    // Past the holds' expiry (15 minutes) nothing blocks any more.
    let later = store
        .availability_snapshot(fx.pro.id, range(0, 720), at(16))
        .await
        .expect("snapshot")
        .expect("exists");
    assert!(later.blocked.is_empty(), "{:?}", later.blocked);
    assert!(
        store
            .availability_snapshot(ProfessionalId::new_at(at(3)), range(0, 60), at(0))
            .await
            .expect("snapshot")
            .is_none()
    );
}

/// `BookingStore::transition_booking_from` / `reschedule_booking_from`: the stored row decides.
pub async fn stale_snapshots_decide_on_the_stored_row<S: Store + ?Sized>(store: Arc<S>) {
    // `transition_booking_from` / `reschedule_booking_from`: a snapshot that is out of date
    // never decides; the change applies to the stored row, or is refused for what it is now.
    let fx = Fixture::new(store).await;
    let booking = fx.book(60, 120).await.expect("book");
    let snapshot = booking.clone();
    let moved = fx
        .engine
        .reschedule_booking(Actor::Client(fx.client.id), booking.id, range(180, 240))
        .await
        .expect("reschedule");
    let store = fx.engine.store();
    let cancelled = store
        .transition_booking_from(&snapshot, crate::domain::Transition::Cancel, at(1))
        .await
        .expect("cancel from a stale snapshot");
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        cancelled.range, moved.range,
        "the stored row's range, not the snapshot's"
    );
    assert_eq!(fx.reload(&booking).await, cancelled);
    let refused = store
        .reschedule_booking_from(&snapshot, range(300, 360), range(300, 360), at(2))
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidState(_))),
        "a cancelled booking is not moved: {refused:?}"
    );
    assert_eq!(fx.reload(&booking).await, cancelled);
}
