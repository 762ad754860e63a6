//! `charge.refunded` events: linked to their booking through the payment intent.

use super::*;

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
