//! Fuzz entry points. The `fuzz/` crate (cargo-fuzz) calls them with arbitrary bytes, and
//! `booking-core/tests/fuzz_corpus.rs` replays the committed corpus through them, so CI
//! re-checks every input a fuzzer ever found interesting. Each function panics only on a
//! real bug: it never trusts the input and checks the invariants it can.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{NewClient, NewProfessional, ProfessionalId, TimeRange};
use crate::idempotency::{Fingerprint, IdempotencyKey, canonical_json};
use crate::schedule::ScheduleInput;
use crate::store::Cursor;
use crate::testing::model;
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

/// A model sequence decoded from bytes, for the `store_ops` fuzz target: the initial
/// state (holds or not, both professionals' schedules) from the first 11 bytes, then one
/// step per 4 bytes. The value ranges are those of the state-machine strategy
/// ([`crate::testing::model::EngineModel`]), so every decoded sequence is one the model
/// can judge; run it with [`crate::testing::model::run_sequence`] against a store.
pub fn model_sequence(data: &[u8]) -> (model::ModelState, Vec<model::Step>) {
    use model::{CLIENTS, KEY_TTL, LOCAL_AT_T0, ORIGIN, PROS, Party, Request, STEP, Step};

    let byte = |i: usize| i64::from(data.get(i).copied().unwrap_or(0));
    let pick = |options: &[i64], b: i64| options[usize::try_from(b).unwrap_or(0) % options.len()];
    let schedule = |pro: usize, at: usize| {
        let base = LOCAL_AT_T0[pro] + ORIGIN;
        let hours = (byte(at) % 2 == 1).then(|| {
            let s1 = base + (byte(at + 1) % 4) * STEP;
            let e1 = s1 + (8 + byte(at + 1) / 4 % 12) * STEP;
            let s2 = e1 + (1 + byte(at + 2) % 5) * STEP;
            let l2 = 4 + byte(at + 2) / 5 % 20;
            vec![(s1, e1), (s2, (s2 + l2 * STEP).min(1440))]
        });
        model::ModelSchedule {
            hours,
            step: pick(&[5, 10, 15, 15, 30], byte(at + 3)),
            notice: pick(&[0, 10, 20, 45], byte(at + 3) / 5),
            buffer_before: pick(&[0, 5, 10, 15, 25], byte(at + 4)),
            buffer_after: pick(&[0, 5, 10, 15, 25], byte(at + 4) / 5),
        }
    };
    let initial = model::ModelState {
        holds: byte(0) % 2 == 1,
        schedules: (0..PROS).map(|pro| schedule(pro, 1 + 5 * pro)).collect(),
        now: 0,
        bookings: Vec::new(),
        keys: std::collections::BTreeMap::new(),
        made: std::collections::BTreeMap::new(),
        events: Vec::new(),
        hard: model::HardCases::default(),
    };
    let party = |b: u8| match b % 6 {
        0 => Party::OtherClient,
        1 => Party::Professional,
        _ => Party::Owner,
    };
    let mut now = 0;
    let mut steps = Vec::new();
    let mut keyed: Vec<(Request, u8)> = Vec::new();
    for chunk in data.get(11..).unwrap_or_default().chunks_exact(4) {
        let [kind, a, b, c] = [chunk[0], chunk[1], chunk[2], chunk[3]];
        // Start slots around now, as the strategy draws them.
        let next = (now - ORIGIN).max(0).div_euclid(STEP) + 1;
        let slot = |x: u8| (next - 1).max(0) + i64::from(x % 17);
        let request = Request {
            client: usize::from(a) % CLIENTS,
            pro: usize::from(a >> 4) % PROS,
            slot: slot(b),
            len: 1 + i64::from(c % 4),
        };
        let step = match kind % 9 {
            // A new attempt; as in the strategy, only a keyed one can crash or take the
            // answered path.
            0 => {
                let key = (kind & 0x10 != 0).then_some(c >> 6);
                Step::Create {
                    request,
                    key,
                    crash: key.is_some() && kind & 0x20 != 0,
                    answered: key.is_some() && kind & 0x40 != 0,
                }
            }
            // A retry of an earlier keyed attempt: the same request again, or (bit 7 of
            // the kind) another one under the same key.
            1 => match keyed.get(usize::from(b) % keyed.len().max(1)) {
                Some(&(first, key)) => Step::Create {
                    request: if kind & 0x80 != 0 {
                        Request {
                            client: first.client,
                            ..request
                        }
                    } else {
                        first
                    },
                    key: Some(key),
                    crash: kind & 0x20 != 0,
                    answered: kind & 0x40 != 0,
                },
                None => Step::Sweep,
            },
            2 => Step::Cancel {
                n: usize::from(a),
                by: party(b),
            },
            3 => Step::Confirm(usize::from(a)),
            4 => Step::Reschedule {
                n: usize::from(a),
                slot: slot(b),
                by: party(c),
            },
            5 | 6 => {
                let minutes = 1 + i64::from(a) % (2 * KEY_TTL);
                now += minutes;
                Step::Advance(minutes)
            }
            7 => Step::Sweep,
            _ => Step::Purge,
        };
        if let Step::Create {
            request,
            key: Some(key),
            ..
        } = step
        {
            keyed.push((request, key));
        }
        steps.push(step);
    }
    (initial, steps)
}
