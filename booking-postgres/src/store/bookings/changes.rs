//! Transitions and reschedules of a stored booking: one statement when the row is still
//! as read (two round trips with the read), else a transaction that decides under the row
//! lock.

use booking_core::domain::{Booking, BookingId, TimeRange, Transition};
use booking_core::events::DomainEvent;
use booking_core::{Entity, Error};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::types::Json;

use super::sql::{self, RESCHEDULE_FAST, SELECT_BOOKING, TRANSITION_FAST};
use super::{is_microsecond_exact, lock_booking, release_expired_holds};
use crate::error::PgError;
use crate::rows::{self, pg_range};
use crate::store::{PgStore, outbox};

impl PgStore {
    /// A transition in two round trips when nothing else changes the booking meanwhile:
    /// read it, plan the change with the status machine, and write the change and its
    /// event in one statement that applies only if the row is still as read. Anything
    /// else (the plan needs a free slot, the plan is refused, the row changed, instants
    /// that are not whole microseconds) goes through [`PgStore::transition_tx`], which
    /// decides under the row lock.
    pub(super) async fn transition_once(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let (current, db_now) = self.read_booking(id).await?;
        self.transition_from(&current, transition, self.clock.pick(now, db_now))
            .await
    }

    /// The booking as stored now ([`Error::NotFound`] if there is none), and the database's
    /// time read with it.
    async fn read_booking(&self, id: BookingId) -> Result<(Booking, DateTime<Utc>), PgError> {
        let row = sqlx::query(SELECT_BOOKING)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| PgError::Domain(Error::NotFound(Entity::Booking)))?;
        Ok((rows::booking(&row)?, row.try_get("db_now")?))
    }

    /// [`PgStore::transition_once`] from a booking already read: one statement when the row
    /// is still as read. On the database's clock the plan is made at `now` (the caller's,
    /// or the database's time read with `current`), and the statement applies only if the
    /// booking's effective status at the database's time is the one planned from; otherwise
    /// [`PgStore::transition_tx`] decides again on the database's time.
    pub(super) async fn transition_from(
        &self,
        current: &Booking,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let id = current.id;
        let plan = match current.plan(transition, now) {
            Ok(plan) if !plan.requires_free_slot && is_microsecond_exact(&plan.booking) => plan,
            _ => return self.transition_tx(id, transition, now).await,
        };
        let event = DomainEvent::new(plan.event, &plan.booking, None);
        let next = &plan.booking;
        let row = sqlx::query(TRANSITION_FAST)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.status.as_str())
            .bind(next.hold_expires_at)
            .bind(self.clock.bind(next.updated_at))
            .bind(current.status.as_str())
            .bind(current.updated_at)
            .bind(current.range.start())
            .bind(current.range.end())
            .bind(current.hold_expires_at)
            .bind(event.id.as_uuid())
            .bind(event.kind.as_str())
            .bind(event.occurred_at)
            .bind(Json(&event))
            .bind(current.effective_status(now).as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => rows::booking(&row),
            // Changed since it was read: decide again under the row lock.
            None => self.transition_tx(id, transition, now).await,
        }
    }

    async fn transition_tx(
        &self,
        id: BookingId,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        let now = self.clock.pick(now, db_now);
        let plan = current.plan(transition, now)?;
        if plan.requires_free_slot {
            release_expired_holds(
                &mut tx,
                current.professional_id,
                &plan.booking.blocked,
                Some(now),
                id,
            )
            .await?;
        }
        let next = &plan.booking;
        let row = sqlx::query(sql::TRANSITION_LOCKED)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.status.as_str())
            .bind(next.hold_expires_at)
            .bind(next.updated_at)
            .fetch_one(&mut *tx)
            .await?;
        let updated = rows::booking(&row)?;
        outbox::record(&mut tx, &[DomainEvent::new(plan.event, &updated, None)]).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// A reschedule in two round trips when nothing is in the way: read the booking, plan
    /// the move, and write it with its event in one statement that applies only if the row
    /// is still as read and no hold that ran out overlaps the new range. Otherwise (or for
    /// a refused plan) [`PgStore::reschedule_tx`] decides under the row lock.
    pub(super) async fn reschedule_once(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let (current, db_now) = self.read_booking(id).await?;
        self.reschedule_from(&current, range, blocked, self.clock.pick(now, db_now))
            .await
    }

    /// [`PgStore::reschedule_once`] from a booking already read.
    pub(super) async fn reschedule_from(
        &self,
        current: &Booking,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let id = current.id;
        let plan = match current.plan_reschedule(range, blocked, now) {
            Ok(plan) if is_microsecond_exact(&plan.booking) => plan,
            _ => return self.reschedule_tx(id, range, blocked, now).await,
        };
        let event = DomainEvent::new(plan.event, &plan.booking, Some(current.range));
        let next = &plan.booking;
        let row = sqlx::query(RESCHEDULE_FAST)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.range.start())
            .bind(next.range.end())
            .bind(pg_range(&next.blocked))
            .bind(self.clock.bind(next.updated_at))
            .bind(current.status.as_str())
            .bind(current.updated_at)
            .bind(current.range.start())
            .bind(current.range.end())
            .bind(current.hold_expires_at)
            .bind(self.clock.bind(now))
            .bind(event.id.as_uuid())
            .bind(event.kind.as_str())
            .bind(event.occurred_at)
            .bind(Json(&event))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => rows::booking(&row),
            None => self.reschedule_tx(id, range, blocked, now).await,
        }
    }

    async fn reschedule_tx(
        &self,
        id: BookingId,
        range: TimeRange,
        blocked: TimeRange,
        now: DateTime<Utc>,
    ) -> Result<Booking, PgError> {
        let mut tx = self.pool.begin().await?;
        let (current, db_now) = lock_booking(&mut tx, id).await?;
        let now = self.clock.pick(now, db_now);
        let plan = current.plan_reschedule(range, blocked, now)?;
        release_expired_holds(
            &mut tx,
            current.professional_id,
            &plan.booking.blocked,
            Some(now),
            id,
        )
        .await?;
        let next = &plan.booking;
        // The exclusion constraint compares the new blocked range with every other active
        // booking; the row's own old version is replaced, so it never counts.
        let row = sqlx::query(sql::RESCHEDULE_LOCKED)
            .bind(current.professional_id.as_uuid())
            .bind(id.as_uuid())
            .bind(next.range.start())
            .bind(next.range.end())
            .bind(pg_range(&next.blocked))
            .bind(next.updated_at)
            .fetch_one(&mut *tx)
            .await?;
        let updated = rows::booking(&row)?;
        outbox::record(
            &mut tx,
            &[DomainEvent::new(plan.event, &updated, Some(current.range))],
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }
}
