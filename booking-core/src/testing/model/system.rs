//! The system under test: an engine over the store, driven step by step and compared with
//! the model after each step.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use proptest::test_runner::TestCaseError;

use super::{
    CLIENTS, Expected, HOLD, IdemExpect, KEY_TTL, LEASE, ModelError, ModelSchedule, ModelState,
    Party, Request, STEP, Step, ZONES,
};
use crate::auth::{Actor, TokenHash};
use crate::clock::Clock;
use crate::conflict::find_overlap;
use crate::domain::{
    Booking, BookingId, Client, EventId, GeoPoint, NewProfessional, Professional, ProfessionalId,
};
use crate::engine::{AnsweredRequest, BookingFilter, BookingRequest, EngineConfig};
use crate::error::Error;
use crate::events::EventKind;
use crate::idempotency::{
    self, Decision, Fingerprint, IdempotencyKey, IdempotencyPolicy, Scope, StoredResponse,
};
use crate::schedule::{LocalTime, Schedule, WeeklyInterval};
use crate::store::{Inserted, Store};
use crate::testing::fixtures::{Fixture, at, new_client, range, unique};

/// Outbox events read per call.
const EVENT_PAGE: usize = 500;

/// The engine's schedule for a model schedule in zone `tz`: the model's hours on every
/// weekday, a 30-day horizon.
fn engine_schedule(tz: chrono_tz::Tz, m: &ModelSchedule) -> Schedule {
    let mut s = Schedule::always_open(tz);
    if let Some(hours) = &m.hours {
        let local = |minutes: i64| {
            u32::try_from(minutes)
                .ok()
                .and_then(LocalTime::from_minutes)
                .expect("model hours lie within a day")
        };
        let days: Vec<_> = s.weekly.iter().map(|w| w.weekday).collect();
        s.weekly = days
            .into_iter()
            .flat_map(|weekday| {
                hours.iter().map(move |&(a, b)| WeeklyInterval {
                    weekday,
                    start: local(a),
                    end: local(b),
                })
            })
            .collect();
    }
    let minutes = |m: i64| u32::try_from(m).expect("model minutes are small and positive");
    s.slot_step_minutes = minutes(m.step);
    s.min_notice_minutes = minutes(m.notice);
    s.buffer_before_minutes = minutes(m.buffer_before);
    s.buffer_after_minutes = minutes(m.buffer_after);
    s.horizon_days = 30;
    s
}

/// The body an idempotent request is fingerprinted over (the client is the scope).
fn request_body(r: &Request) -> String {
    format!(
        "{{\"len\":{},\"pro\":{},\"slot\":{}}}",
        r.len, r.pro, r.slot
    )
}

/// The stored answer of a request: the booking's id, or a refusal.
fn answer(body: String) -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}

pub(super) fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

fn kind(e: &Error) -> Option<ModelError> {
    match e {
        Error::SlotUnavailable => Some(ModelError::Taken),
        Error::OutsideAvailability(_) => Some(ModelError::Outside),
        Error::InvalidState(_) => Some(ModelError::State),
        Error::NotFound(_) => Some(ModelError::NotFound),
        Error::Forbidden(_) => Some(ModelError::Forbidden),
        _ => None,
    }
}

fn check_change(
    what: &str,
    got: Result<Booking, Error>,
    want: &Result<(), ModelError>,
) -> Result<(), TestCaseError> {
    match (&got, want) {
        (Ok(_), Ok(())) => Ok(()),
        (Err(e), Err(w)) if kind(e) == Some(*w) => Ok(()),
        _ => Err(fail(format!("{what}: engine {got:?}, model {want:?}"))),
    }
}

pub(super) struct System<S: Store + ?Sized> {
    fx: Fixture<S>,
    pros: Vec<Professional>,
    clients: Vec<Client>,
    /// Each client's idempotency scope.
    scopes: Vec<Scope>,
    /// Booking ids in creation order, as in the model.
    ids: Vec<BookingId>,
    index: HashMap<BookingId, usize>,
    /// The last outbox event read.
    pub(super) cursor: Option<EventId>,
}

impl<S: Store + ?Sized> System<S> {
    pub(super) async fn new(
        store: Arc<S>,
        model: &ModelState,
        cursor: Option<EventId>,
    ) -> Result<Self, TestCaseError> {
        let config = EngineConfig {
            hold_ttl: model.holds.then(|| Duration::minutes(HOLD)),
            idempotency: IdempotencyPolicy {
                lease: Duration::minutes(LEASE),
                ttl: Duration::minutes(KEY_TTL),
            },
            ..EngineConfig::default()
        };
        let fx = Fixture::with_config(store, config).await;
        let mut pros = vec![fx.pro.clone()];
        for tz in &ZONES[1..] {
            let p = fx
                .engine
                .create_professional(
                    &NewProfessional {
                        name: unique("Pro"),
                        category: "massage".into(),
                        location: GeoPoint {
                            lat: 40.71,
                            lng: -74.0,
                        },
                        hourly_rate_cents: 9_000,
                        currency: "usd".into(),
                        timezone: tz.name().into(),
                        is_active: None,
                    },
                    TokenHash::of(&unique("pro-token")),
                )
                .await
                .expect("create professional");
            pros.push(p);
        }
        for ((p, m), tz) in pros.iter().zip(&model.schedules).zip(ZONES) {
            if p.timezone != tz {
                return Err(fail(format!("{} is not in the model's zone {tz}", p.id)));
            }
            fx.engine
                .set_schedule(Actor::Admin, p.id, engine_schedule(tz, m))
                .await
                .expect("set schedule");
        }
        let mut clients = vec![fx.client.clone()];
        while clients.len() < CLIENTS {
            clients.push(new_client(&fx.engine).await);
        }
        let scopes = clients
            .iter()
            .map(|c| Scope::new(format!("client:{}", c.id)))
            .collect();
        let mut system = Self {
            fx,
            pros,
            clients,
            scopes,
            ids: Vec::new(),
            index: HashMap::new(),
            cursor,
        };
        // Skip what earlier sequences recorded (their professionals are not ours).
        let earlier = system.events().await?;
        if !earlier.is_empty() {
            return Err(fail(format!("events before the first step: {earlier:?}")));
        }
        Ok(system)
    }

    fn push(&mut self, id: BookingId) {
        self.index.insert(id, self.ids.len());
        self.ids.push(id);
    }

    fn booking_request(&self, r: &Request, request_ref: Option<String>) -> BookingRequest {
        let start = ModelState::start(r.slot);
        BookingRequest {
            client_id: self.clients[r.client].id,
            professional_id: self.pros[r.pro].id,
            range: range(start, start + r.len * STEP),
            request_ref,
        }
    }

    /// The actor `by` for the booking made by `r`.
    fn actor(&self, r: &Request, by: Party) -> Actor {
        match by {
            Party::Owner => Actor::Client(self.clients[r.client].id),
            Party::OtherClient => Actor::Client(self.clients[(r.client + 1) % CLIENTS].id),
            Party::Professional => Actor::Professional(self.pros[r.pro].id),
        }
    }

    fn is_ours(&self, pro: ProfessionalId) -> bool {
        self.pros.iter().any(|p| p.id == pro)
    }

    /// The outbox events recorded since the last call for our professionals: kind and
    /// booking index.
    pub(super) async fn events(&mut self) -> Result<Vec<(EventKind, usize)>, TestCaseError> {
        let mut out = Vec::new();
        loop {
            let page = self
                .fx
                .engine
                .store()
                .events_after(self.cursor, EVENT_PAGE)
                .await
                .expect("read the outbox");
            let full = page.len() == EVENT_PAGE;
            if let Some(last) = page.last() {
                self.cursor = Some(last.id);
            }
            for e in page.into_iter().filter(|e| self.is_ours(e.professional_id)) {
                match self.index.get(&e.booking_id) {
                    Some(&i) => out.push((e.kind, i)),
                    None => {
                        return Err(fail(format!(
                            "{} event for a booking the model does not know: {}",
                            e.kind.as_str(),
                            e.booking_id
                        )));
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Runs `step` on the engine and compares the answer with `expected`.
    pub(super) async fn step(
        &mut self,
        before: &ModelState,
        step: &Step,
        expected: &Expected,
    ) -> Result<(), TestCaseError> {
        let engine = self.fx.engine.clone();
        match (step, expected) {
            (
                Step::Create {
                    request, key: None, ..
                },
                Expected::Create(want),
            ) => {
                let got = engine
                    .create_booking(&self.booking_request(request, None))
                    .await;
                match (got, want) {
                    (Ok(Inserted::Created(b)), Ok(i)) if *i == self.ids.len() => self.push(b.id),
                    (Err(e), Err(w)) if kind(&e) == Some(*w) => {}
                    (got, want) => {
                        return Err(fail(format!("create: engine {got:?}, model {want:?}")));
                    }
                }
            }
            (
                Step::Create {
                    request,
                    key: Some(k),
                    crash,
                    answered,
                },
                Expected::Idempotency(want),
            ) => self.keyed(request, *k, *crash, *answered, want).await?,
            (Step::Cancel { by, .. }, Expected::Change(i, want)) => {
                let actor = self.actor(&before.bookings[*i].request, *by);
                let got = engine.cancel_booking(actor, self.ids[*i]).await;
                check_change("cancel", got, want)?;
            }
            (Step::Confirm(_), Expected::Change(i, want)) => {
                let got = engine.confirm_booking(self.ids[*i]).await;
                check_change("confirm", got, want)?;
            }
            (Step::Reschedule { slot, by, .. }, Expected::Change(i, want)) => {
                let r = before.bookings[*i].request;
                let start = ModelState::start(*slot);
                let got = engine
                    .reschedule_booking(
                        self.actor(&r, *by),
                        self.ids[*i],
                        range(start, start + r.len * STEP),
                    )
                    .await;
                check_change("reschedule", got, want)?;
            }
            (Step::Advance(m), Expected::Nothing) => self.fx.clock.advance(Duration::minutes(*m)),
            (Step::Sweep, Expected::Swept(due)) => {
                let swept = engine.expire_due_holds(10_000).await.expect("sweep");
                let mut got = Vec::new();
                for b in swept.iter().filter(|b| self.is_ours(b.professional_id)) {
                    match self.index.get(&b.id) {
                        Some(&i) => got.push(i),
                        None => return Err(fail(format!("sweep expired unknown {}", b.id))),
                    }
                }
                got.sort_unstable();
                if got != *due {
                    return Err(fail(format!("sweep expired {got:?}, model {due:?}")));
                }
                let again = engine.expire_due_holds(10_000).await.expect("sweep");
                if again.iter().any(|b| self.is_ours(b.professional_id)) {
                    return Err(fail("a second sweep found more due holds".into()));
                }
            }
            (Step::Purge, Expected::Nothing) => {
                engine.purge_idempotency(10_000).await.expect("purge");
            }
            // Cancel, confirm or reschedule before any booking exists.
            (
                Step::Cancel { .. } | Step::Confirm(_) | Step::Reschedule { .. },
                Expected::Nothing,
            ) => {}
            (s, e) => return Err(fail(format!("model produced {e:?} for {s:?}"))),
        }
        Ok(())
    }

    /// An idempotent create through key `k`, on the split path (`begin_request`,
    /// `create_booking`, `complete_request`) or the answered one (`begin_booking_request`,
    /// `create_booking_answered`).
    async fn keyed(
        &mut self,
        request: &Request,
        k: u8,
        crash: bool,
        answered: bool,
        want: &IdemExpect,
    ) -> Result<(), TestCaseError> {
        let engine = self.fx.engine.clone();
        let scope = self.scopes[request.client].clone();
        let key = IdempotencyKey::parse(&format!("key-{k}")).expect("key");
        let fp = Fingerprint::of_request("POST", "/v1/bookings", request_body(request).as_bytes());
        let (decision, context) = if answered {
            let (client, pro) = (self.clients[request.client].id, self.pros[request.pro].id);
            engine
                .begin_booking_request(&scope, &key, fp, client, pro)
                .await
                .expect("begin")
        } else {
            (
                engine.begin_request(&scope, &key, fp).await.expect("begin"),
                None,
            )
        };
        match (decision, want) {
            (Decision::Mismatch, IdemExpect::Mismatch)
            | (Decision::InFlight { .. }, IdemExpect::InFlight) => Ok(()),
            (Decision::Replay { response, .. }, IdemExpect::Replay(outcome)) => {
                let want_body = match outcome {
                    Ok(i) => self.ids[*i].to_string(),
                    Err(()) => "refused".to_owned(),
                };
                if response.body == want_body.as_bytes() {
                    Ok(())
                } else {
                    Err(fail(format!(
                        "replayed {:?}, model {want_body}",
                        String::from_utf8_lossy(&response.body)
                    )))
                }
            }
            (
                Decision::Started { lease, first_seen },
                IdemExpect::Started {
                    outcome,
                    existing,
                    takeover,
                },
            ) => {
                // A claim that took over an earlier attempt must not come with a context:
                // the engine would not look for that attempt's booking. (A fresh claim may
                // come without one; the engine then reads it itself.)
                if *takeover && context.is_some() {
                    return Err(fail("a takeover came with a fresh claim's context".into()));
                }
                let reference = idempotency::request_ref(&scope, &key, &fp, first_seen);
                let req = self.booking_request(request, Some(reference));
                let (got, stored) = if answered {
                    let render = |b: &Booking| answer(b.id.to_string());
                    let idem = AnsweredRequest {
                        scope: &scope,
                        key: &key,
                        lease,
                        context,
                        render: &render,
                    };
                    match engine.create_booking_answered(&req, idem).await {
                        Ok((inserted, stored)) => (Ok(inserted), stored),
                        Err(e) => (Err(e), false),
                    }
                } else {
                    (engine.create_booking(&req).await, false)
                };
                let body = match (&got, outcome, existing) {
                    (Ok(Inserted::Created(b)), Ok(i), false) if *i == self.ids.len() => {
                        self.push(b.id);
                        b.id.to_string()
                    }
                    (Ok(Inserted::Existing(b)), Ok(i), true) if self.ids.get(*i) == Some(&b.id) => {
                        b.id.to_string()
                    }
                    (Err(e), Err(()), _) if kind(e).is_some() => "refused".to_owned(),
                    (got, want, existing) => {
                        return Err(fail(format!(
                            "idempotent create: engine {got:?}, model {want:?} \
                             (existing: {existing})"
                        )));
                    }
                };
                // The answered path stores a new booking's answer in the same step.
                let want_stored = answered && matches!(got, Ok(Inserted::Created(_)));
                if stored != want_stored {
                    return Err(fail(format!(
                        "answer stored: {stored}, model {want_stored}"
                    )));
                }
                if !crash && !stored {
                    let done = engine
                        .complete_request(&scope, &key, lease, &answer(body))
                        .await
                        .expect("complete");
                    if !done {
                        return Err(fail("the lease owner could not complete".into()));
                    }
                }
                Ok(())
            }
            (d, w) => Err(fail(format!("begin: engine {d:?}, model {w:?}"))),
        }
    }

    /// All bookings of professional `pro`, through the engine's paginated list.
    async fn list(&self, pro: ProfessionalId) -> Vec<Booking> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .fx
                .engine
                .list_bookings(
                    Actor::Professional(pro),
                    &BookingFilter {
                        limit: Some(100),
                        after,
                        ..BookingFilter::default()
                    },
                )
                .await
                .expect("list");
            all.extend(page.items);
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => return all,
            }
        }
    }

    /// Compares every booking with the model (the stored status of those in `touched`
    /// too) and checks the no-overlap invariant.
    pub(super) async fn check(
        &self,
        model: &ModelState,
        touched: &[usize],
    ) -> Result<(), TestCaseError> {
        let engine = &self.fx.engine;
        if engine.clock().now() != at(model.now) {
            return Err(fail("clock drifted from the model".into()));
        }
        for (p, pro) in self.pros.iter().enumerate() {
            let all = self.list(pro.id).await;
            let want = model.bookings.iter().filter(|b| b.request.pro == p).count();
            if all.len() != want {
                return Err(fail(format!(
                    "engine lists {} bookings of professional {p}, model has {want}",
                    all.len()
                )));
            }
            for b in &all {
                let Some(&i) = self.index.get(&b.id) else {
                    return Err(fail(format!("engine lists unknown booking {}", b.id)));
                };
                let m = &model.bookings[i];
                let start = ModelState::start(m.request.slot);
                let (bs, be) = model.blocked(&m.request);
                let same = m.request.pro == p
                    && b.client_id == self.clients[m.request.client].id
                    && b.status == model.effective(m)
                    && b.range == range(start, start + m.request.len * STEP)
                    && b.blocked == range(bs, be);
                if !same {
                    return Err(fail(format!(
                        "booking {i}: engine {b:?}, model {m:?} ({})",
                        model.effective(m)
                    )));
                }
            }
            if let Some(pair) = find_overlap(&all, engine.now()) {
                return Err(fail(format!("active bookings overlap: {pair:?}")));
            }
        }
        for &i in touched {
            let stored = engine
                .store()
                .get_booking(self.ids[i])
                .await
                .expect("get")
                .ok_or_else(|| fail(format!("booking {i} is gone")))?;
            if stored.status != model.bookings[i].status {
                return Err(fail(format!(
                    "booking {i} is stored as {}, model {}",
                    stored.status, model.bookings[i].status
                )));
            }
        }
        Ok(())
    }
}
