//! The JSON shapes of the API (`docs/http/` in the repository), with their OpenAPI schemas.
//!
//! Response types are built from the engine's domain types; request types are either
//! the engine's own input types (documented by a mirror schema in
//! [`crate::openapi::schemas`]) or small structs parsed here.

use booking_core::{Booking, BookingStatus, Client, Professional, TimeRange};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::openapi::schemas::EventTypeDoc;

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
    /// The PaymentIntent's client secret, for the client's payment form; `null` once the
    /// hold has ended (paid, cancelled or expired).
    pub client_secret: Option<String>,
    /// The total refunded so far, in minor units of the booking's currency
    /// (`charge.refunded`).
    #[schema(minimum = 0)]
    pub amount_refunded_cents: i64,
    /// A payment arrived that the booking could not honour (it had been cancelled, or its
    /// hold ran out and the slot was taken): it is refunded in full.
    pub refund_owed: bool,
}

impl From<&booking_core::payment::Payment> for PaymentView {
    fn from(p: &booking_core::payment::Payment) -> Self {
        Self {
            provider: p.provider.clone(),
            payment_intent_id: p.intent_id.clone(),
            client_secret: p.client_secret.clone(),
            amount_refunded_cents: p.amount_refunded_cents,
            refund_owed: p.refund_owed,
        }
    }
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
    /// Payment details; `null` for bookings made while payments were not configured.
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
            payment: b.payment.as_ref().map(PaymentView::from),
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
    /// Great-circle distance in km from the search centre, in whole millimetres (rounded
    /// down); present only in answers to a search with `lat`, `lng` and `radius_km`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, example = 2.417893)]
    pub distance_km: Option<f64>,
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
            distance_km: None,
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
    /// Start, RFC 3339, a whole minute (seconds `00`).
    #[schema(value_type = DateTime<Utc>, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:00(\.0+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")]
    pub start: String,
    /// End, RFC 3339, a whole minute, after `start`. The range must be a slot that
    /// availability offers (else 422 `outside_availability`).
    #[schema(value_type = DateTime<Utc>, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:00(\.0+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")]
    pub end: String,
}

/// `POST /v1/bookings/{id}/reschedule` body: the new range (same duration).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// New start, RFC 3339, a whole minute (seconds `00`).
    #[schema(value_type = DateTime<Utc>, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:00(\.0+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")]
    pub start: String,
    /// New end, RFC 3339, a whole minute; `end - start` must be the booking's length.
    #[schema(value_type = DateTime<Utc>, pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:00(\.0+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")]
    pub end: String,
}

/// The answer to a Stripe webhook delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always `true`: the event is recorded (now or by an earlier delivery).
    pub received: bool,
    /// Whether the event had been received before (nothing changed).
    pub duplicate: bool,
}

/// An inbound webhook event in the inbox (dead-lettered, or queued again by a replay).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The provider's event id (`evt_…`).
    pub event_id: String,
    /// Always `stripe`.
    pub provider: String,
    /// The event type, e.g. `payment_intent.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending` (queued), `processed` or `dead_lettered`.
    pub state: String,
    /// Processing attempts so far (reset by a replay).
    #[schema(minimum = 0)]
    pub attempts: u32,
    /// The last attempt's error, if any.
    pub last_error: Option<String>,
    /// When the event was first received.
    pub received_at: DateTime<Utc>,
    /// When it is due for its next attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was dead-lettered; `null` once replayed.
    pub dead_lettered_at: Option<DateTime<Utc>>,
}

impl From<&booking_core::webhook::inbox::InboxEvent> for DeadLetterView {
    fn from(e: &booking_core::webhook::inbox::InboxEvent) -> Self {
        Self {
            event_id: e.key.event_id().to_owned(),
            provider: e.key.provider().to_owned(),
            event_type: e.event_type.clone(),
            state: e.state.as_str().to_owned(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            received_at: e.received_at,
            next_attempt_at: e.next_attempt_at,
            dead_lettered_at: e.dead_lettered_at,
        }
    }
}

/// A page of dead-lettered events, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// The events.
    pub data: Vec<DeadLetterView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A domain event as it leaves the system (NATS payload and outbound webhook body alike).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// The event id (also `Nats-Msg-Id` and `Booking-Event-Id`).
    pub id: Uuid,
    /// `booking_created`, `booking_confirmed`, `booking_cancelled`, `booking_expired` or
    /// `booking_rescheduled`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// The booking concerned.
    pub booking_id: Uuid,
    /// Its professional.
    pub professional_id: Uuid,
    /// The booking right after the change.
    pub data: EventData,
}

/// The data of an [`EventView`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventData {
    /// The booking right after the change.
    pub booking: BookingView,
}

impl From<&booking_core::events::DomainEvent> for EventView {
    fn from(e: &booking_core::events::DomainEvent) -> Self {
        Self {
            id: e.id.as_uuid(),
            event_type: e.kind.as_str().to_owned(),
            occurred_at: e.occurred_at,
            booking_id: e.booking_id.as_uuid(),
            professional_id: e.professional_id.as_uuid(),
            data: EventData {
                booking: BookingView::from(&e.booking),
            },
        }
    }
}

/// A new outbound webhook subscription.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhookSubscription)]
pub struct NewSubscriptionBody {
    /// Where deliveries are POSTed: an absolute `http` or `https` URL whose host resolves
    /// to public addresses only (loopback and private targets are refused with 422 unless
    /// the server runs with `BOOKING_WEBHOOK_ALLOW_PRIVATE=true`).
    #[schema(
        pattern = r"^[hH][tT][tT][pP][sS]?://[^\s/?#@:\[\]]+(:[0-9]{1,5})?([/?#][^\s]*)?$",
        max_length = 2048
    )]
    pub url: String,
    /// The event types delivered (duplicates are ignored).
    #[schema(value_type = Vec<EventTypeDoc>, min_items = 1)]
    pub event_types: Vec<String>,
    /// Only this professional's events, if set.
    pub professional_id: Option<Uuid>,
}

/// An outbound webhook subscription (its secret is shown only when it is created).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// The subscription id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// The event types delivered.
    #[schema(value_type = Vec<EventTypeDoc>)]
    pub event_types: Vec<String>,
    /// Only this professional's events, if set.
    pub professional_id: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&booking_core::webhook::outbound::Subscription> for SubscriptionView {
    fn from(s: &booking_core::webhook::outbound::Subscription) -> Self {
        Self {
            id: s.id.as_uuid(),
            url: s.url.clone(),
            event_types: s
                .event_types
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            professional_id: s.professional_id.map(|p| p.as_uuid()),
            created_at: s.created_at,
        }
    }
}

/// A subscription just created, with its signing secret (shown only this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedSubscription {
    /// The subscription id.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// The event types delivered.
    #[schema(value_type = Vec<EventTypeDoc>)]
    pub event_types: Vec<String>,
    /// Only this professional's events, if set.
    pub professional_id: Option<Uuid>,
    /// The key of `Booking-Signature` (HMAC-SHA256 of `"{t}.{body}"`): `whsec_` and 43
    /// base64url characters. Store it; it is never shown again.
    pub secret: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&booking_core::webhook::outbound::Subscription> for CreatedSubscription {
    fn from(s: &booking_core::webhook::outbound::Subscription) -> Self {
        let v = SubscriptionView::from(s);
        Self {
            id: v.id,
            url: v.url,
            event_types: v.event_types,
            professional_id: v.professional_id,
            secret: s.secret.clone(),
            created_at: v.created_at,
        }
    }
}

/// A page of subscriptions, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// The subscriptions.
    pub data: Vec<SubscriptionView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One event for one subscription, and how its delivery went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The delivery id (`Booking-Delivery-Id`, the same on every retry and redelivery).
    pub id: Uuid,
    /// The event (`Booking-Event-Id`).
    pub event_id: Uuid,
    /// Attempts made so far.
    #[schema(minimum = 0)]
    pub attempt: u32,
    /// `pending`, `delivered` or `failed` (retried for 24 h without a 2xx).
    #[schema(pattern = "^(pending|delivered|failed)$")]
    pub status: String,
    /// The HTTP status of the last answer, if there was one.
    pub response_status: Option<u16>,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When a 2xx answer arrived.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<&booking_core::webhook::outbound::Delivery> for DeliveryView {
    fn from(d: &booking_core::webhook::outbound::Delivery) -> Self {
        Self {
            id: d.id.as_uuid(),
            event_id: d.event_id.as_uuid(),
            attempt: d.attempt,
            status: d.status.as_str().to_owned(),
            response_status: d.response_status,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// A page of a subscription's deliveries, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
