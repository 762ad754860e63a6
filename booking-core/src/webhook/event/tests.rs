//! Unit and property tests of the Stripe event envelope. The payloads follow the event and
//! object shapes in Stripe's API reference (`The Event object`, `The PaymentIntent object`,
//! `The Charge object`), trimmed of fields that make no difference here.

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

// ---------------------------------------------------------------------------------------
// Handled types.
// ---------------------------------------------------------------------------------------

#[test]
fn payment_intent_succeeded_is_read_in_full() {
    let event = parse(&payment_intent_event("payment_intent.succeeded")).expect("valid event");
    assert_eq!(
        event,
        StripeEvent {
            id: "evt_3MtwBwLkdIwHu7ix0a7Ad3Ap".into(),
            created: Utc
                .timestamp_opt(1_680_064_028, 0)
                .single()
                .expect("valid instant"),
            kind: StripeEventKind::PaymentSucceeded(PaymentIntent {
                id: "pi_3MtwBwLkdIwHu7ix28a3tqPa".into(),
                booking_id: booking(),
                amount: usd(2000),
            }),
        }
    );
    assert_eq!(event.kind.type_name(), "payment_intent.succeeded");
}

#[test]
fn each_payment_intent_type_has_its_kind() {
    let failed = parse(&payment_intent_event("payment_intent.payment_failed")).expect("valid");
    assert!(
        matches!(failed.kind, StripeEventKind::PaymentFailed(ref pi) if pi.booking_id == booking())
    );
    assert_eq!(failed.kind.type_name(), "payment_intent.payment_failed");
    let canceled = parse(&payment_intent_event("payment_intent.canceled")).expect("valid");
    assert!(
        matches!(canceled.kind, StripeEventKind::PaymentCanceled(ref pi) if pi.amount == usd(2000))
    );
    assert_eq!(canceled.kind.type_name(), "payment_intent.canceled");
}

#[test]
fn charge_refunded_links_through_the_payment_intent() {
    let event = parse(&charge_refunded_event()).expect("valid event");
    assert_eq!(
        event.kind,
        StripeEventKind::ChargeRefunded(RefundedCharge {
            id: "ch_3MtwBwLkdIwHu7ix28a3tqPc".into(),
            payment_intent: "pi_3MtwBwLkdIwHu7ix28a3tqPa".into(),
            amount_refunded: usd(500),
            booking_id: None,
        })
    );
    assert_eq!(event.kind.type_name(), "charge.refunded");
    let tagged = with(
        charge_refunded_event(),
        "/data/object/metadata/booking_id",
        Some(json!(BOOKING)),
    );
    let StripeEventKind::ChargeRefunded(charge) = parse(&tagged).expect("valid").kind else {
        panic!("not a refund");
    };
    assert_eq!(charge.booking_id, Some(booking()));
}

#[test]
fn charge_refunded_needs_its_payment_intent() {
    for value in [None, Some(Value::Null), Some(json!(""))] {
        let event = with(
            charge_refunded_event(),
            "/data/object/payment_intent",
            value,
        );
        assert_eq!(
            parse(&event),
            Err(EventError::Missing {
                field: "data.object.payment_intent"
            })
        );
    }
    let expanded = with(
        charge_refunded_event(),
        "/data/object/payment_intent",
        Some(json!({ "id": "pi_1" })),
    );
    assert!(matches!(parse(&expanded), Err(EventError::Malformed(_))));
}

#[test]
fn a_malformed_booking_id_on_a_charge_is_refused() {
    let event = with(
        charge_refunded_event(),
        "/data/object/metadata/booking_id",
        Some(json!("booking-42")),
    );
    assert_eq!(
        parse(&event),
        Err(EventError::Invalid {
            field: "data.object.metadata.booking_id",
            reason: "is not a UUID"
        })
    );
}

#[test]
fn a_payment_intent_without_a_booking_id_is_refused() {
    let missing = EventError::Missing {
        field: "data.object.metadata.booking_id",
    };
    let event = payment_intent_event("payment_intent.succeeded");
    let no_key = with(event.clone(), "/data/object/metadata/booking_id", None);
    assert_eq!(parse(&no_key), Err(missing.clone()));
    let empty = with(
        event.clone(),
        "/data/object/metadata/booking_id",
        Some(json!("")),
    );
    assert_eq!(parse(&empty), Err(missing.clone()));
    let null = with(
        event.clone(),
        "/data/object/metadata/booking_id",
        Some(Value::Null),
    );
    assert_eq!(parse(&null), Err(missing.clone()));
    let no_metadata = with(event, "/data/object/metadata", None);
    assert_eq!(parse(&no_metadata), Err(missing));
}

#[test]
fn a_malformed_booking_id_is_refused() {
    for bad in ["42", "0192f3a4-5b6c-7d8e-9f00-11223344556", "not a uuid"] {
        let event = with(
            payment_intent_event("payment_intent.succeeded"),
            "/data/object/metadata/booking_id",
            Some(json!(bad)),
        );
        assert_eq!(
            parse(&event),
            Err(EventError::Invalid {
                field: "data.object.metadata.booking_id",
                reason: "is not a UUID"
            }),
            "{bad}"
        );
    }
    let number = with(
        payment_intent_event("payment_intent.succeeded"),
        "/data/object/metadata/booking_id",
        Some(json!(42)),
    );
    assert!(matches!(parse(&number), Err(EventError::Malformed(_))));
}

#[test]
fn amount_and_currency_are_checked() {
    let event = payment_intent_event("payment_intent.succeeded");
    let cases = [
        (
            "/data/object/amount",
            None,
            EventError::Missing {
                field: "data.object.amount",
            },
        ),
        (
            "/data/object/amount",
            Some(json!(-1)),
            EventError::Invalid {
                field: "data.object.amount",
                reason: "is negative",
            },
        ),
        (
            "/data/object/currency",
            None,
            EventError::Missing {
                field: "data.object.currency",
            },
        ),
        (
            "/data/object/currency",
            Some(json!("dollars")),
            EventError::Invalid {
                field: "data.object.currency",
                reason: "is not a three-letter ISO 4217 code",
            },
        ),
        (
            "/data/object/object",
            Some(json!("charge")),
            EventError::Invalid {
                field: "data.object.object",
                reason: "does not match the event type",
            },
        ),
        (
            "/data/object/id",
            None,
            EventError::Missing {
                field: "data.object.id",
            },
        ),
        (
            "/data/object",
            None,
            EventError::Missing {
                field: "data.object",
            },
        ),
        ("/data", None, EventError::Missing { field: "data" }),
    ];
    for (path, value, expected) in cases {
        assert_eq!(
            parse(&with(event.clone(), path, value)),
            Err(expected),
            "{path}"
        );
    }
    let upper = with(event.clone(), "/data/object/currency", Some(json!("USD")));
    let StripeEventKind::PaymentSucceeded(pi) = parse(&upper).expect("valid").kind else {
        panic!("not a payment");
    };
    assert_eq!(pi.amount, usd(2000));
    let fractional = with(event, "/data/object/amount", Some(json!(20.5)));
    assert!(matches!(parse(&fractional), Err(EventError::Malformed(_))));
}

// ---------------------------------------------------------------------------------------
// The envelope.
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_types_are_other_whatever_their_data() {
    let odd = json!({
        "id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1_700_000_000,
        "data": { "object": { "amount": "not a number", "metadata": { "booking_id": 7 } } }
    });
    assert_eq!(
        parse(&odd).expect("valid").kind,
        StripeEventKind::Other("invoice.paid".into())
    );
    // A payment_intent type the engine does not act on is `Other` too, even without metadata.
    let created = with(
        payment_intent_event("payment_intent.created"),
        "/data/object/metadata",
        None,
    );
    assert_eq!(
        parse(&created).expect("valid").kind,
        StripeEventKind::Other("payment_intent.created".into())
    );
    let no_data = json!({ "id": "evt_1", "type": "ping", "created": 0 });
    assert_eq!(parse(&no_data).expect("valid").kind.type_name(), "ping");
}

#[test]
fn envelope_fields_are_required_and_checked() {
    let event = payment_intent_event("payment_intent.succeeded");
    for (path, field) in [("/id", "id"), ("/type", "type"), ("/created", "created")] {
        assert_eq!(
            parse(&with(event.clone(), path, None)),
            Err(EventError::Missing { field }),
            "{path}"
        );
    }
    assert_eq!(
        parse(&with(event.clone(), "/id", Some(json!("evt 1\n")))),
        Err(EventError::Invalid {
            field: "id",
            reason: "is not an identifier of at most 255 printable ASCII characters"
        })
    );
    let long = "e".repeat(MAX_ID_LEN + 1);
    assert!(matches!(
        parse(&with(event.clone(), "/id", Some(json!(long)))),
        Err(EventError::Invalid { field: "id", .. })
    ));
    assert_eq!(
        parse(&with(event.clone(), "/created", Some(json!(i64::MAX)))),
        Err(EventError::Invalid {
            field: "created",
            reason: "is not a representable Unix time"
        })
    );
    assert_eq!(
        parse(&with(
            event.clone(),
            "/object",
            Some(json!("payment_intent"))
        )),
        Err(EventError::Invalid {
            field: "object",
            reason: "is not \"event\""
        })
    );
    assert!(matches!(
        parse(&with(event, "/created", Some(json!("1680064028")))),
        Err(EventError::Malformed(_))
    ));
}

#[test]
fn escaped_strings_are_decoded() {
    let body = br#"{"id":"evt_\u0031","type":"payment_intent.succeeded","created":1,
        "data":{"object":{"id":"pi_1","amount":1,"currency":"eur",
        "metadata":{"booking_id":"0192f3a4-5b6c-7d8e-9f00-11223344556\u0036"}}}}"#;
    let event = StripeEvent::parse(body).expect("valid event");
    assert_eq!(event.id, "evt_1");
    assert!(
        matches!(event.kind, StripeEventKind::PaymentSucceeded(ref pi) if pi.booking_id == booking())
    );
}

#[test]
fn bodies_that_are_not_events_are_malformed() {
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"\"evt_1\"",
        b"{",
        b"{\"id\":\"evt_1\",\"type\":\"ping\",\"created\":1} trailing",
        b"\xff\xfe",
    ] {
        let err = StripeEvent::parse(body).expect_err("not an event");
        assert_eq!(
            err.kind(),
            "malformed",
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_repeated_field_is_refused() {
    let twice = br#"{"id":"evt_1","id":"evt_2","type":"ping","created":1}"#;
    assert!(matches!(
        StripeEvent::parse(twice),
        Err(EventError::Malformed(_))
    ));
    let two_booking_ids = br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1,
        "data":{"object":{"id":"pi_1","amount":1,"currency":"eur","metadata":{
        "booking_id":"0192f3a4-5b6c-7d8e-9f00-112233445566",
        "booking_id":"0192f3a4-5b6c-7d8e-9f00-112233445567"}}}}"#;
    assert!(matches!(
        StripeEvent::parse(two_booking_ids),
        Err(EventError::Malformed(_))
    ));
}

#[test]
fn oversized_and_deeply_nested_bodies_are_refused_without_overflow() {
    let big = vec![b' '; MAX_EVENT_LEN + 1];
    assert_eq!(
        StripeEvent::parse(&big),
        Err(EventError::TooLarge {
            len: MAX_EVENT_LEN + 1
        })
    );
    // Nesting in a skipped field is skipped without recursion: no stack overflow, and the
    // event is read.
    let depth = 100_000;
    let mut deep = br#"{"id":"evt_1","type":"ping","created":1,"data":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', depth));
    deep.extend(std::iter::repeat_n(b']', depth));
    deep.push(b'}');
    assert_eq!(
        StripeEvent::parse(&deep).map(|e| e.kind),
        Ok(StripeEventKind::Other("ping".into()))
    );
}

#[test]
fn arrays_are_not_read_as_objects() {
    // A derived struct would read `[id, object, type, created]` as the envelope.
    for body in [&br#"[]"#[..], br#"["evt_1", "event", "ping", 1]"#] {
        assert!(matches!(
            StripeEvent::parse(body),
            Err(EventError::Malformed(_))
        ));
    }
    let event = payment_intent_event("payment_intent.succeeded");
    let data_object = with(
        event.clone(),
        "/data/object",
        Some(json!(["pi_1", "payment_intent", 2000, "usd", { "booking_id": BOOKING }])),
    );
    assert!(matches!(parse(&data_object), Err(EventError::Malformed(_))));
    let data = with(event.clone(), "/data", Some(json!([[]])));
    assert!(matches!(parse(&data), Err(EventError::Malformed(_))));
    let metadata = with(event, "/data/object/metadata", Some(json!([BOOKING])));
    assert!(matches!(parse(&metadata), Err(EventError::Malformed(_))));
}

#[test]
fn malformed_messages_are_short() {
    let long = "x".repeat(10_000);
    let body = json!({ "id": "evt_1", "type": "ping", "created": long });
    let Err(EventError::Malformed(message)) = parse(&body) else {
        panic!("a string created is malformed");
    };
    assert!(message.chars().count() <= MAX_MESSAGE_CHARS);
}

#[test]
fn errors_become_field_errors() {
    let err: Error = EventError::Missing {
        field: "data.object.metadata.booking_id",
    }
    .into();
    assert_eq!(
        err,
        Error::invalid("data.object.metadata.booking_id", "is missing")
    );
    let err: Error = EventError::Invalid {
        field: "created",
        reason: "is not a representable Unix time",
    }
    .into();
    assert_eq!(
        err,
        Error::invalid("created", "is not a representable Unix time")
    );
    let err: Error = EventError::TooLarge { len: 5 }.into();
    assert!(matches!(err, Error::Invalid(ref fields) if fields[0].field == "body"));
    assert_eq!(EventError::TooLarge { len: 5 }.kind(), "too_large");
    assert_eq!(EventError::Missing { field: "id" }.kind(), "missing_field");
    assert_eq!(
        EventError::Invalid {
            field: "id",
            reason: "x"
        }
        .kind(),
        "invalid_field"
    );
}

// ---------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------

/// Arbitrary JSON values, to plant in real payloads.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from(BOOKING)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "/id",
    "/type",
    "/created",
    "/object",
    "/data",
    "/data/object",
    "/data/object/id",
    "/data/object/object",
    "/data/object/amount",
    "/data/object/amount_refunded",
    "/data/object/currency",
    "/data/object/payment_intent",
    "/data/object/metadata",
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = StripeEvent::parse(&body);
    }

    #[test]
    fn arbitrary_text_never_panics(body in ".{0,256}") {
        let _ = StripeEvent::parse(body.as_bytes());
    }

    /// Any field of a real payload replaced by any JSON value: an answer, never a panic, and
    /// a successful parse keeps the event's id.
    #[test]
    fn mutated_payloads_never_panic(
        base in 0_usize..4,
        field in 0..FIELDS.len(),
        value in proptest::option::of(any_json()),
    ) {
        let event = match base {
            0 => payment_intent_event("payment_intent.succeeded"),
            1 => payment_intent_event("payment_intent.payment_failed"),
            2 => payment_intent_event("payment_intent.canceled"),
            _ => charge_refunded_event(),
        };
        let id = event["id"].clone();
        let path = FIELDS[field];
        let mutated = with(event, path, value);
        if let Ok(parsed) = parse(&mutated)
            && path != "/id"
        {
            prop_assert_eq!(Value::from(parsed.id), id);
        }
    }
}
