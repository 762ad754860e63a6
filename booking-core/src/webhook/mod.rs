//! Webhooks, inbound and outbound.
//!
//! * [`signature`]: the `t=`/`v1=` signature scheme (HMAC-SHA256 of `"{t}.{body}"`, as Stripe
//!   signs): [`verify`] checks the `Stripe-Signature` header of an inbound Stripe event,
//!   [`sign`] makes the `Booking-Signature` header of an outbound delivery.
//! * [`policy`]: [`RetryPolicy`], exponential backoff with full jitter, dead-lettering and the
//!   retention of processed events.
//!
//! Everything here is pure: the current instant is passed in, nothing reads a clock or the
//! network.

pub mod policy;
pub mod signature;

pub use policy::{Next, RetryPolicy};
pub use signature::{
    DEFAULT_TOLERANCE, HeaderDefect, MAX_HEADER_LEN, SignatureError, SignatureHeader,
    VerifiedSignature, WebhookSecret, sign, sign_all, verify,
};
