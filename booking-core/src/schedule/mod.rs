//! Professionals' working hours and the slots they offer.
//!
//! A [`Schedule`] holds weekly rules and per-date overrides as wall-clock times in the
//! professional's IANA zone, plus the booking policy (buffers, minimum notice, horizon,
//! slot step). It is built from the raw request body [`ScheduleInput`] by
//! [`ScheduleInput::validate`], which reports every bad field with its path.
//!
//! # From local rules to UTC
//!
//! For every local date the applicable intervals are its override's (an empty override
//! is a day off) or else the weekly ones for its weekday. Each interval `[start, end)`
//! on date `D` becomes a UTC range:
//!
//! - it **starts** at the earliest real instant whose wall time is at or after
//!   `D start`: a repeated wall time (fall-back) starts at its *first* occurrence, a
//!   wall time inside a spring-forward gap at the first valid instant after the gap;
//! - it **ends** at the latest instant before which every wall time is before `D end`:
//!   a repeated wall time ends at its *second* occurrence, a wall time inside a gap at
//!   the gap start (the same instant as the gap's end);
//! - `24:00` is `00:00` of the next date.
//!
//! So the working interval holds every real instant whose wall time lies in
//! `[start, end)`, each exactly once: `01:00-04:00` in Berlin on the spring-forward day
//! is two real hours (`01:00-02:00` CET, `03:00-04:00` CEST), `01:00-03:00` in New York
//! on the fall-back day is three (`01:00` EDT to `03:00` EST). An interval that lies
//! wholly in a gap is empty, so a skipped day (Pacific/Apia, 2011-12-30) has no working
//! hours at all. (When only one boundary of an interval falls into a repeated hour, the
//! range runs continuously from the first occurrence of its start to the second of its
//! end.) Zones with half-hour DST shifts (Australia/Lord_Howe) or odd offsets
//! (Asia/Kathmandu, +05:45) need no special handling.
//!
//! Ranges that touch or overlap in UTC form one **working interval**: touching
//! intervals of one day, `22:00-24:00` with the next day's `00:00-02:00`, or two
//! intervals that overlap in UTC around a fall-back.
//!
//! # Slots
//!
//! [`Schedule::available_slots`] offers `[s, s + duration)` when `s` is on the step
//! grid of the local interval it starts in (`interval start + k × step`, counted in real
//! elapsed minutes from that interval's UTC start, so a DST change inside the interval
//! does not shift the grid), the slot lies inside one working interval, respects notice
//! and horizon, lies inside the query window, and the slot widened by the buffers
//! overlaps no blocked range. Buffers may reach outside working hours. Because the grid
//! never depends on the query window, the slots of a window are exactly the slots of
//! any larger window that lie inside it.
//!
//! [`Schedule::admits`] checks a requested range the same way, minus the grid and the
//! bookings.

mod local_time;
mod model;
mod slots;
mod validate;

pub use model::{
    DateOverride, LocalInterval, LocalTime, Schedule, WeeklyInterval, parse_weekday, weekday_name,
};
pub use slots::{MAX_QUERY_DAYS, MAX_SLOT_MINUTES, MIN_SLOT_MINUTES};
pub use validate::{
    BUFFER_RANGE, DateOverrideInput, HORIZON_DAYS_RANGE, LocalIntervalInput, MAX_OVERRIDES,
    MAX_WEEKLY_INTERVALS, MIN_NOTICE_RANGE, SLOT_STEP_RANGE, ScheduleInput, WeeklyIntervalInput,
};
