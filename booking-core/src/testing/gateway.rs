//! [`FakeGateway`]: an in-process [`PaymentGateway`] for tests, with Stripe's idempotency
//! semantics and failures on demand.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::payment::{
    CancelOutcome, CreatedIntent, IntentRequest, PaymentError, PaymentGateway, RefundRequest,
};

/// One call the gateway received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayCall {
    /// `create_intent`.
    Create(IntentRequest),
    /// `cancel_intent(intent, key)`.
    Cancel(String, String),
    /// `refund`.
    Refund(RefundRequest),
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<GatewayCall>,
    /// Idempotency key -> intent id.
    intents_by_key: HashMap<String, String>,
    /// Intent id -> state (`requires_payment_method`, `succeeded`, `canceled`).
    intents: HashMap<String, &'static str>,
    /// Idempotency key -> refund id.
    refunds_by_key: HashMap<String, String>,
    down: bool,
}

/// A payment provider in memory: the same idempotency key gives the same intent or refund,
/// a cancel of a succeeded intent is [`CancelOutcome::NotCancellable`], and
/// [`FakeGateway::set_down`] makes every call fail as [`PaymentError::Unavailable`].
#[derive(Debug, Default)]
pub struct FakeGateway {
    state: Mutex<State>,
}

impl FakeGateway {
    /// A gateway that answers.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every call fail (`true`) or answer again (`false`).
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Every call received, failed ones included, in order.
    pub fn calls(&self) -> Vec<GatewayCall> {
        self.state().calls.clone()
    }

    /// Marks an intent paid, as if the client completed the payment.
    pub fn succeed(&self, intent_id: &str) {
        self.state()
            .intents
            .insert(intent_id.to_owned(), "succeeded");
    }

    /// The state of an intent (`requires_payment_method`, `succeeded`, `canceled`).
    pub fn intent_state(&self, intent_id: &str) -> Option<&'static str> {
        self.state().intents.get(intent_id).copied()
    }

    /// How many distinct intents and refunds exist.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state();
        (s.intents.len(), s.refunds_by_key.len())
    }
}

fn down() -> PaymentError {
    PaymentError::Unavailable("the fake gateway is down".into())
}

#[async_trait]
impl PaymentGateway for FakeGateway {
    fn provider(&self) -> &str {
        "stripe"
    }

    async fn create_intent(&self, request: &IntentRequest) -> Result<CreatedIntent, PaymentError> {
        let mut s = self.state();
        s.calls.push(GatewayCall::Create(request.clone()));
        if s.down {
            return Err(down());
        }
        let n = s.intents.len() + 1;
        let id = s
            .intents_by_key
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| format!("pi_fake{n}_{}", request.booking_id.as_uuid().simple()))
            .clone();
        s.intents
            .entry(id.clone())
            .or_insert("requires_payment_method");
        Ok(CreatedIntent {
            client_secret: format!("{id}_secret_fake"),
            id,
        })
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<CancelOutcome, PaymentError> {
        let mut s = self.state();
        s.calls.push(GatewayCall::Cancel(
            intent_id.to_owned(),
            idempotency_key.to_owned(),
        ));
        if s.down {
            return Err(down());
        }
        match s.intents.get(intent_id).copied() {
            None => Err(PaymentError::Rejected(format!(
                "no such intent {intent_id}"
            ))),
            Some("succeeded") => Ok(CancelOutcome::NotCancellable),
            Some(_) => {
                s.intents.insert(intent_id.to_owned(), "canceled");
                Ok(CancelOutcome::Cancelled)
            }
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Result<String, PaymentError> {
        let mut s = self.state();
        s.calls.push(GatewayCall::Refund(request.clone()));
        if s.down {
            return Err(down());
        }
        let n = s.refunds_by_key.len() + 1;
        Ok(s.refunds_by_key
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| format!("re_fake{n}"))
            .clone())
    }
}

/// A Stripe event body of type `event_type` about intent `intent_id` of `booking_id`
/// (`payment_intent.*`), as Stripe sends it, trimmed to what the engine reads.
pub fn intent_event(
    event_id: &str,
    event_type: &str,
    intent_id: &str,
    booking_id: crate::BookingId,
    amount_cents: i64,
) -> Vec<u8> {
    serde_json::json!({
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_800_000_000,
        "data": {"object": {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount_cents,
            "currency": "eur",
            "metadata": {"booking_id": booking_id.to_string()},
        }},
    })
    .to_string()
    .into_bytes()
}

/// A `charge.refunded` event body: `amount_refunded_cents` refunded so far on the charge of
/// intent `intent_id`.
pub fn refund_event(event_id: &str, intent_id: &str, amount_refunded_cents: i64) -> Vec<u8> {
    serde_json::json!({
        "id": event_id,
        "object": "event",
        "type": "charge.refunded",
        "created": 1_800_000_000,
        "data": {"object": {
            "id": format!("ch_{intent_id}"),
            "object": "charge",
            "payment_intent": intent_id,
            "amount_refunded": amount_refunded_cents,
            "currency": "eur",
        }},
    })
    .to_string()
    .into_bytes()
}
