//! Fuzz entry points. The `fuzz/` crate (cargo-fuzz) calls them with arbitrary bytes, and
//! `booking-core/tests/fuzz_corpus.rs` replays the committed corpus through them, so CI
//! re-checks every input a fuzzer ever found interesting. Each function panics only on a
//! real bug: it never trusts the input and checks the invariants it can.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{NewClient, NewProfessional, ProfessionalId, TimeRange};
use crate::idempotency::{Fingerprint, IdempotencyKey, canonical_json};
use crate::schedule::ScheduleInput;
use crate::store::Cursor;
use crate::webhook::{self, DEFAULT_TOLERANCE, SignatureHeader, WebhookSecret};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A schedule body as the server would receive it, then slots over a window picked from the
/// input's first bytes: validation never panics, and every slot it yields is sorted, unique,
/// of the asked duration, inside the window and admitted by the schedule.
pub fn schedule_json(data: &[u8]) {
    let (head, body) = data.split_at(data.len().min(4));
    let Ok(input) = serde_json::from_slice::<ScheduleInput>(body) else {
        return;
    };
    let Ok(schedule) = input.validate() else {
        return;
    };
    let pick = |i: usize| i64::from(head.get(i).copied().unwrap_or(0));
    let start = base() + Duration::hours(pick(0) * 7);
    let days = 1 + pick(1) % 31;
    let duration = Duration::minutes(5 + (pick(2) * 7) % 236);
    let now = start - Duration::hours(pick(3) % 48);
    let Ok(window) = TimeRange::new(start, start + Duration::days(days)) else {
        return;
    };
    let Ok(slots) = schedule.available_slots(&window, duration, now, &[]) else {
        return;
    };
    for pair in slots.windows(2) {
        assert!(pair[0].start() < pair[1].start(), "slots sorted and unique");
    }
    for s in &slots {
        assert_eq!(s.duration(), duration);
        assert!(window.contains(s), "slot {s:?} outside window {window:?}");
        assert!(
            schedule.admits(s, now).is_ok(),
            "offered slot {s:?} is not admitted"
        );
    }
    // The wire form round-trips.
    if let Ok(json) = serde_json::to_string(&schedule) {
        let back: crate::schedule::Schedule =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("round trip failed: {e}"));
        assert_eq!(back, schedule);
    }
}

/// Header and body handling of idempotent requests: key parsing, fingerprints and the
/// canonical JSON they hash (which must be a fixed point).
pub fn idempotency_input(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = IdempotencyKey::parse(text) {
            assert!(!key.as_str().is_empty() && key.as_str().len() <= 255);
            assert_eq!(IdempotencyKey::parse(&format!("\"{key}\"")).ok(), Some(key));
        }
        let _ = text.parse::<Cursor>();
    }
    let a = Fingerprint::of_request("POST", "/v1/bookings", data);
    assert_eq!(a, Fingerprint::of_request("POST", "/v1/bookings", data));
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut once = String::new();
        canonical_json(&v, &mut once);
        let reparsed: serde_json::Value =
            serde_json::from_str(&once).unwrap_or_else(|e| panic!("canonical JSON reparses: {e}"));
        let mut twice = String::new();
        canonical_json(&reparsed, &mut twice);
        assert_eq!(once, twice, "canonical form is a fixed point");
        assert_eq!(
            a,
            Fingerprint::of_request("POST", "/v1/bookings", once.as_bytes())
        );
    }
}

/// Creation bodies of professionals and clients and booking ranges: validation never
/// panics, and what it accepts satisfies the documented bounds.
pub fn directory_input(data: &[u8]) {
    let now = base();
    if let Ok(p) = serde_json::from_slice::<NewProfessional>(data)
        && let Ok(p) = p.validate(ProfessionalId::new_at(now), now)
    {
        assert!((-90.0..=90.0).contains(&p.location.lat));
        assert!((-180.0..=180.0).contains(&p.location.lng));
        assert!(p.hourly_rate_cents >= 0);
        assert!(!p.name.is_empty());
    }
    if let Ok(c) = serde_json::from_slice::<NewClient>(data) {
        let _ = c.validate(crate::domain::ClientId::new_at(now), now);
    }
    if let Ok(r) = serde_json::from_slice::<TimeRange>(data) {
        assert!(r.start() < r.end());
        assert!(r.duration() <= TimeRange::MAX_LENGTH);
    }
}

/// A webhook signature header and body: `data` is `[selector] header \n body`. Parsing and
/// verifying never panic; a parsed header re-renders to one that parses the same; an accepted
/// request really carries the HMAC of its body under the reported secret within tolerance;
/// and the body signed by us always verifies.
pub fn webhook_signature(data: &[u8]) {
    let (selector, rest) = data.split_first().unwrap_or((&0, &[]));
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let secrets: Vec<WebhookSecret> = ["whsec_fuzz_a", "whsec_fuzz_b", "k"]
        .iter()
        .take(1 + usize::from(selector % 3))
        .filter_map(|s| WebhookSecret::new(*s).ok())
        .collect();
    let now = base() + Duration::seconds(i64::from(selector >> 2) * 37 - 300);

    if let Ok(parsed) = SignatureHeader::parse(header) {
        let rendered = parsed.to_string();
        assert_eq!(SignatureHeader::parse(&rendered).as_ref(), Ok(&parsed));
    }
    if let Ok(ok) = webhook::verify(Some(header), body, &secrets, now, DEFAULT_TOLERANCE) {
        let parsed = SignatureHeader::parse(header).unwrap_or_else(|e| panic!("verified but {e}"));
        let expected = webhook::sign(&secrets[ok.secret_index], ok.signed_at, body);
        let expected = SignatureHeader::parse(&expected).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.signatures().contains(&expected.signatures()[0]));
        assert!((now - ok.signed_at).abs() <= DEFAULT_TOLERANCE);
    }
    let ours = webhook::sign(&secrets[0], now, body);
    let verified = webhook::verify(Some(&ours), body, &secrets, now, DEFAULT_TOLERANCE);
    assert_eq!(verified.map(|v| v.secret_index), Ok(0));
}

/// A Stripe event body: parsing never panics, and an event it accepts is well-formed
/// (identifier-shaped ids and type, an `Other` type that is not one of the handled ones,
/// non-negative amounts) and reads back the same from a minimal body carrying only the
/// fields the engine uses, so nothing else in the body changed what was read.
pub fn stripe_event(data: &[u8]) {
    use crate::webhook::event::MAX_ID_LEN;
    use crate::webhook::{StripeEvent, StripeEventKind};
    use serde_json::json;

    let Ok(event) = StripeEvent::parse(data) else {
        return;
    };
    let identifier =
        |s: &str| !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    assert!(identifier(&event.id), "id {:?}", event.id);
    assert!(identifier(event.kind.type_name()));
    let object = match &event.kind {
        StripeEventKind::PaymentSucceeded(pi)
        | StripeEventKind::PaymentFailed(pi)
        | StripeEventKind::PaymentCanceled(pi) => {
            assert!(identifier(&pi.id) && pi.amount.amount_cents >= 0);
            json!({
                "id": pi.id, "object": "payment_intent", "amount": pi.amount.amount_cents,
                "currency": pi.amount.currency.as_str(),
                "metadata": { "booking_id": pi.booking_id.to_string() },
            })
        }
        StripeEventKind::ChargeRefunded(charge) => {
            assert!(identifier(&charge.id) && identifier(&charge.payment_intent));
            assert!(charge.amount_refunded.amount_cents >= 0);
            let metadata = match charge.booking_id {
                Some(id) => json!({ "booking_id": id.to_string() }),
                None => json!({}),
            };
            json!({
                "id": charge.id, "object": "charge", "payment_intent": charge.payment_intent,
                "amount_refunded": charge.amount_refunded.amount_cents,
                "currency": charge.amount_refunded.currency.as_str(), "metadata": metadata,
            })
        }
        StripeEventKind::Other(name) => {
            let handled = [
                "payment_intent.succeeded",
                "payment_intent.payment_failed",
                "payment_intent.canceled",
                "charge.refunded",
            ];
            assert!(!handled.contains(&name.as_str()), "{name} read as Other");
            json!({})
        }
    };
    let minimal = json!({
        "id": event.id, "object": "event", "type": event.kind.type_name(),
        "created": event.created.timestamp(), "data": { "object": object },
    });
    assert_eq!(
        StripeEvent::parse(minimal.to_string().as_bytes()).as_ref(),
        Ok(&event)
    );
}
