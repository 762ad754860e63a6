//! A plain reference model of the engine and a `proptest-state-machine` run that checks a
//! store against it after every step.
//!
//! The model knows bookings of one professional on a 15-minute grid, the clock, holds,
//! buffers and idempotent requests (including attempts that crash after creating their
//! booking and are retried). After each step the engine's view of every booking must equal
//! the model's, and no two active bookings may overlap.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest_state_machine::ReferenceStateMachine;

use super::fixtures::{Fixture, at, range, unique};
use crate::auth::Actor;
use crate::clock::Clock;
use crate::conflict::find_overlap;
use crate::domain::{Booking, BookingId, BookingStatus};
use crate::engine::{BookingFilter, BookingRequest, EngineConfig};
use crate::error::Error;
use crate::idempotency::{self, Decision, Fingerprint, IdempotencyKey, Scope, StoredResponse};
use crate::schedule::Schedule;
use crate::store::{Inserted, Store};

/// Minutes of one grid step.
const STEP: i64 = 15;
/// Bookings start this many minutes after t0, on the grid.
const ORIGIN: i64 = 60;
/// Hold length in hold mode.
const HOLD: i64 = 15;

/// One step of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Book `[slot, slot + len)` (grid units), optionally through idempotency key `key`;
    /// `crash` = the attempt creates its booking but never completes the key.
    Create {
        /// Start slot.
        slot: i64,
        /// Length in slots.
        len: i64,
        /// Idempotency key number, if any.
        key: Option<u8>,
        /// Whether the attempt crashes before completing its key.
        crash: bool,
    },
    /// Cancel the n-th booking (modulo the count).
    Cancel(usize),
    /// Confirm (pay) the n-th booking.
    Confirm(usize),
    /// Move the n-th booking to start at `slot`.
    Reschedule(usize, i64),
    /// Advance the clock by minutes.
    Advance(i64),
    /// Run the expiry sweep.
    Sweep,
}

/// A booking in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBooking {
    /// Start slot.
    pub slot: i64,
    /// Length in slots.
    pub len: i64,
    /// Stored status (holds that ran out are seen as expired through `effective`).
    pub status: BookingStatus,
    /// Hold deadline in minutes after t0.
    pub hold_until: Option<i64>,
}

/// What the model remembers of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Completed with this outcome: `Ok(booking index)` or `Err(())` for a refusal.
    Done {
        /// The request (slot, len).
        request: (i64, i64),
        /// The stored outcome.
        outcome: Result<usize, ()>,
    },
    /// An attempt crashed while holding the key until `locked_until` (minutes).
    Crashed {
        /// The request (slot, len).
        request: (i64, i64),
        /// Lease end in minutes after t0.
        locked_until: i64,
    },
}

/// The whole reference state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelState {
    /// Holds (payments configured) or instant confirmation.
    pub holds: bool,
    /// Buffer before, minutes.
    pub buffer_before: i64,
    /// Buffer after, minutes.
    pub buffer_after: i64,
    /// Clock, minutes after t0.
    pub now: i64,
    /// Bookings in creation order.
    pub bookings: Vec<ModelBooking>,
    /// Idempotency keys used.
    pub keys: BTreeMap<u8, KeyState>,
    /// The booking each key's request created.
    pub made: BTreeMap<u8, usize>,
}

impl ModelState {
    fn start(&self, slot: i64) -> i64 {
        ORIGIN + slot * STEP
    }

    fn blocked(&self, slot: i64, len: i64) -> (i64, i64) {
        (
            self.start(slot) - self.buffer_before,
            self.start(slot) + len * STEP + self.buffer_after,
        )
    }

    /// The status as seen now.
    pub fn effective(&self, b: &ModelBooking) -> BookingStatus {
        match (b.status, b.hold_until) {
            (BookingStatus::PendingPayment, Some(t)) if t <= self.now => BookingStatus::Expired,
            (s, _) => s,
        }
    }

    fn is_active(&self, b: &ModelBooking) -> bool {
        matches!(
            self.effective(b),
            BookingStatus::Confirmed | BookingStatus::PendingPayment
        )
    }

    fn free(&self, slot: i64, len: i64, except: Option<usize>) -> bool {
        let (s, e) = self.blocked(slot, len);
        self.bookings.iter().enumerate().all(|(i, b)| {
            if Some(i) == except || !self.is_active(b) {
                return true;
            }
            let (bs, be) = self.blocked(b.slot, b.len);
            !(s < be && bs < e)
        })
    }

    /// The outcome of a plain (non-idempotent) create: the new booking's index or the error.
    fn create(&mut self, slot: i64, len: i64) -> Result<usize, ModelError> {
        if self.start(slot) < self.now {
            return Err(ModelError::Outside);
        }
        if !self.free(slot, len, None) {
            return Err(ModelError::Taken);
        }
        self.bookings.push(ModelBooking {
            slot,
            len,
            status: if self.holds {
                BookingStatus::PendingPayment
            } else {
                BookingStatus::Confirmed
            },
            hold_until: self.holds.then_some(self.now + HOLD),
        });
        Ok(self.bookings.len() - 1)
    }

    /// Applies a step and returns what the engine must answer.
    pub fn step(&mut self, step: &Step) -> Expected {
        match *step {
            Step::Create {
                slot,
                len,
                key: None,
                ..
            } => Expected::Create(self.create(slot, len)),
            Step::Create {
                slot,
                len,
                key: Some(k),
                crash,
            } => {
                let request = (slot, len);
                match self.keys.get(&k).cloned() {
                    Some(KeyState::Done { request: r, .. }) if r != request => {
                        Expected::Idempotency(IdemExpect::Mismatch)
                    }
                    Some(KeyState::Done { outcome, .. }) => {
                        Expected::Idempotency(IdemExpect::Replay(outcome))
                    }
                    Some(KeyState::Crashed { request: r, .. }) if r != request => {
                        Expected::Idempotency(IdemExpect::Mismatch)
                    }
                    Some(KeyState::Crashed { locked_until, .. }) if locked_until > self.now => {
                        Expected::Idempotency(IdemExpect::InFlight)
                    }
                    prior => {
                        // Started (fresh, or taking over a crashed attempt's lease). A
                        // crashed attempt's booking, if it made one, is found again.
                        let existing = match prior {
                            Some(KeyState::Crashed { .. }) => self.crashed_booking(k),
                            _ => None,
                        };
                        let outcome = match existing {
                            Some(i) => Ok(i),
                            None => self.create(slot, len),
                        };
                        if let Ok(i) = outcome {
                            self.made.insert(k, i);
                        }
                        self.keys.insert(
                            k,
                            if crash {
                                KeyState::Crashed {
                                    request,
                                    locked_until: self.now + 1,
                                }
                            } else {
                                KeyState::Done {
                                    request,
                                    outcome: outcome.map_err(|_| ()),
                                }
                            },
                        );
                        Expected::Idempotency(IdemExpect::Started {
                            outcome: outcome.map_err(|_| ()),
                        })
                    }
                }
            }
            Step::Cancel(n) => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => {
                    // Cancelling a cancelled booking is an idempotent success.
                    let ok = self.is_active(&self.bookings[i])
                        || self.bookings[i].status == BookingStatus::Cancelled;
                    if ok {
                        self.bookings[i].status = BookingStatus::Cancelled;
                        self.bookings[i].hold_until = None;
                    }
                    Expected::Change(i, ok.then_some(()).ok_or(ModelError::State))
                }
            },
            Step::Confirm(n) => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => {
                    let b = &self.bookings[i];
                    let result = match self.effective(b) {
                        BookingStatus::PendingPayment => Ok(()),
                        BookingStatus::Expired if self.free(b.slot, b.len, Some(i)) => Ok(()),
                        BookingStatus::Expired => Err(ModelError::Taken),
                        _ => Err(ModelError::State),
                    };
                    if result.is_ok() {
                        self.bookings[i].status = BookingStatus::Confirmed;
                        self.bookings[i].hold_until = None;
                    }
                    Expected::Change(i, result)
                }
            },
            Step::Reschedule(n, slot) => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => {
                    let b = self.bookings[i].clone();
                    let result = if !self.is_active(&b) {
                        Err(ModelError::State)
                    } else if self.start(slot) < self.now {
                        Err(ModelError::Outside)
                    } else if !self.free(slot, b.len, Some(i)) {
                        Err(ModelError::Taken)
                    } else {
                        Ok(())
                    };
                    if result.is_ok() {
                        self.bookings[i].slot = slot;
                    }
                    Expected::Change(i, result)
                }
            },
            Step::Advance(m) => {
                self.now += m;
                Expected::Nothing
            }
            Step::Sweep => {
                let mut due = Vec::new();
                for i in 0..self.bookings.len() {
                    if self.effective(&self.bookings[i]) == BookingStatus::Expired
                        && self.bookings[i].status == BookingStatus::PendingPayment
                    {
                        self.bookings[i].status = BookingStatus::Expired;
                        due.push(i);
                    }
                }
                Expected::Swept(due)
            }
        }
    }

    fn pick(&self, n: usize) -> Option<usize> {
        (!self.bookings.is_empty()).then(|| n % self.bookings.len())
    }

    fn crashed_booking(&self, k: u8) -> Option<usize> {
        self.made.get(&k).copied()
    }
}

/// A refusal in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelError {
    /// Slot taken.
    Taken,
    /// Outside availability (in the past).
    Outside,
    /// Illegal status transition.
    State,
}

/// What an idempotent create must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemExpect {
    /// Runs: creates (or finds) booking `Ok(i)` or is refused.
    Started {
        /// The outcome.
        outcome: Result<usize, ()>,
    },
    /// Replays the stored outcome.
    Replay(Result<usize, ()>),
    /// Another attempt holds the lease.
    InFlight,
    /// The key was used for another request.
    Mismatch,
}

/// What the engine must answer to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// No answer to compare.
    Nothing,
    /// A plain create.
    Create(Result<usize, ModelError>),
    /// An idempotent create.
    Idempotency(IdemExpect),
    /// A change of booking `i`.
    Change(usize, Result<(), ModelError>),
    /// The sweep expired these bookings.
    Swept(Vec<usize>),
}

/// The [`ReferenceStateMachine`] over [`ModelState`].
#[derive(Debug, Clone, Copy)]
pub struct EngineModel;

impl ReferenceStateMachine for EngineModel {
    type State = ModelState;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<ModelState> {
        (
            any::<bool>(),
            prop_oneof![Just(0i64), Just(15)],
            prop_oneof![Just(0i64), Just(15)],
        )
            .prop_map(|(holds, buffer_before, buffer_after)| ModelState {
                holds,
                buffer_before,
                buffer_after,
                now: 0,
                bookings: Vec::new(),
                keys: BTreeMap::new(),
                made: BTreeMap::new(),
            })
            .boxed()
    }

    fn transitions(_state: &ModelState) -> BoxedStrategy<Step> {
        let create = (
            0i64..24,
            1i64..=4,
            proptest::option::of(0u8..4),
            proptest::bool::weighted(0.25),
        )
            .prop_map(|(slot, len, key, crash)| Step::Create {
                slot,
                len,
                key,
                crash,
            });
        prop_oneof![
            4 => create,
            2 => any::<usize>().prop_map(Step::Cancel),
            2 => any::<usize>().prop_map(Step::Confirm),
            2 => (any::<usize>(), 0i64..24).prop_map(|(n, s)| Step::Reschedule(n, s)),
            2 => (1i64..=30).prop_map(Step::Advance),
            1 => Just(Step::Sweep),
        ]
        .boxed()
    }

    fn apply(mut state: ModelState, transition: &Step) -> ModelState {
        state.step(transition);
        state
    }
}

fn request_body(slot: i64, len: i64) -> String {
    format!("{{\"len\":{len},\"slot\":{slot}}}")
}

struct System<S: Store + ?Sized> {
    fx: Fixture<S>,
    scope: Scope,
    ids: Vec<BookingId>,
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

fn kind(e: &Error) -> Option<ModelError> {
    match e {
        Error::SlotUnavailable => Some(ModelError::Taken),
        Error::OutsideAvailability(_) => Some(ModelError::Outside),
        Error::InvalidState(_) => Some(ModelError::State),
        _ => None,
    }
}

impl<S: Store + ?Sized> System<S> {
    async fn new(store: Arc<S>, model: &ModelState) -> Self {
        let config = EngineConfig {
            hold_ttl: model.holds.then(|| Duration::minutes(HOLD)),
            ..EngineConfig::default()
        };
        let fx = Fixture::with_config(store, config).await;
        let mut schedule = Schedule::always_open(fx.pro.timezone);
        schedule.buffer_before_minutes = u32::try_from(model.buffer_before).unwrap_or(0);
        schedule.buffer_after_minutes = u32::try_from(model.buffer_after).unwrap_or(0);
        fx.engine
            .set_schedule(Actor::Admin, fx.pro.id, schedule)
            .await
            .expect("set schedule");
        Self {
            fx,
            scope: Scope::new(unique("model-client")),
            ids: Vec::new(),
        }
    }

    fn request(
        &self,
        model: &ModelState,
        slot: i64,
        len: i64,
        request_ref: Option<String>,
    ) -> BookingRequest {
        let start = model.start(slot);
        BookingRequest {
            client_id: self.fx.client.id,
            professional_id: self.fx.pro.id,
            range: range(start, start + len * STEP),
            request_ref,
        }
    }

    /// Runs `step` on the engine and compares the answer with `expected`.
    async fn step(
        &mut self,
        before: &ModelState,
        step: &Step,
        expected: &Expected,
    ) -> Result<(), TestCaseError> {
        let engine = &self.fx.engine;
        let client = Actor::Client(self.fx.client.id);
        match (step, expected) {
            (
                Step::Create {
                    slot,
                    len,
                    key: None,
                    ..
                },
                Expected::Create(want),
            ) => {
                let got = engine
                    .create_booking(&self.request(before, *slot, *len, None))
                    .await;
                match (got, want) {
                    (Ok(Inserted::Created(b)), Ok(i)) if *i == self.ids.len() => {
                        self.ids.push(b.id)
                    }
                    (Err(e), Err(w)) if kind(&e) == Some(*w) => {}
                    (got, want) => {
                        return Err(fail(format!("create: engine {got:?}, model {want:?}")));
                    }
                }
            }
            (
                Step::Create {
                    slot,
                    len,
                    key: Some(k),
                    crash,
                },
                Expected::Idempotency(want),
            ) => {
                let key = IdempotencyKey::parse(&format!("key-{k}")).expect("key");
                let body = request_body(*slot, *len);
                let fp = Fingerprint::of_request("POST", "/v1/bookings", body.as_bytes());
                let decision = engine
                    .begin_request(&self.scope, &key, fp)
                    .await
                    .expect("begin");
                match (decision, want) {
                    (Decision::Mismatch, IdemExpect::Mismatch) => {}
                    (Decision::InFlight { .. }, IdemExpect::InFlight) => {}
                    (Decision::Replay { response: resp, .. }, IdemExpect::Replay(outcome)) => {
                        let want_body = match outcome {
                            Ok(i) => self.ids[*i].to_string(),
                            Err(()) => "refused".to_owned(),
                        };
                        if resp.body != want_body.as_bytes() {
                            return Err(fail(format!(
                                "replayed {:?}, model {want_body}",
                                String::from_utf8_lossy(&resp.body)
                            )));
                        }
                    }
                    (Decision::Started { lease, first_seen }, IdemExpect::Started { outcome }) => {
                        let reference =
                            idempotency::request_ref(&self.scope, &key, &fp, first_seen);
                        let got = engine
                            .create_booking(&self.request(before, *slot, *len, Some(reference)))
                            .await;
                        let body = match (&got, outcome) {
                            (Ok(Inserted::Created(b)), Ok(i)) if *i == self.ids.len() => {
                                self.ids.push(b.id);
                                b.id.to_string()
                            }
                            (Ok(Inserted::Existing(b)), Ok(i))
                                if self.ids.get(*i) == Some(&b.id) =>
                            {
                                b.id.to_string()
                            }
                            (Err(e), Err(())) if kind(e).is_some() => "refused".to_owned(),
                            (got, want) => {
                                return Err(fail(format!(
                                    "idempotent create: engine {got:?}, model {want:?}"
                                )));
                            }
                        };
                        if !crash {
                            let stored = StoredResponse {
                                status: 200,
                                headers: Vec::new(),
                                body: body.into_bytes(),
                            };
                            let done = engine
                                .complete_request(&self.scope, &key, lease, &stored)
                                .await
                                .expect("complete");
                            if !done {
                                return Err(fail("the lease owner could not complete".into()));
                            }
                        }
                    }
                    (d, w) => return Err(fail(format!("begin: engine {d:?}, model {w:?}"))),
                }
            }
            (Step::Cancel(_), Expected::Change(i, want)) => {
                let got = engine.cancel_booking(client, self.ids[*i]).await;
                check_change("cancel", got, want)?;
            }
            (Step::Confirm(_), Expected::Change(i, want)) => {
                let got = engine.confirm_booking(self.ids[*i]).await;
                check_change("confirm", got, want)?;
            }
            (Step::Reschedule(_, slot), Expected::Change(i, want)) => {
                let len = before.bookings[*i].len;
                let start = before.start(*slot);
                let got = engine
                    .reschedule_booking(client, self.ids[*i], range(start, start + len * STEP))
                    .await;
                check_change("reschedule", got, want)?;
            }
            (Step::Advance(m), Expected::Nothing) => self.fx.clock.advance(Duration::minutes(*m)),
            (Step::Sweep, Expected::Swept(due)) => {
                let swept = engine.expire_due_holds(10_000).await.expect("sweep");
                let due: Vec<BookingId> = due.iter().map(|i| self.ids[*i]).collect();
                for b in swept.iter().filter(|b| b.professional_id == self.fx.pro.id) {
                    // Holds may already have been expired lazily by an insert that needed
                    // their slot; the sweep must never touch anything that is not due.
                    if !due.contains(&b.id) {
                        return Err(fail(format!("sweep expired {} which was not due", b.id)));
                    }
                }
                let again = engine.expire_due_holds(10_000).await.expect("sweep");
                if again.iter().any(|b| b.professional_id == self.fx.pro.id) {
                    return Err(fail("a second sweep found more due holds".into()));
                }
            }
            (_, Expected::Nothing) => {}
            (s, e) => return Err(fail(format!("model produced {e:?} for {s:?}"))),
        }
        Ok(())
    }

    /// Compares every booking with the model and checks the no-overlap invariant.
    async fn check(&self, model: &ModelState) -> Result<(), TestCaseError> {
        let engine = &self.fx.engine;
        if engine.clock().now() != at(model.now) {
            return Err(fail("clock drifted from the model".into()));
        }
        for (i, m) in model.bookings.iter().enumerate() {
            let b: Booking = engine
                .get_booking(Actor::Admin, self.ids[i])
                .await
                .expect("get");
            let start = model.start(m.slot);
            let (bs, be) = model.blocked(m.slot, m.len);
            let want_status = model.effective(m);
            if b.status != want_status
                || b.range != range(start, start + m.len * STEP)
                || b.blocked != range(bs, be)
            {
                return Err(fail(format!(
                    "booking {i}: engine {b:?}, model {m:?} ({want_status})"
                )));
            }
        }
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = engine
                .list_bookings(
                    Actor::Professional(self.fx.pro.id),
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
                None => break,
            }
        }
        if all.len() != model.bookings.len() {
            return Err(fail(format!(
                "engine lists {} bookings, model has {}",
                all.len(),
                model.bookings.len()
            )));
        }
        if let Some(pair) = find_overlap(&all, engine.clock().now()) {
            return Err(fail(format!("active bookings overlap: {pair:?}")));
        }
        Ok(())
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

/// Runs the state-machine property against `store`: 32 random step sequences of up to 40
/// steps, each on its own professional, client and clock. Panics with the shrunk failing
/// sequence on a divergence.
pub async fn run_against<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let handle = tokio::runtime::Handle::current();
    let config = Config {
        cases: 32,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    };
    #[allow(clippy::result_large_err)]
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(config);
        runner.run(
            &EngineModel::sequential_strategy(1..40),
            |(initial, steps, seen)| {
                handle.block_on(async {
                    let mut model = initial;
                    let mut system = System::new(Arc::clone(&store), &model).await;
                    for step in &steps {
                        let before = model.clone();
                        let expected = model.step(step);
                        system.step(&before, step, &expected).await?;
                        system.check(&model).await?;
                        if let Some(seen) = &seen {
                            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Ok(())
                })
            },
        )
    });
    if let Err(e) = result {
        panic!("the engine diverged from the model: {e}");
    }
}
