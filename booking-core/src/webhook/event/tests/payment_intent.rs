//! `payment_intent.*` events: read in full, each type its kind, the booking id and the amount checked.

use super::*;

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
