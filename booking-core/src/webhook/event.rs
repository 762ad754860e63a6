//! The part of a Stripe event that the booking engine acts on, read from the raw JSON body
//! without any Stripe crate.
//!
//! A Stripe event is an envelope around a snapshot of the object it is about:
//!
//! ```text
//! {
//!   "id": "evt_3MtwBwLkdIwHu7ix0a7Ad3Ap",
//!   "object": "event",
//!   "type": "payment_intent.succeeded",
//!   "created": 1680064028,
//!   "data": { "object": { "id": "pi_…", "object": "payment_intent", "amount": 2000,
//!                         "currency": "usd", "metadata": { "booking_id": "…" }, … } },
//!   "livemode": false, "api_version": "…", "pending_webhooks": 1, "request": { … }
//! }
//! ```
//!
//! [`StripeEvent::parse`] reads `id`, `type` and `created`, and for the types the engine acts
//! on, the few fields of `data.object` it needs:
//!
//! | `type`                          | [`StripeEventKind`]   | from `data.object` |
//! |---------------------------------|-----------------------|--------------------|
//! | `payment_intent.succeeded`      | `PaymentSucceeded`    | `id`, `amount`, `currency`, `metadata.booking_id` (required) |
//! | `payment_intent.payment_failed` | `PaymentFailed`       | the same |
//! | `payment_intent.canceled`       | `PaymentCanceled`     | the same |
//! | `charge.refunded`               | `ChargeRefunded`      | `id`, `payment_intent` (required), `amount_refunded`, `currency`, `metadata.booking_id` (optional) |
//! | anything else                   | `Other(type)`         | nothing: `data` is not looked at |
//!
//! An unknown type is never an error: it becomes [`StripeEventKind::Other`], to be
//! acknowledged and ignored. An event of a handled type that lacks what the engine needs is an
//! [`EventError`] naming the field by its JSON path. The booking id travels in the
//! PaymentIntent's metadata, which the engine sets when it creates the PaymentIntent; a
//! charge carries its own metadata (Stripe does not copy the PaymentIntent's), so a refund is
//! tied to its booking through `payment_intent` and its `booking_id` is optional.
//!
//! # Robustness
//!
//! [`StripeEvent::parse`] never panics. It refuses bodies over [`MAX_EVENT_LEN`] bytes before
//! reading them, and otherwise does work linear in the body (`serde_json` parses each byte
//! once per pass and there are at most two passes). Fields it does not need are skipped
//! without being stored, and without recursion, so deep nesting cannot exhaust the stack. Every
//! level it reads must be a JSON object (serde would also accept an array of the fields in
//! order). A repeated field that it reads is refused (serde reports duplicate fields), so two
//! readers can never disagree about which copy counts.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::domain::{BookingId, Currency, Money};
use crate::error::Error;

#[cfg(test)]
mod tests;

/// The largest event body [`StripeEvent::parse`] reads, in bytes (1 MiB). Stripe's event
/// payloads are a few kilobytes; a body near this size is not a Stripe event.
pub const MAX_EVENT_LEN: usize = 1 << 20;

/// The longest identifier or event type accepted, in bytes. Stripe's ids are at most
/// 255 characters.
pub const MAX_ID_LEN: usize = 255;

/// How much of a `serde_json` message an [`EventError::Malformed`] keeps: it can quote a
/// whole string value from the body.
const MAX_MESSAGE_CHARS: usize = 200;

/// A Stripe event, reduced to what the booking engine acts on.
///
/// ```
/// use booking_core::webhook::{StripeEvent, StripeEventKind};
///
/// let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,
///                 "data":{"object":{"id":"cus_1","object":"customer"}}}"#;
/// let event = StripeEvent::parse(body).unwrap();
/// assert_eq!(event.id, "evt_1");
/// assert_eq!(event.kind, StripeEventKind::Other("customer.created".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    /// The event id (`evt_…`): the key that deduplicates redeliveries.
    pub id: String,
    /// When Stripe created the event (`created`, Unix seconds). Stripe does not deliver
    /// events in order; this orders them.
    pub created: DateTime<Utc>,
    /// What happened, with the fields the engine needs.
    pub kind: StripeEventKind,
}

/// The event types the engine acts on; every other type is [`StripeEventKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEventKind {
    /// `payment_intent.succeeded`: the booking's payment went through.
    PaymentSucceeded(PaymentIntent),
    /// `payment_intent.payment_failed`: an attempt to pay failed; the customer may retry
    /// with the same PaymentIntent.
    PaymentFailed(PaymentIntent),
    /// `payment_intent.canceled`: the PaymentIntent can no longer be paid.
    PaymentCanceled(PaymentIntent),
    /// `charge.refunded`: some or all of a charge was refunded.
    ChargeRefunded(RefundedCharge),
    /// Any other event type, by name: acknowledged and ignored.
    Other(String),
}

impl StripeEventKind {
    /// The Stripe event type this kind was read from, such as `payment_intent.succeeded`.
    pub fn type_name(&self) -> &str {
        match self {
            StripeEventKind::PaymentSucceeded(_) => PAYMENT_SUCCEEDED,
            StripeEventKind::PaymentFailed(_) => PAYMENT_FAILED,
            StripeEventKind::PaymentCanceled(_) => PAYMENT_CANCELED,
            StripeEventKind::ChargeRefunded(_) => CHARGE_REFUNDED,
            StripeEventKind::Other(name) => name,
        }
    }
}

/// The fields of a PaymentIntent (`data.object` of a `payment_intent.*` event) that the
/// engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// The PaymentIntent id (`pi_…`).
    pub id: String,
    /// The booking it pays for (`metadata.booking_id`).
    pub booking_id: BookingId,
    /// The amount to be collected (`amount` in minor units, and `currency`).
    pub amount: Money,
}

/// The fields of a Charge (`data.object` of a `charge.refunded` event) that the engine
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundedCharge {
    /// The charge id (`ch_…`).
    pub id: String,
    /// The PaymentIntent the charge belongs to (`pi_…`): the link to the booking.
    pub payment_intent: String,
    /// The total refunded so far, across all refunds of the charge (`amount_refunded`).
    pub amount_refunded: Money,
    /// `metadata.booking_id`, if the charge carries one.
    pub booking_id: Option<BookingId>,
}

/// Why a body is not a Stripe event the engine can act on. Field names are JSON paths
/// such as `data.object.metadata.booking_id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body is longer than [`MAX_EVENT_LEN`].
    #[error("the event body is {len} bytes long, more than the {MAX_EVENT_LEN} allowed")]
    TooLarge {
        /// The body's length in bytes.
        len: usize,
    },
    /// The body is not a JSON object of the expected shape (a syntax error, a field of the
    /// wrong JSON type, a repeated field). The message is `serde_json`'s, shortened.
    #[error("the event body is malformed: {0}")]
    Malformed(String),
    /// A field the event's type needs is absent, `null` or empty.
    #[error("the event has no {field}")]
    Missing {
        /// The field's JSON path.
        field: &'static str,
    },
    /// A field is present but its value is unusable.
    #[error("{field} is invalid: {reason}")]
    Invalid {
        /// The field's JSON path.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl EventError {
    /// A stable `snake_case` label for logs and metrics: `too_large`, `malformed`,
    /// `missing_field` or `invalid_field`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::TooLarge { .. } => "too_large",
            EventError::Malformed(_) => "malformed",
            EventError::Missing { .. } => "missing_field",
            EventError::Invalid { .. } => "invalid_field",
        }
    }

    fn malformed(err: &serde_json::Error) -> Self {
        EventError::Malformed(err.to_string().chars().take(MAX_MESSAGE_CHARS).collect())
    }
}

/// An unusable event is invalid input: one [`Error::Invalid`] field error, on the field's
/// JSON path (`body` for a body that cannot be read at all).
impl From<EventError> for Error {
    fn from(err: EventError) -> Self {
        match &err {
            EventError::TooLarge { .. } | EventError::Malformed(_) => {
                Error::invalid("body", err.to_string())
            }
            EventError::Missing { field } => Error::invalid(*field, "is missing"),
            EventError::Invalid { field, reason } => Error::invalid(*field, *reason),
        }
    }
}

const PAYMENT_SUCCEEDED: &str = "payment_intent.succeeded";
const PAYMENT_FAILED: &str = "payment_intent.payment_failed";
const PAYMENT_CANCELED: &str = "payment_intent.canceled";
const CHARGE_REFUNDED: &str = "charge.refunded";

impl StripeEvent {
    /// Reads an event from its raw body (after its signature was verified).
    ///
    /// Whatever its type, an event needs an `id` and a `type` (each a non-empty identifier
    /// of at most [`MAX_ID_LEN`] printable ASCII characters) and a `created` Unix time, and
    /// its `object`, if present, must be `"event"`. Never panics; see the
    /// [module documentation](self) for what else is read and the bounds on the work done.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let EventHeader {
            id,
            type_name,
            created,
        } = EventHeader::parse(body)?;
        let kind = match type_name.as_str() {
            PAYMENT_SUCCEEDED => StripeEventKind::PaymentSucceeded(payment_intent(body)?),
            PAYMENT_FAILED => StripeEventKind::PaymentFailed(payment_intent(body)?),
            PAYMENT_CANCELED => StripeEventKind::PaymentCanceled(payment_intent(body)?),
            CHARGE_REFUNDED => StripeEventKind::ChargeRefunded(refunded_charge(body)?),
            _ => StripeEventKind::Other(type_name),
        };
        Ok(StripeEvent { id, created, kind })
    }
}

/// The envelope of a Stripe event: what identifies it, whatever its `data`. Intake records
/// every event with a valid envelope; only processing reads `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// The event id (`evt_…`).
    pub id: String,
    /// The event type, such as `payment_intent.succeeded`.
    pub type_name: String,
    /// When Stripe created the event.
    pub created: DateTime<Utc>,
}

impl EventHeader {
    /// Reads the envelope (`id`, `type`, `created`, `object`) of a raw event body, with the
    /// same checks as [`StripeEvent::parse`].
    ///
    /// ```
    /// let h = booking_core::webhook::EventHeader::parse(
    ///     br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000}"#,
    /// ).unwrap();
    /// assert_eq!((h.id.as_str(), h.type_name.as_str()), ("evt_1", "customer.created"));
    /// ```
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        if body.len() > MAX_EVENT_LEN {
            return Err(EventError::TooLarge { len: body.len() });
        }
        let Object(envelope): Object<Envelope> =
            serde_json::from_slice(body).map_err(|e| EventError::malformed(&e))?;
        if envelope.object.as_deref().is_some_and(|o| o != "event") {
            return Err(EventError::Invalid {
                field: "object",
                reason: "is not \"event\"",
            });
        }
        let id = identifier(envelope.id, "id")?;
        let type_name = identifier(envelope.type_name, "type")?;
        let created = envelope
            .created
            .ok_or(EventError::Missing { field: "created" })?;
        let created = DateTime::from_timestamp(created, 0).ok_or(EventError::Invalid {
            field: "created",
            reason: "is not a representable Unix time",
        })?;
        Ok(EventHeader {
            id,
            type_name,
            created,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The JSON shapes. Every field is optional here, so that an absent field is reported by its
// path as `Missing` rather than as serde's "missing field"; unknown fields are skipped.
// ---------------------------------------------------------------------------------------

/// First pass: the envelope, with `data` skipped (an `Other` event's object may have any
/// shape).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default, rename = "type")]
    type_name: Option<String>,
    #[serde(default)]
    created: Option<i64>,
}

/// Second pass, for a handled type: `data.object` as `T`.
#[derive(Deserialize)]
struct Body<T> {
    #[serde(default = "Option::default")]
    data: Option<Object<Data<T>>>,
}

#[derive(Deserialize)]
struct Data<T> {
    #[serde(default = "Option::default")]
    object: Option<Object<T>>,
}

/// A JSON object read as `T`. A derived struct also accepts a JSON array of its fields in
/// declaration order; Stripe never sends one, and reading it would make the field order of
/// these private structs part of the accepted input.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

#[derive(Deserialize)]
struct PaymentIntentObject {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    metadata: Option<Object<Metadata>>,
}

#[derive(Deserialize)]
struct ChargeObject {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    amount_refunded: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    metadata: Option<Object<Metadata>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    booking_id: Option<String>,
}

/// `data.object` of a handled event, read as `T`.
fn object<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, EventError> {
    let Object(body): Object<Body<T>> =
        serde_json::from_slice(body).map_err(|e| EventError::malformed(&e))?;
    let Object(data) = body.data.ok_or(EventError::Missing { field: "data" })?;
    let Object(object) = data.object.ok_or(EventError::Missing {
        field: "data.object",
    })?;
    Ok(object)
}

fn payment_intent(body: &[u8]) -> Result<PaymentIntent, EventError> {
    let pi: PaymentIntentObject = object(body)?;
    object_type(pi.object.as_deref(), "payment_intent")?;
    let id = identifier(pi.id, "data.object.id")?;
    let currency = currency(pi.currency)?;
    let amount = money(pi.amount, "data.object.amount", currency)?;
    let booking_id = pi
        .metadata
        .and_then(|Object(m)| m.booking_id)
        .filter(|b| !b.is_empty())
        .ok_or(EventError::Missing { field: BOOKING_ID })?;
    Ok(PaymentIntent {
        id,
        booking_id: booking_id_of(&booking_id)?,
        amount,
    })
}

fn refunded_charge(body: &[u8]) -> Result<RefundedCharge, EventError> {
    let charge: ChargeObject = object(body)?;
    object_type(charge.object.as_deref(), "charge")?;
    let id = identifier(charge.id, "data.object.id")?;
    let payment_intent = identifier(charge.payment_intent, "data.object.payment_intent")?;
    let currency = currency(charge.currency)?;
    let amount_refunded = money(
        charge.amount_refunded,
        "data.object.amount_refunded",
        currency,
    )?;
    let booking_id = match charge.metadata.and_then(|Object(m)| m.booking_id) {
        Some(b) if !b.is_empty() => Some(booking_id_of(&b)?),
        _ => None,
    };
    Ok(RefundedCharge {
        id,
        payment_intent,
        amount_refunded,
        booking_id,
    })
}

const BOOKING_ID: &str = "data.object.metadata.booking_id";

fn booking_id_of(value: &str) -> Result<BookingId, EventError> {
    value.parse().map_err(|_| EventError::Invalid {
        field: BOOKING_ID,
        reason: "is not a UUID",
    })
}

/// `data.object.object`, when present, must name the object type the event type implies.
fn object_type(found: Option<&str>, expected: &str) -> Result<(), EventError> {
    match found {
        Some(found) if found != expected => Err(EventError::Invalid {
            field: "data.object.object",
            reason: "does not match the event type",
        }),
        _ => Ok(()),
    }
}

/// A non-empty identifier of at most [`MAX_ID_LEN`] printable ASCII characters (no spaces
/// or control characters, so it is safe to log).
fn identifier(value: Option<String>, field: &'static str) -> Result<String, EventError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or(EventError::Missing { field })?;
    if value.len() > MAX_ID_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EventError::Invalid {
            field,
            reason: "is not an identifier of at most 255 printable ASCII characters",
        });
    }
    Ok(value)
}

fn currency(value: Option<String>) -> Result<Currency, EventError> {
    let field = "data.object.currency";
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or(EventError::Missing { field })?;
    Currency::parse(&value).map_err(|_| EventError::Invalid {
        field,
        reason: "is not a three-letter ISO 4217 code",
    })
}

fn money(
    amount: Option<i64>,
    field: &'static str,
    currency: Currency,
) -> Result<Money, EventError> {
    let amount_cents = amount.ok_or(EventError::Missing { field })?;
    if amount_cents < 0 {
        return Err(EventError::Invalid {
            field,
            reason: "is negative",
        });
    }
    Ok(Money {
        amount_cents,
        currency,
    })
}
