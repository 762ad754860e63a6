//! [`ProblemCode`]: every machine-readable `code` an error response can carry, with its
//! HTTP status and title.

use axum::http::StatusCode;

/// The stable machine-readable `code` of a problem document. The wire string
/// ([`ProblemCode::as_str`]), the status ([`ProblemCode::status`]) and the title
/// ([`ProblemCode::title`]) of each code are fixed here, in exhaustive matches: a new code
/// cannot be added without all three, and a misspelt code does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemCode {
    /// 400: malformed JSON, a wrong content type, an unknown field, a bad cursor.
    MalformedRequest,
    /// 400: an idempotent `POST` without an `Idempotency-Key` header.
    IdempotencyKeyMissing,
    /// 400: a Stripe webhook whose `Stripe-Signature` was refused.
    InvalidSignature,
    /// 401: no bearer token, or an unknown one.
    Unauthorized,
    /// 403: the caller may see the resource but not change it.
    Forbidden,
    /// 404: no such resource, or one the caller may not see.
    NotFound,
    /// 405: a known path with a method it does not support.
    MethodNotAllowed,
    /// 408: the request took longer than the server's request timeout.
    RequestTimeout,
    /// 409: the range overlaps another active booking's blocked range.
    SlotUnavailable,
    /// 409: the booking's status does not allow the change.
    InvalidState,
    /// 409: the resource exists already.
    AlreadyExists,
    /// 409: a request with the same idempotency key is still running.
    IdempotencyRequestInFlight,
    /// 409: the API token of a subject created by this request cannot be derived again.
    ApiTokenUnrecoverable,
    /// 413: the body exceeds [`crate::BODY_LIMIT`].
    PayloadTooLarge,
    /// 422: well-formed but invalid values; the document lists them in `errors`.
    ValidationFailed,
    /// 422: the range is not a slot the professional's availability offers.
    OutsideAvailability,
    /// 422: the idempotency key was used with a different request.
    IdempotencyKeyReused,
    /// 500: an internal error (logged with the request id, never shown).
    Internal,
    /// 502: the payment provider could not be reached.
    PaymentProviderUnavailable,
    /// 503: the store is unreachable for now (with `Retry-After`).
    StoreUnavailable,
}

impl ProblemCode {
    /// Every code, ordered by status.
    pub const ALL: [ProblemCode; 20] = [
        ProblemCode::MalformedRequest,
        ProblemCode::IdempotencyKeyMissing,
        ProblemCode::InvalidSignature,
        ProblemCode::Unauthorized,
        ProblemCode::Forbidden,
        ProblemCode::NotFound,
        ProblemCode::MethodNotAllowed,
        ProblemCode::RequestTimeout,
        ProblemCode::SlotUnavailable,
        ProblemCode::InvalidState,
        ProblemCode::AlreadyExists,
        ProblemCode::IdempotencyRequestInFlight,
        ProblemCode::ApiTokenUnrecoverable,
        ProblemCode::PayloadTooLarge,
        ProblemCode::ValidationFailed,
        ProblemCode::OutsideAvailability,
        ProblemCode::IdempotencyKeyReused,
        ProblemCode::Internal,
        ProblemCode::PaymentProviderUnavailable,
        ProblemCode::StoreUnavailable,
    ];

    /// The code as sent in the `code` member, e.g. `slot_unavailable`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemCode::MalformedRequest => "malformed_request",
            ProblemCode::IdempotencyKeyMissing => "idempotency_key_missing",
            ProblemCode::InvalidSignature => "invalid_signature",
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::NotFound => "not_found",
            ProblemCode::MethodNotAllowed => "method_not_allowed",
            ProblemCode::RequestTimeout => "request_timeout",
            ProblemCode::SlotUnavailable => "slot_unavailable",
            ProblemCode::InvalidState => "invalid_state",
            ProblemCode::AlreadyExists => "already_exists",
            ProblemCode::IdempotencyRequestInFlight => "idempotency_request_in_flight",
            ProblemCode::ApiTokenUnrecoverable => "api_token_unrecoverable",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::ValidationFailed => "validation_failed",
            ProblemCode::OutsideAvailability => "outside_availability",
            ProblemCode::IdempotencyKeyReused => "idempotency_key_reused",
            ProblemCode::Internal => "internal",
            ProblemCode::PaymentProviderUnavailable => "payment_provider_unavailable",
            ProblemCode::StoreUnavailable => "store_unavailable",
        }
    }

    /// The HTTP status a problem with this code is sent with.
    pub const fn status(self) -> StatusCode {
        match self {
            ProblemCode::MalformedRequest
            | ProblemCode::IdempotencyKeyMissing
            | ProblemCode::InvalidSignature => StatusCode::BAD_REQUEST,
            ProblemCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemCode::Forbidden => StatusCode::FORBIDDEN,
            ProblemCode::NotFound => StatusCode::NOT_FOUND,
            ProblemCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemCode::SlotUnavailable
            | ProblemCode::InvalidState
            | ProblemCode::AlreadyExists
            | ProblemCode::IdempotencyRequestInFlight
            | ProblemCode::ApiTokenUnrecoverable => StatusCode::CONFLICT,
            ProblemCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::ValidationFailed
            | ProblemCode::OutsideAvailability
            | ProblemCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::PaymentProviderUnavailable => StatusCode::BAD_GATEWAY,
            ProblemCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short summary of the problem type (the same for every occurrence).
    pub const fn title(self) -> &'static str {
        match self {
            ProblemCode::MalformedRequest => "Malformed request",
            ProblemCode::IdempotencyKeyMissing => "Idempotency key missing",
            ProblemCode::InvalidSignature => "Invalid signature",
            ProblemCode::Unauthorized => "Unauthorized",
            ProblemCode::Forbidden => "Forbidden",
            ProblemCode::NotFound => "Not found",
            ProblemCode::MethodNotAllowed => "Method not allowed",
            ProblemCode::RequestTimeout => "Request timeout",
            ProblemCode::SlotUnavailable => "Slot unavailable",
            ProblemCode::InvalidState => "Invalid state",
            ProblemCode::AlreadyExists => "Already exists",
            ProblemCode::IdempotencyRequestInFlight => "Request in flight",
            ProblemCode::ApiTokenUnrecoverable => "API token unrecoverable",
            ProblemCode::PayloadTooLarge => "Payload too large",
            ProblemCode::ValidationFailed => "Validation failed",
            ProblemCode::OutsideAvailability => "Outside availability",
            ProblemCode::IdempotencyKeyReused => "Idempotency key reused",
            ProblemCode::Internal => "Internal error",
            ProblemCode::PaymentProviderUnavailable => "Payment provider unavailable",
            ProblemCode::StoreUnavailable => "Store unavailable",
        }
    }

    /// The `type` URI of problems with this code.
    pub fn type_uri(self) -> String {
        format!("urn:booking-engine:problem:{}", self.as_str())
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemCode;

    /// The wire strings, statuses and titles as the server has always sent them.
    #[test]
    fn wire_strings_statuses_and_titles_are_fixed() {
        let expected: [(&str, u16, &str); 20] = [
            ("malformed_request", 400, "Malformed request"),
            ("idempotency_key_missing", 400, "Idempotency key missing"),
            ("invalid_signature", 400, "Invalid signature"),
            ("unauthorized", 401, "Unauthorized"),
            ("forbidden", 403, "Forbidden"),
            ("not_found", 404, "Not found"),
            ("method_not_allowed", 405, "Method not allowed"),
            ("request_timeout", 408, "Request timeout"),
            ("slot_unavailable", 409, "Slot unavailable"),
            ("invalid_state", 409, "Invalid state"),
            ("already_exists", 409, "Already exists"),
            ("idempotency_request_in_flight", 409, "Request in flight"),
            ("api_token_unrecoverable", 409, "API token unrecoverable"),
            ("payload_too_large", 413, "Payload too large"),
            ("validation_failed", 422, "Validation failed"),
            ("outside_availability", 422, "Outside availability"),
            ("idempotency_key_reused", 422, "Idempotency key reused"),
            ("internal", 500, "Internal error"),
            (
                "payment_provider_unavailable",
                502,
                "Payment provider unavailable",
            ),
            ("store_unavailable", 503, "Store unavailable"),
        ];
        for (code, (wire, status, title)) in ProblemCode::ALL.into_iter().zip(expected) {
            assert_eq!(code.as_str(), wire);
            assert_eq!(code.status().as_u16(), status, "{wire}");
            assert_eq!(code.title(), title, "{wire}");
        }
        let mut unique: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ProblemCode::ALL.len());
    }

    /// `ALL` holds every variant exactly once: `position` is an exhaustive match (a new
    /// variant does not compile until it is given a place) and each entry of `ALL` must sit
    /// at its place, so a variant missing from `ALL` leaves a place empty.
    #[test]
    fn all_lists_every_variant() {
        fn position(code: ProblemCode) -> usize {
            match code {
                ProblemCode::MalformedRequest => 0,
                ProblemCode::IdempotencyKeyMissing => 1,
                ProblemCode::InvalidSignature => 2,
                ProblemCode::Unauthorized => 3,
                ProblemCode::Forbidden => 4,
                ProblemCode::NotFound => 5,
                ProblemCode::MethodNotAllowed => 6,
                ProblemCode::RequestTimeout => 7,
                ProblemCode::SlotUnavailable => 8,
                ProblemCode::InvalidState => 9,
                ProblemCode::AlreadyExists => 10,
                ProblemCode::IdempotencyRequestInFlight => 11,
                ProblemCode::ApiTokenUnrecoverable => 12,
                ProblemCode::PayloadTooLarge => 13,
                ProblemCode::ValidationFailed => 14,
                ProblemCode::OutsideAvailability => 15,
                ProblemCode::IdempotencyKeyReused => 16,
                ProblemCode::Internal => 17,
                ProblemCode::PaymentProviderUnavailable => 18,
                ProblemCode::StoreUnavailable => 19,
            }
        }
        for (i, code) in ProblemCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code:?} out of place in ALL");
        }
    }
}
