//! The envelope: unknown types, required fields, malformed and hostile bodies, and how errors read.

use super::*;

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
