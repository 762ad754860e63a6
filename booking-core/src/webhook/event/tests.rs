//! Unit and property tests of the Stripe event envelope. The payloads follow the event and
//! object shapes in Stripe's API reference (`The Event object`, `The PaymentIntent object`,
//! `The Charge object`), trimmed of fields that make no difference here.
//!
//! The fixtures are here; the tests are by event kind (`payment_intent`, `charge`), the
//! envelope, and the properties.

use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const BOOKING: &str = "0192f3a4-5b6c-7d8e-9f00-112233445566";

fn booking() -> BookingId {
    BOOKING.parse().expect("valid test booking id")
}

fn usd(amount_cents: i64) -> Money {
    Money {
        amount_cents,
        currency: Currency::parse("usd").expect("valid test currency"),
    }
}

/// A `payment_intent.*` event as Stripe sends it.
fn payment_intent_event(event_type: &str) -> Value {
    json!({
        "id": "evt_3MtwBwLkdIwHu7ix0a7Ad3Ap",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_680_064_028,
        "data": {
            "object": {
                "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
                "object": "payment_intent",
                "amount": 2000,
                "amount_capturable": 0,
                "amount_details": { "tip": {} },
                "amount_received": 2000,
                "application": null,
                "automatic_payment_methods": { "enabled": true },
                "canceled_at": null,
                "cancellation_reason": null,
                "capture_method": "automatic",
                "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
                "confirmation_method": "automatic",
                "created": 1_680_064_020,
                "currency": "usd",
                "customer": null,
                "description": null,
                "last_payment_error": null,
                "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPc",
                "livemode": false,
                "metadata": { "booking_id": BOOKING, "source": "reference-server" },
                "next_action": null,
                "payment_method": "pm_1MtwBwLkdIwHu7ixAzAvSUXe",
                "payment_method_types": ["card"],
                "status": "succeeded"
            },
            "previous_attributes": null
        },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_JM8yaSsvhUsfH0", "idempotency_key": "8f2a1c3e-0b7d-4e1a-9c55-3d9e1f0a2b4c" },
        "type": event_type
    })
}

/// A `charge.refunded` event as Stripe sends it.
fn charge_refunded_event() -> Value {
    json!({
        "id": "evt_3Mtw9aLkdIwHu7ix1Qq1Fmv1",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_680_070_000,
        "data": {
            "object": {
                "id": "ch_3MtwBwLkdIwHu7ix28a3tqPc",
                "object": "charge",
                "amount": 2000,
                "amount_captured": 2000,
                "amount_refunded": 500,
                "balance_transaction": "txn_3MtwBwLkdIwHu7ix2Oq1fhTs",
                "captured": true,
                "currency": "usd",
                "metadata": {},
                "paid": true,
                "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
                "refunded": false,
                "status": "succeeded"
            },
            "previous_attributes": { "amount_refunded": 0 }
        },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "charge.refunded"
    })
}

fn parse(value: &Value) -> Result<StripeEvent, EventError> {
    StripeEvent::parse(value.to_string().as_bytes())
}

/// `value` with the JSON pointer `path` replaced by `new` (or removed when `new` is `None`).
fn with(mut value: Value, path: &str, new: Option<Value>) -> Value {
    let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
    let parent = value
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object exists");
    match new {
        Some(v) => {
            parent.insert(key.to_owned(), v);
        }
        None => {
            parent.remove(key);
        }
    }
    value
}

mod charge;
mod envelope;
mod payment_intent;
mod properties;
