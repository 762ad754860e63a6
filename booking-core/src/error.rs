//! The one semantic error type of the engine.
//!
//! Adapters keep their own private errors and map them into [`Error`]; the reference
//! server maps [`Error`] to HTTP problem responses in one place.

use std::fmt;

use serde::Serialize;

/// A single problem with one input field, as reported by validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The path of the offending field, e.g. `location.lat` or `weekly[2].end`.
    pub field: String,
    /// A human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    ///
    /// ```
    /// let e = booking_core::FieldError::new("timezone", "unknown IANA time zone");
    /// assert_eq!(e.field, "timezone");
    /// ```
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The kind of entity an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A booking.
    Booking,
    /// A professional.
    Professional,
    /// A client.
    Client,
    /// A professional's schedule.
    Schedule,
    /// An idempotency record.
    IdempotencyKey,
    /// An event in the webhook inbox.
    InboxEvent,
    /// An outbound webhook subscription.
    WebhookSubscription,
    /// An outbound webhook delivery.
    WebhookDelivery,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Booking => "booking",
            Entity::Professional => "professional",
            Entity::Client => "client",
            Entity::Schedule => "schedule",
            Entity::IdempotencyKey => "idempotency key",
            Entity::InboxEvent => "inbox event",
            Entity::WebhookSubscription => "webhook subscription",
            Entity::WebhookDelivery => "webhook delivery",
        })
    }
}

/// Every way an engine operation can fail.
///
/// The variants are semantic: they say what went wrong for the caller, not which
/// backend noticed it. `Unavailable` is the only variant worth retrying as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entity does not exist (or the caller may not know that it does).
    #[error("{0} not found")]
    NotFound(Entity),
    /// The requested range overlaps the blocked range of an active booking or hold.
    #[error("the requested time is no longer available")]
    SlotUnavailable,
    /// The requested range is not inside the professional's availability.
    #[error("the requested time is outside the professional's availability: {0}")]
    OutsideAvailability(String),
    /// The operation is not allowed in the entity's current state
    /// (for instance cancelling an expired booking).
    #[error("{0}")]
    InvalidState(String),
    /// Something with the same unique identity already exists.
    #[error("{0} already exists")]
    AlreadyExists(Entity),
    /// The caller may see the entity but not make this change.
    #[error("{0}")]
    Forbidden(String),
    /// Input values are well-formed but invalid.
    #[error("validation failed: {}", display_fields(.0))]
    Invalid(Vec<FieldError>),
    /// A backend is temporarily unreachable or overloaded; retrying may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected backend answer. The message is for logs, not clients.
    #[error("internal error: {0}")]
    Internal(String),
    /// The payment provider failed or could not be reached; nothing was left holding a
    /// slot, and retrying the request may succeed.
    #[error("payment provider unavailable: {0}")]
    PaymentProvider(String),
    /// A signed webhook request was refused (see [`crate::webhook::verify`]).
    #[error("webhook signature refused: {0}")]
    BadSignature(#[from] crate::webhook::SignatureError),
}

fn display_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A validation error about one field.
    ///
    /// ```
    /// use booking_core::Error;
    /// let e = Error::invalid("email", "must contain @");
    /// assert!(matches!(e, Error::Invalid(ref v) if v.len() == 1));
    /// ```
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    /// Whether retrying the same call unchanged may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors and turns them into one [`Error::Invalid`].
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// An empty validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.push(field, message);
        }
    }

    /// Records the field errors of a nested validation, or keeps its value.
    pub fn take<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(Error::Invalid(errs)) => {
                self.errors.extend(errs);
                None
            }
            Err(other) => {
                self.push("", other.to_string());
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.errors))
        }
    }
}
