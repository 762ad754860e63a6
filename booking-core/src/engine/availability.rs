//! The schedule use cases of [`BookingEngine`]: setting and reading schedules, the slots
//! on offer and whether a range may be booked at all.

use chrono::{DateTime, Duration, Utc};

use super::{BookingEngine, EngineConfig};
use crate::auth::Actor;
use crate::clock::Clock;
use crate::domain::{Professional, ProfessionalId, TimeRange};
use crate::error::{Entity, Error, Result};
use crate::schedule::Schedule;
use crate::store::Store;

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// Replaces a professional's schedule (admin or the professional).
    pub async fn set_schedule(
        &self,
        actor: Actor,
        id: ProfessionalId,
        schedule: Schedule,
    ) -> Result<Schedule> {
        self.may_manage_professional(actor, id).await?;
        self.store.put_schedule(id, &schedule).await?;
        Ok(schedule)
    }

    /// A professional's schedule.
    pub async fn get_schedule(&self, id: ProfessionalId) -> Result<Schedule> {
        self.get_professional(id).await?;
        self.store
            .get_schedule(id)
            .await?
            .ok_or(Error::NotFound(Entity::Schedule))
    }

    /// Bookable slots of `duration` inside `window` (at most 31 days). An inactive
    /// professional or one without a schedule has none.
    pub async fn availability(
        &self,
        id: ProfessionalId,
        window: TimeRange,
        duration: Duration,
    ) -> Result<Vec<TimeRange>> {
        let now = self.now();
        let snapshot = self
            .store
            .availability_snapshot(id, window, now)
            .await?
            .ok_or(Error::NotFound(Entity::Professional))?;
        let Some(schedule) = snapshot.schedule else {
            // Validate the query all the same, so bad input is reported consistently.
            Schedule::always_open(snapshot.professional.timezone).available_slots(
                &window,
                duration,
                now,
                &[],
            )?;
            return Ok(Vec::new());
        };
        if !snapshot.professional.is_active {
            schedule.available_slots(&window, duration, now, &[])?;
            return Ok(Vec::new());
        }
        schedule.available_slots(&window, duration, now, &snapshot.blocked)
    }

    /// The seam where "may this range be booked at all" is decided: the professional is
    /// active, has a schedule whose working hours, notice and horizon admit `range`, and the
    /// range has a sane shape. Returns the blocked range (the range widened by the
    /// schedule's buffers). Conflicts with other bookings are the store's job.
    pub async fn check_bookable(
        &self,
        professional: &Professional,
        range: &TimeRange,
        now: DateTime<Utc>,
    ) -> Result<TimeRange> {
        let schedule = self.schedule_if_active(professional).await?;
        self.check_bookable_with(professional, schedule.as_ref(), range, now)
    }

    /// The professional's schedule when they accept bookings (an inactive professional's
    /// is never looked at).
    pub(super) async fn schedule_if_active(
        &self,
        professional: &Professional,
    ) -> Result<Option<Schedule>> {
        if professional.is_active {
            self.store.get_schedule(professional.id).await
        } else {
            Ok(None)
        }
    }

    /// The range's shape: whole minutes, at most [`EngineConfig::max_booking_length`].
    fn shape_ok(config: &EngineConfig, range: &TimeRange) -> Result<()> {
        if !range.is_minute_aligned() {
            return Err(Error::invalid(
                "start",
                "start and end must be whole minutes",
            ));
        }
        if range.duration() > config.max_booking_length {
            return Err(Error::invalid(
                "end",
                format!(
                    "a booking lasts at most {} minutes",
                    config.max_booking_length.num_minutes()
                ),
            ));
        }
        Ok(())
    }

    /// [`BookingEngine::check_bookable`] over a schedule already read (`None`: the
    /// professional has none). Pure: reads nothing.
    pub fn check_bookable_with(
        &self,
        professional: &Professional,
        schedule: Option<&Schedule>,
        range: &TimeRange,
        now: DateTime<Utc>,
    ) -> Result<TimeRange> {
        Self::shape_ok(&self.config, range)?;
        if !professional.is_active {
            return Err(Error::OutsideAvailability(
                "the professional is not accepting bookings".into(),
            ));
        }
        let schedule = schedule.ok_or_else(|| {
            Error::OutsideAvailability("the professional has no schedule yet".into())
        })?;
        // The range must be a slot availability would offer (working hours, notice,
        // horizon, a bookable length, the step grid); bookings are not looked at here.
        let offered = schedule
            .available_slots(range, range.duration(), now, &[])
            .map_err(|_| {
                Error::OutsideAvailability(format!(
                    "bookings last from {} to {} whole minutes",
                    crate::schedule::MIN_SLOT_MINUTES,
                    crate::schedule::MAX_SLOT_MINUTES
                ))
            })?;
        if offered.as_slice() != [*range] {
            // Refused: name the reason. Hours, notice and horizon first, else the grid.
            schedule.admits(range, now)?;
            return Err(Error::OutsideAvailability(format!(
                "bookings start on the professional's {}-minute slot grid, counted from the \
                 start of working hours",
                schedule.slot_step_minutes
            )));
        }
        range.widen(schedule.buffer_before(), schedule.buffer_after())
    }
}
