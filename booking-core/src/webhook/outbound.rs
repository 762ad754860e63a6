//! Outbound webhooks: subscriptions, deliveries and what to do after an attempt.
//!
//! An admin subscribes a URL to some [`EventKind`]s, optionally of one professional. The
//! fan-out ([`crate::store::SubscriptionStore::record_deliveries`]) turns each outbox event
//! claimed for [`crate::events::Consumer::Webhooks`] into one [`Delivery`] per matching
//! subscription, exactly once. A delivery is attempted (`POST url` with the event JSON,
//! signed with [`crate::webhook::sign`] and the subscription's secret) until a 2xx answer,
//! with exponential backoff and full jitter, for [`DELIVERY_WINDOW`] after its first attempt
//! ([`delivery_policy`], [`after_attempt`]); then it is `failed`. A redelivery puts it back
//! with the same [`DeliveryId`], so receivers deduplicate by `Booking-Delivery-Id` (or by
//! `Booking-Event-Id` across subscriptions).
//!
//! Everything here is pure: validation, matching and the retry decision take their inputs
//! as arguments.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{DeliveryId, EventId, ProfessionalId, SubscriptionId};
use crate::error::{Error, FieldError, Result};
use crate::events::{DomainEvent, EventKind};
use crate::webhook::{Next, RetryPolicy, WebhookSecret};

/// How long a delivery is retried after its first attempt: 24 hours.
pub const DELIVERY_WINDOW: Duration = Duration::hours(24);

/// The longest accepted subscription URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The retry policy of outbound deliveries: backoff ceilings from 10 s doubling up to 1 h,
/// no attempt limit, give up [`DELIVERY_WINDOW`] after the first attempt.
pub fn delivery_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::seconds(10),
        cap: Duration::hours(1),
        max_attempts: u32::MAX,
        give_up_after: Some(DELIVERY_WINDOW),
        retention: Duration::days(30),
    }
}

/// A subscription as the admin asks for it, validated by [`NewSubscription::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Where deliveries are POSTed: an absolute `http` or `https` URL.
    pub url: String,
    /// The kinds of events delivered: non-empty, no duplicates.
    pub event_types: Vec<EventKind>,
    /// Only this professional's events, if set.
    pub professional_id: Option<ProfessionalId>,
}

impl NewSubscription {
    /// Checks the parts a subscription needs, all at once: the URL is absolute `http` or
    /// `https` with a host and at most [`MAX_URL_LEN`] bytes, and `event_types` is a
    /// non-empty list of event type names (duplicates are dropped, order kept). Whether the
    /// host is a public address is the server's check (it needs DNS).
    pub fn validate(
        url: &str,
        event_types: &[String],
        professional_id: Option<ProfessionalId>,
    ) -> Result<Self> {
        let mut errors = Vec::new();
        if let Err(message) = check_url(url) {
            errors.push(FieldError::new("url", message));
        }
        let mut kinds: Vec<EventKind> = Vec::new();
        if event_types.is_empty() {
            errors.push(FieldError::new(
                "event_types",
                "must name at least one event type",
            ));
        }
        for name in event_types {
            match EventKind::parse(name) {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    "event_types",
                    format!(
                        "unknown event type {name:?}; known: booking_created, booking_confirmed, \
                         booking_cancelled, booking_expired, booking_rescheduled"
                    ),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(Self {
            url: url.to_owned(),
            event_types: kinds,
            professional_id,
        })
    }
}

/// Why `url` cannot be a delivery target (scheme, shape and length only).
fn check_url(url: &str) -> std::result::Result<(), &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("must be at most 2048 bytes");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters");
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or("must be an absolute http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host");
    }
    Ok(())
}

/// A stored subscription.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Identity (UUID v7).
    pub id: SubscriptionId,
    /// Where deliveries go.
    pub url: String,
    /// The kinds of events delivered.
    pub event_types: Vec<EventKind>,
    /// Only this professional's events, if set.
    pub professional_id: Option<ProfessionalId>,
    /// The signing key of its deliveries (`Booking-Signature`). It is stored as given,
    /// because signing needs it in the clear; the API shows it once, when the subscription
    /// is created, and never lists it.
    pub secret: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("professional_id", &self.professional_id)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Subscription {
    /// A new subscription from a validated request, with its secret, created at `now`.
    pub fn new(request: NewSubscription, secret: String, now: DateTime<Utc>) -> Self {
        Self {
            id: SubscriptionId::new_at(now),
            url: request.url,
            event_types: request.event_types,
            professional_id: request.professional_id,
            secret,
            created_at: now,
        }
    }

    /// Whether `event` is delivered to this subscription.
    pub fn matches(&self, event: &DomainEvent) -> bool {
        self.event_types.contains(&event.kind)
            && self
                .professional_id
                .is_none_or(|p| p == event.professional_id)
    }

    /// The list position of this subscription: `(created_at, id)`.
    pub fn cursor(&self) -> crate::store::Cursor {
        crate::store::Cursor {
            primary: self.created_at.timestamp_micros(),
            id: self.id.as_uuid(),
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed for [`DELIVERY_WINDOW`]; a redelivery may revive it.
    Failed,
}

impl DeliveryStatus {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// One event for one subscription, and its delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identity; sent as `Booking-Delivery-Id`, the same on every attempt.
    pub id: DeliveryId,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The event delivered.
    pub event_id: EventId,
    /// Attempts made (or started) so far.
    pub attempt: u32,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// The HTTP status of the last answer, if there was one.
    pub response_status: Option<u16>,
    /// The last error (clipped), if the last attempt failed.
    pub last_error: Option<String>,
    /// When it is due next (while pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the current retry window started (the first attempt, or the first after a
    /// redelivery).
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When a 2xx answer arrived.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the fan-out created it.
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    /// A pending delivery of `event` to `subscription`, due at `now`.
    pub fn new(subscription: SubscriptionId, event: EventId, now: DateTime<Utc>) -> Self {
        Self {
            id: DeliveryId::new_at(now),
            subscription_id: subscription,
            event_id: event,
            attempt: 0,
            status: DeliveryStatus::Pending,
            response_status: None,
            last_error: None,
            next_attempt_at: Some(now),
            first_attempt_at: None,
            delivered_at: None,
            created_at: now,
        }
    }

    /// The list position of this delivery: `(created_at, id)`.
    pub fn cursor(&self) -> crate::store::Cursor {
        crate::store::Cursor {
            primary: self.created_at.timestamp_micros(),
            id: self.id.as_uuid(),
        }
    }
}

/// A delivery handed to a sender by [`crate::store::SubscriptionStore::claim_deliveries`]:
/// everything needed to make the attempt.
#[derive(Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery, its `attempt` already counting this one.
    pub delivery: Delivery,
    /// The claim; only it may settle this attempt.
    pub lease: crate::idempotency::LeaseId,
    /// The subscription's URL.
    pub url: String,
    /// The subscription's signing key.
    pub secret: String,
    /// The event to send.
    pub event: DomainEvent,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("delivery", &self.delivery)
            .field("lease", &self.lease)
            .field("url", &self.url)
            .field("event", &self.event.id)
            .finish_non_exhaustive()
    }
}

impl DueDelivery {
    /// The signing key, or [`Error::Invalid`] for a blank stored secret.
    pub fn signing_key(&self) -> Result<WebhookSecret> {
        WebhookSecret::new(self.secret.clone())
    }
}

/// What one attempt's result means for the delivery (see [`after_attempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer: done.
    Delivered {
        /// The HTTP status.
        response_status: u16,
    },
    /// Failed; try again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// The HTTP status, if there was an answer.
        response_status: Option<u16>,
        /// Why it failed.
        error: String,
    },
    /// Failed, and the window is over: give up.
    Failed {
        /// The HTTP status, if there was an answer.
        response_status: Option<u16>,
        /// Why it failed.
        error: String,
    },
}

/// What the sender saw: an HTTP status, or an error before any answer (refused target,
/// connection failure, timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status.
    Answered(u16),
    /// No answer: why.
    NoAnswer(String),
}

/// Decides what follows attempt `delivery.attempt` (made at `now`) given `result`: a 2xx is
/// delivered; anything else is retried after [`RetryPolicy::next_at`] (measured from
/// `delivery.first_attempt_at`, or `now` if unset) or failed when the policy gives up.
/// `random` is a uniform draw from `[0, 1)` for the jitter.
pub fn after_attempt(
    policy: &RetryPolicy,
    delivery: &Delivery,
    result: &AttemptResult,
    now: DateTime<Utc>,
    random: f64,
) -> AttemptOutcome {
    let (response_status, error) = match result {
        AttemptResult::Answered(s) if (200..300).contains(s) => {
            return AttemptOutcome::Delivered {
                response_status: *s,
            };
        }
        AttemptResult::Answered(s) => (Some(*s), format!("answered HTTP {s}")),
        AttemptResult::NoAnswer(e) => (None, e.clone()),
    };
    let first = delivery.first_attempt_at.unwrap_or(now);
    match policy.next_at(delivery.attempt.max(1), first, now, random) {
        Next::RetryIn(delay) => AttemptOutcome::Retry {
            at: now.checked_add_signed(delay).unwrap_or(now),
            response_status,
            error,
        },
        Next::DeadLetter => AttemptOutcome::Failed {
            response_status,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing_doc::sample_booking;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn validation_accepts_http_and_https_only() {
        let kinds = names(&["booking_created"]);
        assert!(NewSubscription::validate("https://example.com/hook", &kinds, None).is_ok());
        assert!(NewSubscription::validate("HTTP://example.com:8080", &kinds, None).is_ok());
        for bad in [
            "ftp://example.com",
            "example.com",
            "https://",
            "http:///path",
            "https://:80/x",
            "https://exa mple.com",
            "",
        ] {
            assert!(
                NewSubscription::validate(bad, &kinds, None).is_err(),
                "{bad:?} must be refused"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(NewSubscription::validate(&long, &kinds, None).is_err());
    }

    #[test]
    fn validation_wants_known_event_types_and_reports_every_field() {
        let ok = NewSubscription::validate(
            "https://example.com",
            &names(&["booking_cancelled", "booking_created", "booking_cancelled"]),
            None,
        )
        .expect("valid");
        assert_eq!(
            ok.event_types,
            vec![EventKind::BookingCancelled, EventKind::BookingCreated]
        );
        let Err(Error::Invalid(errors)) =
            NewSubscription::validate("ftp://x", &names(&["booking_eaten"]), None)
        else {
            panic!("must be invalid");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "event_types"]);
        assert!(NewSubscription::validate("https://x", &[], None).is_err());
    }

    #[test]
    fn subscriptions_match_by_kind_and_professional() {
        let (booking, now) = sample_booking(crate::BookingStatus::Confirmed);
        let event = DomainEvent::new(EventKind::BookingCreated, &booking, None);
        let request = NewSubscription {
            url: "https://example.com".into(),
            event_types: vec![EventKind::BookingCreated],
            professional_id: None,
        };
        let mut s = Subscription::new(request, "whsec_x".into(), now);
        assert!(s.matches(&event));
        s.professional_id = Some(ProfessionalId::new_at(now));
        assert!(!s.matches(&event));
        s.professional_id = Some(booking.professional_id);
        assert!(s.matches(&event));
        s.event_types = vec![EventKind::BookingCancelled];
        assert!(!s.matches(&event));
        assert!(!format!("{s:?}").contains("whsec_x"));
    }

    #[test]
    fn attempts_are_retried_within_the_window_then_fail() {
        let (booking, now) = sample_booking(crate::BookingStatus::Confirmed);
        let policy = delivery_policy();
        let mut d = Delivery::new(SubscriptionId::new_at(now), EventId::new_at(now), now);
        d.attempt = 1;
        d.first_attempt_at = Some(now);
        assert_eq!(
            after_attempt(&policy, &d, &AttemptResult::Answered(204), now, 0.5),
            AttemptOutcome::Delivered {
                response_status: 204
            }
        );
        match after_attempt(&policy, &d, &AttemptResult::Answered(500), now, 0.5) {
            AttemptOutcome::Retry {
                at,
                response_status,
                ..
            } => {
                assert_eq!(response_status, Some(500));
                assert_eq!(at, now + Duration::seconds(5));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        let late = now + DELIVERY_WINDOW;
        d.attempt = 40;
        assert!(matches!(
            after_attempt(
                &policy,
                &d,
                &AttemptResult::NoAnswer("timeout".into()),
                late,
                0.5
            ),
            AttemptOutcome::Failed {
                response_status: None,
                ..
            }
        ));
        // A retry never lands after the window closes.
        let almost = now + DELIVERY_WINDOW - Duration::seconds(1);
        match after_attempt(&policy, &d, &AttemptResult::Answered(503), almost, 0.99) {
            AttemptOutcome::Retry { at, .. } => assert!(at <= now + DELIVERY_WINDOW),
            other => panic!("expected a retry, got {other:?}"),
        }
        let _ = booking;
    }
}
