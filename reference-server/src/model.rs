//! The JSON shapes of the API (API.md), with their OpenAPI schemas.
//!
//! Response types are built from the engine's domain types; request types are either
//! the engine's own input types (documented here by a mirror `*Doc` schema) or small
//! structs parsed here.

use booking_core::{Booking, BookingStatus, Client, Professional, TimeRange};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An amount of money in minor units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoneyView {
    /// Amount in minor units (cents).
    #[schema(minimum = 0)]
    pub amount_cents: i64,
    /// ISO 4217 code in lower case.
    #[schema(example = "usd", pattern = "^[a-z]{3}$")]
    pub currency: String,
}

/// Booking status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    /// A hold that blocks the slot until `hold_expires_at`.
    PendingPayment,
    /// Booked.
    Confirmed,
    /// Cancelled; the slot is free.
    Cancelled,
    /// The hold ran out; the slot is free.
    Expired,
}

impl From<BookingStatus> for StatusView {
    fn from(s: BookingStatus) -> Self {
        match s {
            BookingStatus::PendingPayment => StatusView::PendingPayment,
            BookingStatus::Confirmed => StatusView::Confirmed,
            BookingStatus::Cancelled => StatusView::Cancelled,
            BookingStatus::Expired => StatusView::Expired,
        }
    }
}

/// Payment details of a booking (only when payments are configured).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    /// Always `stripe`.
    pub provider: String,
    /// The Stripe PaymentIntent id.
    pub payment_intent_id: String,
    /// The PaymentIntent's client secret, for the client's payment form.
    pub client_secret: String,
}

/// A booking.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingView {
    /// Booking id.
    pub id: Uuid,
    /// The booked professional.
    pub professional_id: Uuid,
    /// The booking client.
    pub client_id: Uuid,
    /// Start (inclusive), UTC.
    pub start: DateTime<Utc>,
    /// End (exclusive), UTC.
    pub end: DateTime<Utc>,
    /// Status.
    pub status: StatusView,
    /// `hourly_rate_cents * minutes / 60`, rounded half up.
    pub price: MoneyView,
    /// When a `pending_payment` hold stops blocking the slot.
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// Payment details; `null` while payments are not configured.
    pub payment: Option<PaymentView>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<&Booking> for BookingView {
    fn from(b: &Booking) -> Self {
        Self {
            id: b.id.as_uuid(),
            professional_id: b.professional_id.as_uuid(),
            client_id: b.client_id.as_uuid(),
            start: b.range.start(),
            end: b.range.end(),
            status: b.status.into(),
            price: MoneyView {
                amount_cents: b.price.amount_cents,
                currency: b.price.currency.as_str().to_owned(),
            },
            hold_expires_at: b.hold_expires_at,
            payment: None,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A page of bookings, ordered by `start`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingList {
    /// The bookings.
    pub data: Vec<BookingView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A point on Earth.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct LocationView {
    /// Latitude in degrees.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    /// Longitude in degrees.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lng: f64,
}

/// A professional.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfessionalView {
    /// Professional id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Lower-case category slug.
    #[schema(example = "massage")]
    pub category: String,
    /// Where the professional works.
    pub location: LocationView,
    /// Hourly rate in minor units of `currency`.
    #[schema(minimum = 0)]
    pub hourly_rate_cents: i64,
    /// ISO 4217 code in lower case.
    #[schema(example = "eur")]
    pub currency: String,
    /// IANA time zone.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// Inactive professionals are hidden from search and cannot be booked.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<&Professional> for ProfessionalView {
    fn from(p: &Professional) -> Self {
        Self {
            id: p.id.as_uuid(),
            name: p.name.clone(),
            category: p.category.as_str().to_owned(),
            location: LocationView {
                lat: p.location.lat,
                lng: p.location.lng,
            },
            hourly_rate_cents: p.hourly_rate_cents,
            currency: p.currency.as_str().to_owned(),
            timezone: p.timezone.name().to_owned(),
            is_active: p.is_active,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A newly created professional with their API token (shown only this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedProfessional {
    /// The professional.
    #[serde(flatten)]
    pub professional: ProfessionalView,
    /// The professional's bearer token; only a hash is stored.
    pub api_token: String,
}

/// A page of professionals, ordered by `(hourly_rate_cents, id)`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfessionalList {
    /// The professionals.
    pub data: Vec<ProfessionalView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A newly created client with their API token (shown only this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedClient {
    /// Client id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The client's bearer token; only a hash is stored.
    pub api_token: String,
}

impl CreatedClient {
    /// The client with its token.
    pub fn new(c: &Client, api_token: String) -> Self {
        Self {
            id: c.id.as_uuid(),
            name: c.name.clone(),
            email: c.email.clone(),
            created_at: c.created_at,
            api_token,
        }
    }
}

/// A bookable slot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotView {
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
}

impl From<&TimeRange> for SlotView {
    fn from(r: &TimeRange) -> Self {
        Self {
            start: r.start(),
            end: r.end(),
        }
    }
}

/// Bookable slots, ascending.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Availability {
    /// The slots.
    pub slots: Vec<SlotView>,
}

/// Liveness or readiness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// `POST /v1/bookings` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBookingBody {
    /// The professional to book.
    #[schema(value_type = Uuid)]
    pub professional_id: String,
    /// Start, RFC 3339 (whole minutes).
    #[schema(value_type = DateTime<Utc>)]
    pub start: String,
    /// End, RFC 3339 (whole minutes), after `start`.
    #[schema(value_type = DateTime<Utc>)]
    pub end: String,
}

/// `POST /v1/bookings/{id}/reschedule` body: the new range (same duration).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// New start, RFC 3339.
    #[schema(value_type = DateTime<Utc>)]
    pub start: String,
    /// New end, RFC 3339.
    #[schema(value_type = DateTime<Utc>)]
    pub end: String,
}

// ---- documentation mirrors of the engine's input and schedule types --------------------

/// `POST /v1/clients` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = NewClient)]
#[allow(dead_code)]
pub struct NewClientDoc {
    /// Display name (1..=200 characters after trimming).
    pub name: String,
    /// E-mail address.
    #[schema(example = "lin@example.com")]
    pub email: String,
}

/// A point on Earth (input).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LocationInput)]
#[allow(dead_code)]
pub struct LocationDoc {
    /// Latitude in degrees, `[-90, 90]`.
    pub lat: f64,
    /// Longitude in degrees, `[-180, 180]`.
    pub lng: f64,
}

/// `POST /v1/professionals` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = NewProfessional)]
#[allow(dead_code)]
pub struct NewProfessionalDoc {
    /// Display name.
    pub name: String,
    /// Lower-case slug (a-z, 0-9, -).
    #[schema(example = "massage")]
    pub category: String,
    /// Location.
    pub location: LocationDoc,
    /// Hourly rate in minor units, not negative.
    pub hourly_rate_cents: i64,
    /// ISO 4217 code.
    #[schema(example = "eur")]
    pub currency: String,
    /// IANA time zone.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// Defaults to `true`.
    pub is_active: Option<bool>,
}

/// `PATCH /v1/professionals/{id}` body: any subset of the fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ProfessionalPatch)]
#[allow(dead_code)]
pub struct ProfessionalPatchDoc {
    /// New name.
    pub name: Option<String>,
    /// New category slug.
    pub category: Option<String>,
    /// New location.
    pub location: Option<LocationDoc>,
    /// New hourly rate.
    pub hourly_rate_cents: Option<i64>,
    /// New currency.
    pub currency: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// Day of the week.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(as = Weekday)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
pub enum WeekdayDoc {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// Weekly working hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WeeklyInterval)]
#[allow(dead_code)]
pub struct WeeklyIntervalDoc {
    /// Day of the week.
    pub weekday: WeekdayDoc,
    /// Local start `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// Local end `HH:MM` (`24:00` allowed).
    #[schema(example = "17:00")]
    pub end: String,
}

/// Working hours of one date.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LocalInterval)]
#[allow(dead_code)]
pub struct LocalIntervalDoc {
    /// Local start `HH:MM`.
    #[schema(example = "10:00")]
    pub start: String,
    /// Local end `HH:MM` (`24:00` allowed).
    #[schema(example = "12:00")]
    pub end: String,
}

/// Replaces one date's weekly rules; `intervals: []` is a day off.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = DateOverride)]
#[allow(dead_code)]
pub struct DateOverrideDoc {
    /// Local date.
    #[schema(value_type = String, format = Date, example = "2027-03-10")]
    pub date: String,
    /// Working hours of that date.
    pub intervals: Vec<LocalIntervalDoc>,
}

/// A professional's weekly rules and booking policy, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Schedule)]
#[allow(dead_code)]
pub struct ScheduleDoc {
    /// IANA time zone of the wall-clock times.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// Weekly working hours.
    pub weekly: Vec<WeeklyIntervalDoc>,
    /// Per-date replacements.
    pub overrides: Vec<DateOverrideDoc>,
    /// Minutes blocked before each booking.
    #[schema(minimum = 0, maximum = 1440)]
    pub buffer_before_minutes: u32,
    /// Minutes blocked after each booking.
    #[schema(minimum = 0, maximum = 1440)]
    pub buffer_after_minutes: u32,
    /// Minimum minutes between now and a booking's start.
    #[schema(minimum = 0, maximum = 525600)]
    pub min_notice_minutes: u32,
    /// How many days ahead bookings may start.
    #[schema(minimum = 1, maximum = 3660)]
    pub horizon_days: u32,
    /// Slot grid step in minutes.
    #[schema(minimum = 5, maximum = 1440)]
    pub slot_step_minutes: u32,
}

/// `PUT /v1/professionals/{id}/schedule` body; absent fields take their defaults (no
/// hours, buffers and notice 0, `horizon_days` 60, `slot_step_minutes` 30).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ScheduleInput)]
#[allow(dead_code)]
pub struct ScheduleInputDoc {
    /// IANA time zone of the wall-clock times.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// Weekly working hours.
    #[schema(nullable = false)]
    pub weekly: Option<Vec<WeeklyIntervalDoc>>,
    /// Per-date replacements.
    #[schema(nullable = false)]
    pub overrides: Option<Vec<DateOverrideDoc>>,
    /// Minutes blocked before each booking, `0..=1440`.
    #[schema(nullable = false)]
    pub buffer_before_minutes: Option<i64>,
    /// Minutes blocked after each booking, `0..=1440`.
    #[schema(nullable = false)]
    pub buffer_after_minutes: Option<i64>,
    /// Minimum notice in minutes, `0..=525600`.
    #[schema(nullable = false)]
    pub min_notice_minutes: Option<i64>,
    /// Booking horizon in days, `1..=3660`.
    #[schema(nullable = false)]
    pub horizon_days: Option<i64>,
    /// Slot grid step in minutes, `5..=1440`.
    #[schema(nullable = false)]
    pub slot_step_minutes: Option<i64>,
}

/// One problem with one input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    /// Path of the field, e.g. `location.lat` or `weekly[2].end`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable code, e.g. `slot_unavailable`.
    #[schema(example = "slot_unavailable")]
    pub code: String,
    /// Field problems (`validation_failed` only).
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldErrorDoc>>,
}
