//! Schemas that exist only for the OpenAPI document: mirrors of the engine's input and
//! schedule types (which the handlers parse with booking-core's own types), the problem
//! document, and the time zone list.
//!
//! The request schemas say exactly what the server accepts: every body rejects unknown
//! fields (`additionalProperties: false`), and each field carries the pattern, length or
//! range that the engine's validation applies (booking-core's `NewClient::validate`,
//! `NewProfessional::validate`, `Category::parse`, `Currency::parse`, `ScheduleInput::validate`).
//! Rules across fields (an interval's `start` before its `end`, intervals of one day that
//! must not overlap, unique override dates) cannot be said in JSON Schema; they are in the
//! descriptions and answered with 422 `validation_failed`.
//!
//! None of these types is ever built: they carry `#[allow(dead_code)]`.

use serde::Serialize;
use utoipa::ToSchema;

/// `POST /v1/clients` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewClient)]
#[allow(dead_code)]
pub struct NewClientDoc {
    /// Display name: at least one character that is not white space, no control
    /// characters, at most 200 characters (surrounding white space is trimmed).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub name: String,
    /// E-mail address: one `@` with something on both sides, no white space or control
    /// characters, at most 254 bytes of UTF-8 (surrounding white space is trimmed).
    #[schema(schema_with = email_schema)]
    pub email: String,
}

/// The e-mail schema: the byte limit of the engine is exact for ASCII addresses and safe
/// (63 characters of at most 4 bytes each) for any other.
fn email_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    let ascii = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^\s*[!-?A-~]+@[!-?A-~]+\s*$"))
        .max_length(Some(254));
    let any = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            r"^\s*[^\s\x00-\x1f\x7f-\x9f@]+@[^\s\x00-\x1f\x7f-\x9f@]+\s*$",
        ))
        .max_length(Some(63));
    utoipa::openapi::Schema::AnyOf(
        AnyOfBuilder::new()
            .item(ascii)
            .item(any)
            .description(Some("E-mail address"))
            .examples(Some(serde_json::json!("lin@example.com")))
            .build(),
    )
}

/// A point on Earth (input).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LocationInput)]
#[allow(dead_code)]
pub struct LocationDoc {
    /// Latitude in degrees, `[-90, 90]`.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    /// Longitude in degrees, `[-180, 180]`.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lng: f64,
}

/// `POST /v1/professionals` body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewProfessional)]
#[allow(dead_code)]
pub struct NewProfessionalDoc {
    /// Display name: at least one character that is not white space, no control
    /// characters, at most 200 characters (surrounding white space is trimmed).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub name: String,
    /// Lower-case slug: 1 to 64 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
    #[schema(example = "massage", pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub category: String,
    /// Location.
    pub location: LocationDoc,
    /// Hourly rate in minor units, not negative.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub hourly_rate_cents: i64,
    /// ISO 4217 code, three letters (stored in lower case).
    #[schema(example = "eur", pattern = r"^[A-Za-z]{3}$")]
    pub currency: String,
    /// IANA time zone name.
    #[schema(schema_with = timezone_schema)]
    pub timezone: String,
    /// Defaults to `true`.
    pub is_active: Option<bool>,
}

/// `PATCH /v1/professionals/{id}` body: any subset of the fields (`null` = unchanged).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProfessionalPatch)]
#[allow(dead_code)]
pub struct ProfessionalPatchDoc {
    /// New name (rules as on create).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub name: Option<String>,
    /// New category slug.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub category: Option<String>,
    /// New location.
    pub location: Option<LocationDoc>,
    /// New hourly rate, not negative.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub hourly_rate_cents: Option<i64>,
    /// New currency, three letters.
    #[schema(pattern = r"^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    /// New IANA time zone name.
    #[schema(schema_with = nullable_timezone_schema)]
    pub timezone: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// The name of the component schema listing every IANA time zone name the server knows.
pub const TIME_ZONE_SCHEMA: &str = "TimeZone";

/// A reference to the [`TIME_ZONE_SCHEMA`] component.
fn timezone_schema() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(TIME_ZONE_SCHEMA)
}

/// The time zone, or `null`.
fn nullable_timezone_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    utoipa::openapi::Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(timezone_schema())
            .build(),
    )
}

/// The [`TIME_ZONE_SCHEMA`] component: exactly the names the server parses (the IANA
/// database compiled into the server, links included), as an `enum`.
pub fn time_zone_component() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("An IANA time zone name, e.g. `Europe/Berlin`"))
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
        .examples([serde_json::json!("Europe/Berlin")])
        .into()
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

/// Weekly working hours; `start` before `end`, and the intervals of one weekday must not
/// overlap (touching is fine).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WeeklyInterval)]
#[allow(dead_code)]
pub struct WeeklyIntervalDoc {
    /// Day of the week.
    pub weekday: WeekdayDoc,
    /// Local start `HH:MM`, `00:00` to `23:59`.
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Local end `HH:MM`, `00:01` to `24:00`, after `start`.
    #[schema(
        example = "17:00",
        pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
    )]
    pub end: String,
}

/// Working hours of one date; `start` before `end`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LocalInterval)]
#[allow(dead_code)]
pub struct LocalIntervalDoc {
    /// Local start `HH:MM`, `00:00` to `23:59`.
    #[schema(example = "10:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Local end `HH:MM`, `00:01` to `24:00`, after `start`.
    #[schema(
        example = "12:00",
        pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
    )]
    pub end: String,
}

/// Replaces one date's weekly rules; `intervals: []` is a day off. The intervals must not
/// overlap (touching is fine), and each date may be overridden once.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DateOverride)]
#[allow(dead_code)]
pub struct DateOverrideDoc {
    /// Local date `YYYY-MM-DD`.
    #[schema(
        value_type = String,
        format = Date,
        example = "2027-03-10",
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
    )]
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
    #[schema(schema_with = timezone_schema)]
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
#[serde(deny_unknown_fields)]
#[schema(as = ScheduleInput)]
#[allow(dead_code)]
pub struct ScheduleInputDoc {
    /// IANA time zone of the wall-clock times.
    #[schema(schema_with = timezone_schema)]
    pub timezone: String,
    /// Weekly working hours, at most 100 intervals.
    #[schema(nullable = false, max_items = 100)]
    pub weekly: Option<Vec<WeeklyIntervalDoc>>,
    /// Per-date replacements, at most 1000.
    #[schema(nullable = false, max_items = 1000)]
    pub overrides: Option<Vec<DateOverrideDoc>>,
    /// Minutes blocked before each booking, `0..=1440`.
    #[schema(nullable = false, minimum = 0, maximum = 1440)]
    pub buffer_before_minutes: Option<i64>,
    /// Minutes blocked after each booking, `0..=1440`.
    #[schema(nullable = false, minimum = 0, maximum = 1440)]
    pub buffer_after_minutes: Option<i64>,
    /// Minimum notice in minutes, `0..=525600`.
    #[schema(nullable = false, minimum = 0, maximum = 525600)]
    pub min_notice_minutes: Option<i64>,
    /// Booking horizon in days, `1..=3660`.
    #[schema(nullable = false, minimum = 1, maximum = 3660)]
    pub horizon_days: Option<i64>,
    /// Slot grid step in minutes, `5..=1440`.
    #[schema(nullable = false, minimum = 5, maximum = 1440)]
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

/// The kinds of domain events a webhook subscription can ask for.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EventTypeDoc {
    /// A booking (confirmed or held) was created.
    BookingCreated,
    /// A booking was confirmed.
    BookingConfirmed,
    /// A booking was cancelled.
    BookingCancelled,
    /// A hold ran out.
    BookingExpired,
    /// A booking moved to another range.
    BookingRescheduled,
}
