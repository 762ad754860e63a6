//! Webhooks, inbound and outbound.
//!
//! * [`signature`]: the `t=`/`v1=` signature scheme (HMAC-SHA256 of `"{t}.{body}"`, as Stripe
//!   signs): [`verify`] checks the `Stripe-Signature` header of an inbound Stripe event,
//!   [`sign`] makes the `Booking-Signature` header of an outbound delivery.
//! * [`inbox`]: the types of the inbound event inbox ([`crate::store::InboxStore`]).
//!
//! Everything here is pure: the current instant is passed in, nothing reads a clock or the
//! network.

pub mod inbox;
pub mod signature;

pub use signature::{
    DEFAULT_TOLERANCE, HeaderDefect, MAX_HEADER_LEN, SignatureError, SignatureHeader,
    VerifiedSignature, WebhookSecret, sign, sign_all, verify,
};
