//! Properties: no body, however mangled, makes the parser panic.

use super::*;

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
