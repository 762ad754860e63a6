//! Webhooks, inbound and outbound.
//!
//! * [`signature`]: the `t=`/`v1=` signature scheme (HMAC-SHA256 of `"{t}.{body}"`, as Stripe
//!   signs): [`verify`] checks the `Stripe-Signature` header of an inbound Stripe event,
//!   [`sign`] makes the `Booking-Signature` header of an outbound delivery.
//! * [`inbox`]: the types of the inbound event inbox ([`crate::store::InboxStore`]).
//! * [`event`]: [`StripeEvent::parse`] reads the fields the engine needs from a Stripe event
//!   body: payments succeeded, failed or canceled, charges refunded; other types are
//!   [`StripeEventKind::Other`].
//! * [`outbound`]: outbound subscriptions and deliveries, and the retry decision after an
//!   attempt ([`outbound::after_attempt`]).
//! * [`policy`]: [`RetryPolicy`], exponential backoff with full jitter, dead-lettering and the
//!   retention of processed events.
//!
//! Everything here is pure: the current instant is passed in, nothing reads a clock or the
//! network.

pub mod event;
pub mod inbox;
pub mod outbound;
pub mod policy;
pub mod signature;

pub use event::{
    EventError, EventHeader, MAX_EVENT_LEN, PaymentIntent, RefundedCharge, StripeEvent,
    StripeEventKind,
};
pub use policy::{Next, RetryPolicy};
pub use signature::{
    DEFAULT_TOLERANCE, HeaderDefect, MAX_HEADER_LEN, SignatureError, SignatureHeader,
    VerifiedSignature, WebhookSecret, sign, sign_all, verify,
};
