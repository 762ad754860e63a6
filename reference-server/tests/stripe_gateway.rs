//! The Stripe gateway against the fake Stripe (`tests/common/fake_stripe.rs`).

mod common;

use std::time::Duration;

use booking_core::payment::{
    CancelOutcome, IntentRequest, PaymentError, PaymentGateway, RefundRequest, cancel_key,
    intent_key, refund_key,
};
use booking_core::{BookingId, Currency, Money};
use chrono::Utc;
use common::fake_stripe::FakeStripe;
use common::metrics::isolated;
use reference_server::stripe::StripeGateway;

const SECRET: &str = "sk_test_fake_0123456789";

fn gateway(fake: &FakeStripe, timeout: Duration) -> StripeGateway {
    StripeGateway::new(SECRET, Some(&fake.base_url()), timeout).expect("valid configuration")
}

fn intent_request(amount_cents: i64) -> IntentRequest {
    let booking_id = BookingId::new_at(Utc::now());
    IntentRequest {
        booking_id,
        amount: Money::new(amount_cents, Currency::parse("EUR").expect("currency")).expect("money"),
        idempotency_key: intent_key(booking_id),
    }
}

async fn setup() -> (FakeStripe, StripeGateway) {
    let fake = FakeStripe::start().await;
    let gw = gateway(&fake, Duration::from_secs(5));
    (fake, gw)
}

#[tokio::test]
async fn create_sends_amount_currency_metadata_key_and_secret() {
    let (fake, gw) = setup().await;
    let req = intent_request(6000);
    let created = gw.create_intent(&req).await.expect("intent");

    assert!(created.id.starts_with("pi_"), "{}", created.id);
    assert!(
        created
            .client_secret
            .starts_with(&format!("{}_secret_", created.id)),
        "{}",
        created.client_secret
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.path, "/v1/payment_intents");
    assert_eq!(r.param("amount"), Some("6000"));
    assert_eq!(r.param("currency"), Some("eur"));
    let booking_id = req.booking_id.to_string();
    assert_eq!(r.param("metadata[booking_id]"), Some(booking_id.as_str()));
    assert_eq!(r.param("automatic_payment_methods[enabled]"), Some("true"));
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(req.idempotency_key.as_str())
    );
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    let intents = fake.intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].id, created.id);
    assert_eq!(intents[0].client_secret, created.client_secret);
    assert_eq!(intents[0].amount, 6000);
    assert_eq!(intents[0].currency, "eur");
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_intent() {
    let (fake, gw) = setup().await;
    let req = intent_request(4500);
    let first = gw.create_intent(&req).await.expect("first");
    let again = gw.create_intent(&req).await.expect("again");
    assert_eq!(first, again);
    assert_eq!(fake.intents().len(), 1);
    assert_eq!(fake.requests().len(), 2);

    let other = gw
        .create_intent(&intent_request(4500))
        .await
        .expect("other");
    assert_ne!(other.id, first.id);
    assert_eq!(fake.intents().len(), 2);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_rejected() {
    let (fake, gw) = setup().await;
    let req = intent_request(4500);
    gw.create_intent(&req).await.expect("first");
    let changed = IntentRequest {
        amount: Money::new(9900, req.amount.currency).expect("money"),
        ..req
    };
    let e = gw.create_intent(&changed).await.expect_err("key reuse");
    assert!(matches!(e, PaymentError::Rejected(_)), "{e:?}");
    assert_eq!(fake.intents().len(), 1);
}

#[tokio::test]
async fn cancel_of_an_open_intent_is_cancelled() {
    let (fake, gw) = setup().await;
    let req = intent_request(3000);
    let created = gw.create_intent(&req).await.expect("intent");
    let key = cancel_key(req.booking_id);

    let outcome = gw.cancel_intent(&created.id, &key).await.expect("cancel");
    assert_eq!(outcome, CancelOutcome::Cancelled);
    assert_eq!(fake.intents()[0].status, "canceled");
    let last = fake.requests().pop().expect("a request");
    assert_eq!(
        last.path,
        format!("/v1/payment_intents/{}/cancel", created.id)
    );
    assert_eq!(last.idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        last.authorization.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // The same call again (same key): Stripe replays its answer.
    let again = gw.cancel_intent(&created.id, &key).await.expect("again");
    assert_eq!(again, CancelOutcome::Cancelled);
}

#[tokio::test]
async fn cancel_of_an_already_canceled_intent_is_cancelled() {
    let (_fake, gw) = setup().await;
    let req = intent_request(3000);
    let created = gw.create_intent(&req).await.expect("intent");
    gw.cancel_intent(&created.id, "first-cancel")
        .await
        .expect("cancel");
    // Another key: Stripe answers 400 payment_intent_unexpected_state (status canceled).
    let outcome = gw
        .cancel_intent(&created.id, "second-cancel")
        .await
        .expect("cancel again");
    assert_eq!(outcome, CancelOutcome::Cancelled);
}

#[tokio::test]
async fn cancel_of_a_succeeded_intent_is_not_cancellable() {
    let (fake, gw) = setup().await;
    let req = intent_request(3000);
    let created = gw.create_intent(&req).await.expect("intent");
    assert!(fake.succeed(&created.id));
    let outcome = gw
        .cancel_intent(&created.id, &cancel_key(req.booking_id))
        .await
        .expect("cancel answered");
    assert_eq!(outcome, CancelOutcome::NotCancellable);
    assert_eq!(fake.intents()[0].status, "succeeded");
}

#[tokio::test]
async fn cancel_of_an_unknown_intent_is_rejected() {
    let (_fake, gw) = setup().await;
    let e = gw
        .cancel_intent("pi_doesnotexist", "k-1")
        .await
        .expect_err("unknown intent");
    assert!(matches!(e, PaymentError::Rejected(_)), "{e:?}");
}

#[tokio::test]
async fn refund_sends_the_intent_metadata_and_key_once() {
    let (fake, gw) = setup().await;
    let req = intent_request(8000);
    let created = gw.create_intent(&req).await.expect("intent");
    assert!(fake.succeed(&created.id));
    let refund = RefundRequest {
        intent_id: created.id.clone(),
        booking_id: req.booking_id,
        idempotency_key: refund_key(&created.id),
    };

    let id = gw.refund(&refund).await.expect("refund");
    assert!(id.starts_with("re_"), "{id}");
    let last = fake.requests().pop().expect("a request");
    assert_eq!(last.path, "/v1/refunds");
    assert_eq!(last.param("payment_intent"), Some(created.id.as_str()));
    let booking_id = req.booking_id.to_string();
    assert_eq!(
        last.param("metadata[booking_id]"),
        Some(booking_id.as_str())
    );
    assert_eq!(
        last.idempotency_key.as_deref(),
        Some(refund.idempotency_key.as_str())
    );

    // A retry with the same key finds the same refund; nothing is refunded twice.
    let again = gw.refund(&refund).await.expect("again");
    assert_eq!(again, id);
    let refunds = fake.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount, 8000);
    assert_eq!(refunds[0].payment_intent, created.id);
}

#[tokio::test]
async fn a_400_invalid_request_is_rejected() {
    let (_fake, gw) = setup().await;
    let refund = RefundRequest {
        intent_id: "pi_unknown".into(),
        booking_id: BookingId::new_at(Utc::now()),
        idempotency_key: refund_key("pi_unknown"),
    };
    match gw.refund(&refund).await {
        Err(PaymentError::Rejected(m)) => {
            assert!(m.contains("400"), "{m}");
            assert!(m.contains("resource_missing"), "{m}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let e = gw
        .create_intent(&intent_request(0))
        .await
        .expect_err("amount 0");
    assert!(matches!(e, PaymentError::Rejected(_)), "{e:?}");
}

#[tokio::test]
async fn down_is_unavailable_and_the_gateway_does_not_retry() {
    let (fake, gw) = setup().await;
    fake.set_down(true);
    let req = intent_request(5000);
    let e = gw.create_intent(&req).await.expect_err("down");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    // One attempt only: retrying is the engine's job.
    assert_eq!(fake.requests().len(), 1);
    let e = gw
        .cancel_intent("pi_whatever", "k-cancel")
        .await
        .expect_err("down");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    let e = gw
        .refund(&RefundRequest {
            intent_id: "pi_whatever".into(),
            booking_id: req.booking_id,
            idempotency_key: "k-refund".into(),
        })
        .await
        .expect_err("down");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    assert_eq!(fake.requests().len(), 3);

    fake.set_down(false);
    gw.create_intent(&req).await.expect("back up");
    assert_eq!(fake.intents().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_is_unavailable() {
    let (fake, gw) = setup().await;
    fake.fail_next_with(1, 429);
    let req = intent_request(5000);
    let e = gw.create_intent(&req).await.expect_err("429");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    fake.fail_next(1);
    let e = gw.create_intent(&req).await.expect_err("500");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    gw.create_intent(&req).await.expect("third attempt");
    assert_eq!(fake.intents().len(), 1);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn nobody_listening_is_unavailable() {
    let fake = FakeStripe::start().await;
    let base = fake.base_url();
    drop(fake);
    // Let the aborted server task release its listener.
    tokio::task::yield_now().await;
    let gw = StripeGateway::new(SECRET, Some(&base), Duration::from_secs(5)).expect("config");
    let e = gw
        .create_intent(&intent_request(5000))
        .await
        .expect_err("nobody listening");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn a_slow_answer_is_unavailable_and_a_retry_finds_the_intent() {
    let fake = FakeStripe::start().await;
    let gw = gateway(&fake, Duration::from_millis(200));
    fake.set_delay(Duration::from_secs(2));
    let req = intent_request(5000);
    let e = gw.create_intent(&req).await.expect_err("timeout");
    assert!(matches!(e, PaymentError::Unavailable(_)), "{e:?}");
    // The fake did the work before its slow answer: the retry (same key) finds it.
    fake.set_delay(Duration::ZERO);
    let created = gw.create_intent(&req).await.expect("retry");
    let intents = fake.intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].id, created.id);
}

/// Runs with a metrics recorder of its own, so the values it reads are its own.
#[tokio::test]
async fn failures_are_counted_and_timed() {
    isolated(|metrics| async move {
        let (fake, gw) = setup().await;
        fake.set_down(true);
        let _ = gw
            .cancel_intent("pi_metrics", "k-metrics")
            .await
            .expect_err("down");
        let m = metrics.scrape();
        let cancel = [("op", "cancel_intent")];
        let unavailable = [("op", "cancel_intent"), ("kind", "unavailable")];
        assert_eq!(m.value("stripe_request_errors_total", &unavailable), 1.0);
        assert_eq!(m.value("stripe_request_errors_total", &[]), 1.0);
        assert_eq!(
            m.value("stripe_request_duration_seconds_count", &cancel),
            1.0
        );
        // A call that succeeds is timed, not counted as an error.
        fake.set_down(false);
        gw.create_intent(&intent_request(1000))
            .await
            .expect("intent");
        let m = metrics.scrape();
        let create = [("op", "create_intent")];
        assert_eq!(
            m.value("stripe_request_duration_seconds_count", &create),
            1.0
        );
        assert_eq!(m.value("stripe_request_errors_total", &[]), 1.0);
    })
    .await;
}

#[tokio::test]
async fn errors_never_carry_the_client_secret() {
    let (fake, gw) = setup().await;
    let req = intent_request(3000);
    let created = gw.create_intent(&req).await.expect("intent");
    assert!(fake.succeed(&created.id));
    fake.set_down(true);
    let e = gw
        .cancel_intent(&created.id, "k-secret")
        .await
        .expect_err("down");
    assert!(!e.to_string().contains(&created.client_secret), "{e}");
    assert!(!e.to_string().contains(SECRET), "{e}");
    fake.set_down(false);
    // Stripe's answer embeds the whole intent (with its client secret); it is read, not shown.
    let outcome = gw
        .cancel_intent(&created.id, "k-secret-2")
        .await
        .expect("answered");
    assert_eq!(outcome, CancelOutcome::NotCancellable);
    let unpaid = gw
        .create_intent(&intent_request(3000))
        .await
        .expect("intent");
    let e = gw
        .refund(&RefundRequest {
            intent_id: unpaid.id.clone(),
            booking_id: req.booking_id,
            idempotency_key: refund_key(&unpaid.id),
        })
        .await
        .expect_err("not paid");
    assert!(matches!(e, PaymentError::Rejected(_)), "{e:?}");
    assert!(!e.to_string().contains(&unpaid.client_secret), "{e}");
    assert!(!e.to_string().contains(SECRET), "{e}");
}
