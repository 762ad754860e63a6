//! A plain reference model of the engine and a `proptest-state-machine` run that checks a
//! store against it after every step.
//!
//! The model knows two professionals (Berlin and New York) with their own schedules
//! (working hours or open around the clock, slot step, minimum notice, buffers), two
//! clients, bookings on a 15-minute grid, the clock, holds and their expiry (lazy, when a
//! write needs the slot, and by the sweep), the outbox events of every change, and
//! idempotent requests: replays, attempts in flight, keys reused for another request,
//! attempts that crash (after creating their booking, or before answering) and are
//! retried after their lease ran out, and keys reused after their record's TTL.
//!
//! Retries are drawn from the requests made earlier in the sequence (grouped by what they
//! will meet: a lease in flight or run out, a record expired or answered), so each of
//! these hard cases happens in most sequences; [`HardCases`] counts them per sequence and
//! [`run_against`] fails if one of them became rare.
//!
//! After each step the engine's answer, the outbox events it recorded and its view of
//! every booking (stored and effective status, ranges, owner) must equal the model's, and
//! no two active bookings may overlap.
//!
//! Both zones keep one UTC offset over the days a sequence covers (the fixture clock starts
//! on 2027-03-01, weeks before either zone's DST change), so the model turns an instant into
//! a local wall time by adding that offset; `booking-core/tests/schedule_properties.rs`
//! covers the DST days.

mod run;
mod system;
mod transitions;

use std::collections::BTreeMap;

use crate::domain::BookingStatus;
use crate::events::EventKind;

pub use run::{run_against, run_sequence};
pub use transitions::EngineModel;

/// Steps per sequence: long enough for a key to be used, crash, time out and be retried.
pub const STEPS: std::ops::Range<usize> = 20..50;
/// Minutes of one grid step.
pub const STEP: i64 = 15;
/// Bookings start this many minutes after t0, on the grid.
pub const ORIGIN: i64 = 60;
/// Hold length in hold mode, minutes.
pub const HOLD: i64 = 15;
/// The idempotency lease of the model's engine, minutes.
pub const LEASE: i64 = 2;
/// The idempotency record TTL of the model's engine, minutes.
pub const KEY_TTL: i64 = 45;
/// Professionals in the model: 0 works in Berlin, 1 in New York.
pub const PROS: usize = 2;
/// Clients in the model.
pub const CLIENTS: usize = 2;
/// The zone of each professional.
pub const ZONES: [chrono_tz::Tz; PROS] = [chrono_tz::Europe::Berlin, chrono_tz::America::New_York];
/// Each zone's wall time at t0 (2027-03-01T08:00Z), minutes after local midnight: 09:00
/// in Berlin (UTC+1), 03:00 in New York (UTC-5).
pub const LOCAL_AT_T0: [i64; PROS] = [9 * 60, 3 * 60];

/// A request for a booking: who books whom, when (grid slots after [`ORIGIN`]), how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    /// The client (index).
    pub client: usize,
    /// The professional (index).
    pub pro: usize,
    /// Start slot.
    pub slot: i64,
    /// Length in slots.
    pub len: i64,
}

/// Who acts on a booking in a cancel or reschedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The booking's client.
    Owner,
    /// The other client (does not see the booking).
    OtherClient,
    /// The booking's professional (may cancel, may not reschedule).
    Professional,
}

/// One step of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Book `request`, optionally through idempotency key `key` of the client's scope.
    Create {
        /// What is asked for.
        request: Request,
        /// Idempotency key number, if any.
        key: Option<u8>,
        /// The attempt crashes before it completes its key (for the answered path: only
        /// when there is an answer left to store, i.e. a refusal or an earlier booking).
        crash: bool,
        /// Through `begin_booking_request` + `create_booking_answered` (the server's
        /// path, answer stored with the booking) instead of `begin_request` +
        /// `create_booking` + `complete_request`.
        answered: bool,
    },
    /// Cancel the n-th booking (modulo the count).
    Cancel {
        /// Which booking.
        n: usize,
        /// Who cancels.
        by: Party,
    },
    /// Confirm (pay) the n-th booking.
    Confirm(usize),
    /// Move the n-th booking to start at `slot`.
    Reschedule {
        /// Which booking.
        n: usize,
        /// The new start slot.
        slot: i64,
        /// Who moves it.
        by: Party,
    },
    /// Advance the clock by minutes.
    Advance(i64),
    /// Run the expiry sweep.
    Sweep,
    /// Purge expired idempotency records (changes nothing the model can see).
    Purge,
}

/// A professional's schedule in the model: the same hours every day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSchedule {
    /// Local working intervals `[start, end)` in minutes after midnight, disjoint and not
    /// touching; `None`: open around the clock.
    pub hours: Option<Vec<(i64, i64)>>,
    /// Slot step, minutes (divides a day).
    pub step: i64,
    /// Minimum notice, minutes.
    pub notice: i64,
    /// Buffer before, minutes.
    pub buffer_before: i64,
    /// Buffer after, minutes.
    pub buffer_after: i64,
}

/// A booking in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBooking {
    /// The request that made it (slot updated by reschedules).
    pub request: Request,
    /// Stored status (holds that ran out are seen as expired through `effective`).
    pub status: BookingStatus,
    /// Hold deadline in minutes after t0.
    pub hold_until: Option<i64>,
}

/// What the model remembers of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The request the key was first used for.
    pub request: Request,
    /// When the record was created, minutes after t0 (the request reference's
    /// `first_seen`).
    pub created: i64,
    /// When the record expires, minutes after t0.
    pub expires: i64,
    /// Answered, or held by an attempt that crashed.
    pub state: KeyState,
}

/// The state of an idempotency key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Completed with this outcome: `Ok(booking index)` or `Err(())` for a refusal.
    Done(Result<usize, ()>),
    /// An attempt crashed while holding the key until `locked_until` (minutes).
    Crashed {
        /// Lease end in minutes after t0.
        locked_until: i64,
    },
}

/// How often each hard case of the idempotency protocol happened in one sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardCases {
    /// A completed request replayed.
    pub replay: u32,
    /// A retry while another attempt held the lease.
    pub in_flight: u32,
    /// A key reused for another request within its TTL.
    pub mismatch: u32,
    /// A retry that took over a crashed attempt's lease (with or without a booking).
    pub takeover: u32,
    /// A retry that took over and found the booking the crashed attempt had created.
    pub crash_retry: u32,
    /// A key used again after its record expired: a new request.
    pub ttl_expiry: u32,
}

impl HardCases {
    /// The counters with their names.
    pub fn named(&self) -> [(&'static str, u32); 6] {
        [
            ("replay", self.replay),
            ("in-flight", self.in_flight),
            ("mismatch", self.mismatch),
            ("lease takeover", self.takeover),
            ("crash-retry", self.crash_retry),
            ("TTL expiry", self.ttl_expiry),
        ]
    }
}

/// The whole reference state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelState {
    /// Holds (payments configured) or instant confirmation.
    pub holds: bool,
    /// Each professional's schedule.
    pub schedules: Vec<ModelSchedule>,
    /// Clock, minutes after t0.
    pub now: i64,
    /// Bookings in creation order.
    pub bookings: Vec<ModelBooking>,
    /// Idempotency records by (client, key).
    pub keys: BTreeMap<(usize, u8), KeyRecord>,
    /// The booking each key's current record created.
    pub made: BTreeMap<(usize, u8), usize>,
    /// Every outbox event so far: kind and booking index, in order.
    pub events: Vec<(EventKind, usize)>,
    /// Hard cases met so far.
    pub hard: HardCases,
}

/// A refusal in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelError {
    /// Slot taken.
    Taken,
    /// Outside availability (hours, grid, notice).
    Outside,
    /// Illegal status transition.
    State,
    /// The actor does not see the booking.
    NotFound,
    /// The actor sees the booking but may not do this.
    Forbidden,
}

/// What an idempotent create must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemExpect {
    /// Runs: creates booking `Ok(i)`, finds the earlier attempt's (`existing`), or is
    /// refused.
    Started {
        /// The outcome.
        outcome: Result<usize, ()>,
        /// Whether the booking is the one an earlier (crashed) attempt created.
        existing: bool,
        /// Whether the attempt took over an earlier attempt's record (so the engine has
        /// no fresh context for it).
        takeover: bool,
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

impl ModelSchedule {
    /// Whether a booking `[start, start + len)` (minutes after t0) of a professional in
    /// a zone whose wall time at t0 is `local_at_t0` may be booked at `now`: notice, then
    /// one working interval, on its step grid.
    fn admits(&self, local_at_t0: i64, start: i64, len: i64, now: i64) -> bool {
        if start < now + self.notice {
            return false;
        }
        let minute_of_day = (local_at_t0 + start).rem_euclid(1440);
        match &self.hours {
            // Every day's 00:00-24:00 touches the next: one endless interval whose grid
            // starts at each local midnight (the step divides a day).
            None => minute_of_day % self.step == 0,
            Some(intervals) => intervals.iter().any(|&(a, b)| {
                a <= minute_of_day
                    && minute_of_day + len <= b
                    && (minute_of_day - a) % self.step == 0
            }),
        }
    }
}

impl ModelState {
    /// The first minute of `slot`, after t0.
    pub fn start(slot: i64) -> i64 {
        ORIGIN + slot * STEP
    }

    /// The blocked range of `request` in minutes after t0.
    pub fn blocked(&self, request: &Request) -> (i64, i64) {
        let s = &self.schedules[request.pro];
        let start = Self::start(request.slot);
        (
            start - s.buffer_before,
            start + request.len * STEP + s.buffer_after,
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

    /// The bookings of `request`'s professional (other than `except`) whose blocked range
    /// overlaps `request`'s; `active` selects the active ones, else the holds that ran out
    /// but are still stored as holds.
    fn in_the_way(&self, request: &Request, except: Option<usize>, active: bool) -> Vec<usize> {
        let (s, e) = self.blocked(request);
        (0..self.bookings.len())
            .filter(|&i| {
                let b = &self.bookings[i];
                let (bs, be) = self.blocked(&b.request);
                let stale = b.status == BookingStatus::PendingPayment && !self.is_active(b);
                Some(i) != except
                    && b.request.pro == request.pro
                    && s < be
                    && bs < e
                    && if active { self.is_active(b) } else { stale }
            })
            .collect()
    }

    fn free(&self, request: &Request, except: Option<usize>) -> bool {
        self.in_the_way(request, except, true).is_empty()
    }

    fn admits(&self, request: &Request) -> bool {
        self.schedules[request.pro].admits(
            LOCAL_AT_T0[request.pro],
            Self::start(request.slot),
            request.len * STEP,
            self.now,
        )
    }

    /// A write takes `request`'s slot: holds that ran out in its way are stored as
    /// expired first, each with its event.
    fn release(&mut self, request: &Request, except: Option<usize>) {
        for i in self.in_the_way(request, except, false) {
            self.bookings[i].status = BookingStatus::Expired;
            self.events.push((EventKind::BookingExpired, i));
        }
    }

    /// The outcome of a plain (non-idempotent) create: the new booking's index or the error.
    fn create(&mut self, request: &Request) -> Result<usize, ModelError> {
        if !self.admits(request) {
            return Err(ModelError::Outside);
        }
        if !self.free(request, None) {
            return Err(ModelError::Taken);
        }
        self.release(request, None);
        self.bookings.push(ModelBooking {
            request: *request,
            status: if self.holds {
                BookingStatus::PendingPayment
            } else {
                BookingStatus::Confirmed
            },
            hold_until: self.holds.then_some(self.now + HOLD),
        });
        let i = self.bookings.len() - 1;
        self.events.push((EventKind::BookingCreated, i));
        Ok(i)
    }

    /// An idempotent create through key `k` of the request's client.
    fn create_keyed(
        &mut self,
        request: &Request,
        k: u8,
        crash: bool,
        answered: bool,
    ) -> IdemExpect {
        let id = (request.client, k);
        let record = self.keys.get(&id).cloned();
        let live = record.clone().filter(|r| r.expires > self.now);
        if let Some(r) = &live {
            if r.request != *request {
                self.hard.mismatch += 1;
                return IdemExpect::Mismatch;
            }
            match r.state {
                KeyState::Done(outcome) => {
                    self.hard.replay += 1;
                    return IdemExpect::Replay(outcome);
                }
                KeyState::Crashed { locked_until } if locked_until > self.now => {
                    self.hard.in_flight += 1;
                    return IdemExpect::InFlight;
                }
                KeyState::Crashed { .. } => {}
            }
        }
        // Started: fresh, over an expired record (a new request), or taking over a crashed
        // attempt's lease (the same request, which finds the booking it made, if any).
        let takeover = live.is_some();
        if record.is_some() && !takeover {
            self.hard.ttl_expiry += 1;
        }
        let existing = if takeover {
            self.hard.takeover += 1;
            self.made.get(&id).copied()
        } else {
            self.made.remove(&id);
            None
        };
        if existing.is_some() {
            self.hard.crash_retry += 1;
        }
        let outcome = match existing {
            Some(i) => Ok(i),
            None => self.create(request),
        };
        if let Ok(i) = outcome {
            self.made.insert(id, i);
        }
        // On the answered path a new booking's answer is stored with it: nothing left to
        // crash before.
        let answered_with_booking = answered && outcome.is_ok() && existing.is_none();
        let state = if crash && !answered_with_booking {
            KeyState::Crashed {
                locked_until: self.now + LEASE,
            }
        } else {
            KeyState::Done(outcome.map_err(|_| ()))
        };
        self.keys.insert(
            id,
            KeyRecord {
                request: *request,
                created: live.as_ref().map_or(self.now, |r| r.created),
                expires: live.as_ref().map_or(self.now + KEY_TTL.max(LEASE), |r| {
                    r.expires.max(self.now + LEASE)
                }),
                state,
            },
        );
        IdemExpect::Started {
            outcome: outcome.map_err(|_| ()),
            existing: existing.is_some(),
            takeover,
        }
    }

    /// Whether `by` sees the booking: the other client does not.
    fn sees(by: Party) -> Result<(), ModelError> {
        match by {
            Party::OtherClient => Err(ModelError::NotFound),
            Party::Owner | Party::Professional => Ok(()),
        }
    }

    fn cancel(&mut self, i: usize, by: Party) -> Result<(), ModelError> {
        Self::sees(by)?;
        let b = &self.bookings[i];
        // Cancelling a cancelled booking is an idempotent success.
        if b.status == BookingStatus::Cancelled {
            return Ok(());
        }
        if !self.is_active(b) {
            return Err(ModelError::State);
        }
        self.bookings[i].status = BookingStatus::Cancelled;
        self.bookings[i].hold_until = None;
        self.events.push((EventKind::BookingCancelled, i));
        Ok(())
    }

    fn confirm(&mut self, i: usize) -> Result<(), ModelError> {
        let b = self.bookings[i].clone();
        match self.effective(&b) {
            BookingStatus::PendingPayment => {}
            BookingStatus::Expired if self.free(&b.request, Some(i)) => {
                self.release(&b.request, Some(i));
            }
            BookingStatus::Expired => return Err(ModelError::Taken),
            _ => return Err(ModelError::State),
        }
        self.bookings[i].status = BookingStatus::Confirmed;
        self.bookings[i].hold_until = None;
        self.events.push((EventKind::BookingConfirmed, i));
        Ok(())
    }

    fn reschedule(&mut self, i: usize, slot: i64, by: Party) -> Result<(), ModelError> {
        Self::sees(by)?;
        if by != Party::Owner {
            return Err(ModelError::Forbidden);
        }
        let b = &self.bookings[i];
        let moved = Request { slot, ..b.request };
        if !self.is_active(b) {
            return Err(ModelError::State);
        }
        if !self.admits(&moved) {
            return Err(ModelError::Outside);
        }
        if !self.free(&moved, Some(i)) {
            return Err(ModelError::Taken);
        }
        self.release(&moved, Some(i));
        self.bookings[i].request = moved;
        self.events.push((EventKind::BookingRescheduled, i));
        Ok(())
    }

    /// Applies a step and returns what the engine must answer.
    pub fn step(&mut self, step: &Step) -> Expected {
        match *step {
            Step::Create {
                request, key: None, ..
            } => Expected::Create(self.create(&request)),
            Step::Create {
                request,
                key: Some(k),
                crash,
                answered,
            } => Expected::Idempotency(self.create_keyed(&request, k, crash, answered)),
            Step::Cancel { n, by } => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => Expected::Change(i, self.cancel(i, by)),
            },
            Step::Confirm(n) => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => Expected::Change(i, self.confirm(i)),
            },
            Step::Reschedule { n, slot, by } => match self.pick(n) {
                None => Expected::Nothing,
                Some(i) => Expected::Change(i, self.reschedule(i, slot, by)),
            },
            Step::Advance(m) => {
                self.now += m;
                Expected::Nothing
            }
            Step::Sweep => {
                let mut due = Vec::new();
                for i in 0..self.bookings.len() {
                    let b = &self.bookings[i];
                    if b.status == BookingStatus::PendingPayment && !self.is_active(b) {
                        self.bookings[i].status = BookingStatus::Expired;
                        self.events.push((EventKind::BookingExpired, i));
                        due.push(i);
                    }
                }
                Expected::Swept(due)
            }
            Step::Purge => Expected::Nothing,
        }
    }

    fn pick(&self, n: usize) -> Option<usize> {
        (!self.bookings.is_empty()).then(|| n % self.bookings.len())
    }
}
