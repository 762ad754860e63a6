//! The Stripe [`PaymentGateway`], built on `async-stripe` 1.0.
//!
//! Every call is made **once** (`RequestStrategy::Idempotent(key)`): the engine retries
//! (its sweep, or the client repeating its request) with the same idempotency key, so the
//! gateway never retries by itself. Every call is bounded by the configured timeout.
//!
//! ## Error mapping
//!
//! | Stripe's answer | result |
//! |---|---|
//! | no answer, a timeout, an unreadable answer | [`PaymentError::Unavailable`] |
//! | 409 (key in use), 424, 429, 5xx | [`PaymentError::Unavailable`] |
//! | other 4xx (`invalid_request_error`, `idempotency_error`, ...) | [`PaymentError::Rejected`] |
//! | cancel: 400 `payment_intent_unexpected_state`, intent `canceled` | [`CancelOutcome::Cancelled`] |
//! | cancel: 400 `payment_intent_unexpected_state`, any other status | [`CancelOutcome::NotCancellable`] |
//! | create: an intent without a `client_secret` | [`PaymentError::Rejected`] |
//!
//! An intent without a client secret cannot be paid, and Stripe replays the same answer to
//! the same idempotency key, so repeating the call cannot help: that is a rejection, not an
//! outage.
//!
//! ## Metrics
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `stripe_request_duration_seconds` | histogram | `op` (`create_intent`, `cancel_intent`, `refund`) |
//! | `stripe_request_errors_total` | counter | `op`, `kind` (`unavailable`, `rejected`) |
//!
//! Neither logs nor errors ever contain the secret key or an intent's client secret (the
//! `Display` of `stripe::StripeError` prints the whole error body, which may embed the
//! intent with its client secret, so it is never used).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use ::stripe::{
    ApiErrors, ApiErrorsCode, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError,
    StripeRequest,
};
use async_trait::async_trait;
use booking_core::payment::{
    CancelOutcome, CreatedIntent, IntentRequest, PaymentError, PaymentGateway, RefundRequest,
};
use stripe_core::PaymentIntentStatus;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
};
use stripe_core::refund::CreateRefund;

/// The provider name stored in [`booking_core::payment::Payment::provider`].
pub const PROVIDER: &str = "stripe";

/// Stripe's API base, used when none is configured.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com/";

/// The duration histogram.
const DURATION_METRIC: &str = "stripe_request_duration_seconds";
/// The error counter.
const ERRORS_METRIC: &str = "stripe_request_errors_total";

/// Why a [`StripeGateway`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeConfigError(String);

impl fmt::Display for StripeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Stripe configuration: {}", self.0)
    }
}

impl std::error::Error for StripeConfigError {}

/// The gateway's calls, as the `op` label of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateIntent,
    CancelIntent,
    Refund,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::CreateIntent => "create_intent",
            Op::CancelIntent => "cancel_intent",
            Op::Refund => "refund",
        }
    }
}

/// [`PaymentGateway`] over Stripe's PaymentIntents and Refunds API.
#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
    api_base: String,
    timeout: Duration,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeGateway {
    /// A gateway authenticating with `secret_key` against `api_base` (Stripe's own when
    /// `None`; tests point it at a fake), bounding every call by `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reference_server::stripe::StripeGateway;
    /// let gw = StripeGateway::new("sk_test_123", Some("http://127.0.0.1:12111"), Duration::from_secs(5));
    /// assert!(gw.is_ok());
    /// assert!(StripeGateway::new("", None, Duration::from_secs(5)).is_err());
    /// ```
    ///
    /// # Errors
    /// The key is empty or not a valid header value, the base is not an absolute
    /// `http(s)` URL, or the timeout is zero.
    pub fn new(
        secret_key: &str,
        api_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, StripeConfigError> {
        if secret_key.trim().is_empty() {
            return Err(StripeConfigError("the secret key is empty".into()));
        }
        if timeout.is_zero() {
            return Err(StripeConfigError("the timeout must not be zero".into()));
        }
        let api_base = normalize_base(api_base.unwrap_or(DEFAULT_API_BASE))?;
        let client = ClientBuilder::new(secret_key)
            .url(api_base.clone())
            .request_strategy(RequestStrategy::Once)
            .build()
            .map_err(|e| match e {
                // The builder's messages name the setting, never its value.
                StripeError::ConfigError(m) | StripeError::ClientError(m) => StripeConfigError(m),
                _ => StripeConfigError("the client could not be built".into()),
            })?;
        describe_metrics();
        Ok(Self {
            client,
            api_base,
            timeout,
        })
    }

    /// The API base requests go to (always ending in `/`).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Runs one call: bounded by the timeout, timed, and counted when it fails.
    async fn observe<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        let started = Instant::now();
        let out = match tokio::time::timeout(self.timeout, call).await {
            Ok(out) => out,
            Err(_) => Err(PaymentError::Unavailable(format!(
                "no answer from Stripe within {} ms",
                self.timeout.as_millis()
            ))),
        };
        metrics::histogram!(DURATION_METRIC, "op" => op.as_str())
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &out {
            let kind = match e {
                PaymentError::Unavailable(_) => "unavailable",
                PaymentError::Rejected(_) => "rejected",
            };
            metrics::counter!(ERRORS_METRIC, "op" => op.as_str(), "kind" => kind).increment(1);
            tracing::warn!(op = op.as_str(), error = %e, "Stripe call failed");
        }
        out
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> &str {
        PROVIDER
    }

    async fn create_intent(&self, request: &IntentRequest) -> Result<CreatedIntent, PaymentError> {
        let key = idempotency_key(&request.idempotency_key)?;
        let currency = request
            .amount
            .currency
            .as_str()
            .to_ascii_lowercase()
            .parse::<stripe_types::Currency>()
            .unwrap_or_else(|never| match never {});
        let metadata = HashMap::from([("booking_id".to_owned(), request.booking_id.to_string())]);
        let create = CreatePaymentIntent::new(request.amount.amount_cents, currency)
            .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
            .metadata(metadata);
        self.observe(Op::CreateIntent, async {
            let intent = create
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key))
                .send(&self.client)
                .await
                .map_err(|e| classify(&e))?;
            let id = intent.id.to_string();
            let Some(client_secret) = intent.client_secret else {
                return Err(PaymentError::Rejected(format!(
                    "Stripe created intent {id} without a client secret"
                )));
            };
            tracing::debug!(booking_id = %request.booking_id, intent_id = %id, "Stripe intent ready");
            Ok(CreatedIntent { id, client_secret })
        })
        .await
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<CancelOutcome, PaymentError> {
        let key = self::idempotency_key(idempotency_key)?;
        let intent = object_id(intent_id)?;
        let cancel = CancelPaymentIntent::new(intent);
        self.observe(Op::CancelIntent, async {
            let outcome = match cancel
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key))
                .send(&self.client)
                .await
            {
                Ok(intent) if intent.status == PaymentIntentStatus::Canceled => {
                    CancelOutcome::Cancelled
                }
                Ok(_) => CancelOutcome::NotCancellable,
                Err(StripeError::Stripe(api, _)) if is_unexpected_state(&api) => {
                    cancel_outcome_of_unexpected_state(&api)
                }
                Err(e) => return Err(classify(&e)),
            };
            tracing::debug!(intent_id, ?outcome, "Stripe intent cancel answered");
            Ok(outcome)
        })
        .await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<String, PaymentError> {
        let key = idempotency_key(&request.idempotency_key)?;
        let intent = object_id(&request.intent_id)?;
        let metadata = HashMap::from([("booking_id".to_owned(), request.booking_id.to_string())]);
        let create = CreateRefund::new()
            .payment_intent(intent)
            .metadata(metadata);
        self.observe(Op::Refund, async {
            let refund = create
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key))
                .send(&self.client)
                .await
                .map_err(|e| classify(&e))?;
            let id = refund.id.to_string();
            tracing::debug!(booking_id = %request.booking_id, refund_id = %id, "Stripe refund issued");
            Ok(id)
        })
        .await
    }
}

/// `base` as an absolute `http(s)` URL ending in `/` (async-stripe appends `v1/...` to it
/// as text).
fn normalize_base(base: &str) -> Result<String, StripeConfigError> {
    let base = base.trim();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(StripeConfigError(
            "the API base must be an http:// or https:// URL".into(),
        ));
    }
    if base.contains(['?', '#']) {
        return Err(StripeConfigError(
            "the API base must not have a query or fragment".into(),
        ));
    }
    Ok(if base.ends_with('/') {
        base.to_owned()
    } else {
        format!("{base}/")
    })
}

/// The idempotency key as async-stripe takes it (1 to 255 bytes).
fn idempotency_key(key: &str) -> Result<IdempotencyKey, PaymentError> {
    IdempotencyKey::new(key)
        .map_err(|e| PaymentError::Rejected(format!("invalid idempotency key: {e}")))
}

/// An object id that is safe to put in a URL path (Stripe's ids are `[A-Za-z0-9_]`).
fn object_id(id: &str) -> Result<&str, PaymentError> {
    if id.is_empty()
        || id.len() > 255
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(PaymentError::Rejected(format!(
            "not a Stripe object id: {:?}",
            id.chars().take(64).collect::<String>()
        )));
    }
    Ok(id)
}

fn is_unexpected_state(api: &ApiErrors) -> bool {
    api.code == Some(ApiErrorsCode::PaymentIntentUnexpectedState)
}

/// What a `payment_intent_unexpected_state` answer to a cancel means: the intent's status in
/// the error decides; without it, Stripe's message (`... because it has a status of
/// canceled. ...`).
fn cancel_outcome_of_unexpected_state(api: &ApiErrors) -> CancelOutcome {
    let canceled = match &api.payment_intent {
        Some(intent) => intent.status == PaymentIntentStatus::Canceled,
        None => api
            .message
            .as_deref()
            .is_some_and(|m| m.contains("status of canceled")),
    };
    if canceled {
        CancelOutcome::Cancelled
    } else {
        CancelOutcome::NotCancellable
    }
}

/// Whether a status means "try again later" (Stripe's documented transient statuses).
fn transient_status(status: u16) -> bool {
    matches!(status, 409 | 424 | 429 | 500..=599)
}

/// The [`PaymentError`] for a failed call. The message names the status, the error's type,
/// code and message, never the objects Stripe embeds in an error.
fn classify(e: &StripeError) -> PaymentError {
    match e {
        StripeError::Stripe(api, status) => {
            let mut text = format!("Stripe answered {status} {}", api.type_.as_str());
            if let Some(code) = &api.code {
                text.push_str(&format!(" ({})", code.as_str()));
            }
            if let Some(message) = &api.message {
                text.push_str(": ");
                text.push_str(message);
            }
            if transient_status(*status) {
                PaymentError::Unavailable(text)
            } else {
                PaymentError::Rejected(text)
            }
        }
        StripeError::ClientError(m) => {
            PaymentError::Unavailable(format!("cannot reach Stripe: {m}"))
        }
        StripeError::Timeout => PaymentError::Unavailable("Stripe timed out".into()),
        StripeError::JSONDeserialize(m) => {
            PaymentError::Unavailable(format!("unreadable answer from Stripe: {m}"))
        }
        StripeError::ConfigError(m) => {
            PaymentError::Rejected(format!("the Stripe request is invalid: {m}"))
        }
    }
}

fn describe_metrics() {
    metrics::describe_histogram!(
        DURATION_METRIC,
        metrics::Unit::Seconds,
        "Stripe API call latency by operation"
    );
    metrics::describe_counter!(
        ERRORS_METRIC,
        "Failed Stripe API calls by operation and kind (unavailable, rejected)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::stripe::ApiErrorsType;

    fn api_error(type_: ApiErrorsType, code: Option<&str>, message: Option<&str>) -> ApiErrors {
        ApiErrors {
            advice_code: None,
            charge: None,
            code: code.map(|c| c.parse().unwrap_or_else(|never| match never {})),
            decline_code: None,
            doc_url: None,
            message: message.map(str::to_owned),
            network_advice_code: None,
            network_decline_code: None,
            param: None,
            payment_intent: None,
            payment_method: None,
            payment_method_type: None,
            request_log_url: None,
            setup_intent: None,
            source: None,
            type_,
        }
    }

    fn stripe(status: u16, api: ApiErrors) -> StripeError {
        StripeError::Stripe(Box::new(api), status)
    }

    #[test]
    fn transient_answers_are_unavailable_and_others_rejected() {
        for status in [409, 424, 429, 500, 502, 503, 504] {
            let e = stripe(status, api_error(ApiErrorsType::ApiError, None, Some("x")));
            assert!(
                matches!(classify(&e), PaymentError::Unavailable(_)),
                "{status}"
            );
        }
        for status in [400, 401, 402, 403, 404] {
            let e = stripe(
                status,
                api_error(ApiErrorsType::InvalidRequestError, None, None),
            );
            assert!(
                matches!(classify(&e), PaymentError::Rejected(_)),
                "{status}"
            );
        }
        for e in [
            StripeError::Timeout,
            StripeError::ClientError("connection refused".into()),
            StripeError::JSONDeserialize("bad".into()),
        ] {
            assert!(matches!(classify(&e), PaymentError::Unavailable(_)));
        }
        assert!(matches!(
            classify(&StripeError::ConfigError("x".into())),
            PaymentError::Rejected(_)
        ));
    }

    #[test]
    fn the_message_names_status_type_code_and_message() {
        let e = stripe(
            400,
            api_error(
                ApiErrorsType::InvalidRequestError,
                Some("resource_missing"),
                Some("No such payment_intent: 'pi_1'"),
            ),
        );
        assert_eq!(
            classify(&e),
            PaymentError::Rejected(
                "Stripe answered 400 invalid_request_error (resource_missing): \
                 No such payment_intent: 'pi_1'"
                    .into()
            )
        );
    }

    #[test]
    fn unexpected_state_without_the_intent_is_read_from_the_message() {
        let canceled = api_error(
            ApiErrorsType::InvalidRequestError,
            Some("payment_intent_unexpected_state"),
            Some(
                "You cannot cancel this PaymentIntent because it has a status of canceled. \
                 Only a PaymentIntent with one of the following statuses may be canceled: \
                 requires_payment_method, requires_capture, requires_confirmation, \
                 requires_action, processing.",
            ),
        );
        assert!(is_unexpected_state(&canceled));
        assert_eq!(
            cancel_outcome_of_unexpected_state(&canceled),
            CancelOutcome::Cancelled
        );
        let succeeded = api_error(
            ApiErrorsType::InvalidRequestError,
            Some("payment_intent_unexpected_state"),
            Some(
                "You cannot cancel this PaymentIntent because it has a status of succeeded. \
                 Only a PaymentIntent with one of the following statuses may be canceled: \
                 requires_payment_method, requires_capture, requires_confirmation, \
                 requires_action, processing.",
            ),
        );
        assert_eq!(
            cancel_outcome_of_unexpected_state(&succeeded),
            CancelOutcome::NotCancellable
        );
        let other = api_error(
            ApiErrorsType::InvalidRequestError,
            Some("resource_missing"),
            None,
        );
        assert!(!is_unexpected_state(&other));
    }

    #[test]
    fn ids_and_keys_are_checked_before_any_call() {
        assert!(object_id("pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
        for bad in ["", "pi_1/../refunds", "pi_1?x=1", "pi 1", "pi_é"] {
            assert!(
                matches!(object_id(bad), Err(PaymentError::Rejected(_))),
                "{bad}"
            );
        }
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key(&"k".repeat(256)).is_err());
        assert!(idempotency_key("booking-1-intent").is_ok());
    }

    #[test]
    fn the_base_is_an_http_url_ending_in_a_slash() {
        assert_eq!(
            normalize_base("http://127.0.0.1:1234").as_deref(),
            Ok("http://127.0.0.1:1234/")
        );
        assert_eq!(
            normalize_base("https://api.stripe.com/").as_deref(),
            Ok("https://api.stripe.com/")
        );
        assert!(normalize_base("api.stripe.com").is_err());
        assert!(normalize_base("http://x/?a=1").is_err());
        assert!(StripeGateway::new("sk_test_1", Some("ftp://x"), Duration::from_secs(1)).is_err());
        assert!(StripeGateway::new("sk_test_1", None, Duration::ZERO).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let gw = StripeGateway::new("sk_test_very_secret", None, Duration::from_secs(1))
            .expect("valid configuration");
        let shown = format!("{gw:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert_eq!(gw.api_base(), DEFAULT_API_BASE);
        assert_eq!(gw.provider(), "stripe");
    }
}
