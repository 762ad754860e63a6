//! Payments end to end, on the memory store and on PostgreSQL: the real Stripe gateway
//! against a local fake of Stripe's API, signed webhook deliveries, and the workers run
//! step by step.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use booking_core::Store;
use booking_core::testing::faulty::Faulty;
use booking_core::webhook::{WebhookSecret, sign};
use chrono::Utc;
use common::fake_stripe::FakeStripe;
use common::metrics::isolated;
use common::{ADMIN, Res, TestApp, booking_body, str_of};
use reference_server::config::{StripeConfig, WebhookConfig};
use reference_server::{AppState, Config, workers};
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "whsec_test_0123456789abcdef";

struct PayApp {
    app: TestApp,
    fake: FakeStripe,
    pg: Option<booking_postgres::PgStore>,
}

/// Which store a test runs on.
#[derive(Clone, Copy, Debug)]
enum On {
    Memory,
    Postgres,
}

impl PayApp {
    /// An app with payments against a fresh fake Stripe; `None` when PostgreSQL is wanted
    /// but skipped (outside CI).
    async fn start(on: On, hold_ttl: Duration, webhook: WebhookConfig) -> Option<Self> {
        let (store, pg): (Arc<dyn Store>, _) = match on {
            On::Memory => (Arc::new(booking_memory::MemoryStore::new()), None),
            On::Postgres => {
                let pg = booking_postgres::test_support::fresh_store(8).await?;
                (Arc::new(pg.clone()), Some(pg))
            }
        };
        Some(Self::on_store(store, pg, hold_ttl, webhook).await)
    }

    /// An app with payments over `store`, against a fresh fake Stripe.
    async fn on_store(
        store: Arc<dyn Store>,
        pg: Option<booking_postgres::PgStore>,
        hold_ttl: Duration,
        webhook: WebhookConfig,
    ) -> Self {
        let fake = FakeStripe::start().await;
        let config = Config {
            admin_token: Some(ADMIN.into()),
            hold_ttl,
            stripe: Some(StripeConfig {
                secret_key: "sk_test_fake".into(),
                api_base: Some(fake.base_url()),
                timeout: Duration::from_secs(2),
            }),
            webhook_secrets: vec![SIGNING_SECRET.into()],
            webhook,
            ..Config::default()
        };
        let gateway = reference_server::stripe::StripeGateway::new(
            "sk_test_fake",
            Some(&fake.base_url()),
            Duration::from_secs(2),
        )
        .expect("gateway");
        let state = AppState::new(store, &config, ADMIN, Some(Arc::new(gateway)));
        let app = TestApp {
            router: reference_server::router(state.clone(), &config),
            state,
        };
        Self { app, fake, pg }
    }

    async fn default(on: On) -> Option<Self> {
        Self::start(on, Duration::from_secs(900), WebhookConfig::default()).await
    }

    fn state(&self) -> &AppState {
        &self.app.state
    }

    /// A professional open all week and a client; returns (professional id, client token).
    async fn parties(&self) -> (String, String) {
        let (pro, _) = self.app.open_professional(0).await;
        let (_, client) = self.app.client("payer").await;
        (pro, client)
    }

    async fn book(&self, client: &str, pro: &str, start: i64) -> Res {
        self.app
            .post("/v1/bookings", client, booking_body(pro, start, 60))
            .await
    }

    /// Delivers `event` to the webhook route, signed now with the configured secret.
    async fn deliver(&self, event: &Value) -> Res {
        let body = serde_json::to_vec(event).expect("json");
        let secret = WebhookSecret::new(SIGNING_SECRET).expect("secret");
        let header = sign(&secret, Utc::now(), &body);
        self.deliver_raw(body, Some(&header)).await
    }

    async fn deliver_raw(&self, body: Vec<u8>, signature: Option<&str>) -> Res {
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/webhooks/stripe")
            .header("content-type", "application/json");
        if let Some(s) = signature {
            req = req.header("stripe-signature", s);
        }
        self.app
            .send(req.body(Body::from(body)).expect("request"))
            .await
    }

    async fn booking(&self, id: &str) -> Value {
        self.app
            .get(&format!("/v1/bookings/{id}"), ADMIN)
            .await
            .assert_status(200)
            .clone()
    }
}

fn intent_event(kind: &str, booking: &Value) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::now_v7().simple()),
        "object": "event",
        "type": kind,
        "created": Utc::now().timestamp(),
        "data": {"object": {
            "id": booking["payment"]["payment_intent_id"],
            "object": "payment_intent",
            "amount": booking["price"]["amount_cents"],
            "currency": booking["price"]["currency"],
            "metadata": {"booking_id": booking["id"]},
        }},
    })
}

fn refunded_event(booking: &Value, amount: i64) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::now_v7().simple()),
        "object": "event",
        "type": "charge.refunded",
        "created": Utc::now().timestamp(),
        "data": {"object": {
            "id": "ch_1",
            "object": "charge",
            "payment_intent": booking["payment"]["payment_intent_id"],
            "amount_refunded": amount,
            "currency": booking["price"]["currency"],
        }},
    })
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::On::Memory).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::On::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores!(
    book_then_pay_with_duplicates,
    events_in_any_order_end_alike,
    bad_signatures_and_bodies_are_refused,
    stripe_down_leaves_the_slot_free,
    expired_hold_cancels_its_intent_and_late_payment_confirms_or_refunds,
    cancelling_a_hold_cancels_its_intent,
);

/// Runs with a metrics recorder of its own (`common::metrics::isolated`), so the values it
/// reads are its own.
async fn book_then_pay_with_duplicates(on: On) {
    isolated(move |metrics| async move {
        let Some(p) = PayApp::default(on).await else {
            return;
        };
        let (pro, client) = p.parties().await;
        let r = p.book(&client, &pro, 0).await;
        let b = r.assert_status(201).clone();
        assert_eq!(b["status"], "pending_payment");
        assert_eq!(b["payment"]["provider"], "stripe");
        let intent = str_of(&b["payment"]["payment_intent_id"]);
        assert!(intent.starts_with("pi_"), "{b}");
        assert!(b["payment"]["client_secret"].as_str().is_some(), "{b}");
        assert!(b["hold_expires_at"].is_string());
        // What Stripe was sent.
        let sent = p.fake.requests();
        let create = sent
            .iter()
            .find(|r| r.path == "/v1/payment_intents")
            .expect("an intent was created");
        let id = str_of(&b["id"]);
        assert_eq!(
            create.idempotency_key.as_deref(),
            Some(format!("booking-{id}-intent").as_str())
        );
        assert_eq!(create.param("metadata[booking_id]"), Some(id.as_str()));
        assert_eq!(create.param("amount"), Some("6000"));
        assert_eq!(create.param("currency"), Some("eur"));

        let paid = intent_event("payment_intent.succeeded", &b);
        let first = p.deliver(&paid).await;
        assert_eq!(first.assert_status(200)["duplicate"], false);
        let again = p.deliver(&paid).await;
        assert_eq!(again.assert_status(200)["duplicate"], true);
        assert_eq!(
            workers::process_inbox(p.state()).await,
            1,
            "one event to process"
        );
        let now = p.booking(&id).await;
        assert_eq!(now["status"], "confirmed");
        assert!(now["payment"]["client_secret"].is_null());
        assert!(now["hold_expires_at"].is_null());
        // A third delivery after processing is still a duplicate and changes nothing.
        assert_eq!(p.deliver(&paid).await.assert_status(200)["duplicate"], true);
        assert_eq!(workers::process_inbox(p.state()).await, 0);
        assert_eq!(p.booking(&id).await, now);
        // The intake and the worker are counted: three deliveries, two of them duplicates,
        // one event applied after a measured lag, one intent created in a timed call.
        let m = metrics.scrape();
        assert_eq!(m.value("webhook_events_received_total", &[]), 3.0);
        assert_eq!(m.value("webhook_duplicates_total", &[]), 2.0);
        let applied = [("outcome", "applied")];
        assert_eq!(m.value("webhook_events_processed_total", &applied), 1.0);
        assert_eq!(m.value("webhook_events_processed_total", &[]), 1.0);
        assert_eq!(m.value("webhook_processing_lag_seconds_count", &[]), 1.0);
        let create = [("op", "create_intent")];
        assert_eq!(
            m.value("stripe_request_duration_seconds_count", &create),
            1.0
        );
        assert_eq!(m.value("stripe_request_errors_total", &[]), 0.0);
    })
    .await;
}

async fn events_in_any_order_end_alike(on: On) {
    let Some(p) = PayApp::default(on).await else {
        return;
    };
    let (pro, client) = p.parties().await;
    let b = p.book(&client, &pro, 0).await.assert_status(201).clone();
    let id = str_of(&b["id"]);
    // The refund's event overtakes the payment's; a failed attempt comes last.
    for e in [
        refunded_event(&b, 1_500),
        intent_event("payment_intent.succeeded", &b),
        refunded_event(&b, 500),
        intent_event("payment_intent.payment_failed", &b),
    ] {
        p.deliver(&e).await.assert_status(200);
    }
    workers::process_inbox(p.state()).await;
    let now = p.booking(&id).await;
    assert_eq!(now["status"], "confirmed", "{now}");
    assert_eq!(now["payment"]["amount_refunded_cents"], 1_500);
    // payment_failed on a fresh hold leaves it pending.
    let other = p.book(&client, &pro, 120).await.assert_status(201).clone();
    p.deliver(&intent_event("payment_intent.payment_failed", &other))
        .await
        .assert_status(200);
    workers::process_inbox(p.state()).await;
    assert_eq!(
        p.booking(&str_of(&other["id"])).await["status"],
        "pending_payment"
    );
    // payment_intent.canceled cancels it and frees the slot.
    p.deliver(&intent_event("payment_intent.canceled", &other))
        .await
        .assert_status(200);
    workers::process_inbox(p.state()).await;
    assert_eq!(
        p.booking(&str_of(&other["id"])).await["status"],
        "cancelled"
    );
    p.book(&client, &pro, 120).await.assert_status(201);
}

async fn bad_signatures_and_bodies_are_refused(on: On) {
    let Some(p) = PayApp::default(on).await else {
        return;
    };
    let event =
        json!({"id": "evt_sig", "object": "event", "type": "customer.created", "created": 1});
    let body = serde_json::to_vec(&event).expect("json");
    p.deliver_raw(body.clone(), None)
        .await
        .assert_problem(400, "invalid_signature");
    let wrong = WebhookSecret::new("whsec_wrong_secret").expect("secret");
    let forged = sign(&wrong, Utc::now(), &body);
    p.deliver_raw(body.clone(), Some(&forged))
        .await
        .assert_problem(400, "invalid_signature");
    let secret = WebhookSecret::new(SIGNING_SECRET).expect("secret");
    let stale = sign(&secret, Utc::now() - chrono::Duration::minutes(10), &body);
    p.deliver_raw(body.clone(), Some(&stale))
        .await
        .assert_problem(400, "invalid_signature");
    p.deliver_raw(body.clone(), Some("t=garbage,v1=zz"))
        .await
        .assert_problem(400, "invalid_signature");
    let not_event = b"{\"hello\": 1}".to_vec();
    let signed = sign(&secret, Utc::now(), &not_event);
    p.deliver_raw(not_event, Some(&signed))
        .await
        .assert_problem(400, "malformed_request");
    // Nothing was recorded.
    assert_eq!(workers::process_inbox(p.state()).await, 0);
    // An unknown type is accepted and ignored.
    p.deliver(&event).await.assert_status(200);
    assert_eq!(workers::process_inbox(p.state()).await, 1);
}

async fn stripe_down_leaves_the_slot_free(on: On) {
    let Some(p) = PayApp::default(on).await else {
        return;
    };
    let (pro, client) = p.parties().await;
    p.fake.set_down(true);
    let key = uuid::Uuid::now_v7().to_string();
    let first = p
        .app
        .call(
            "POST",
            "/v1/bookings",
            Some(&client),
            Some(&key),
            Some(booking_body(&pro, 0, 60)),
        )
        .await;
    first.assert_problem(502, "payment_provider_unavailable");
    // The slot is free: nothing blocks it while Stripe is down or after.
    let slots = p
        .app
        .get(
            &format!(
                "/v1/professionals/{pro}/availability?from={}&to={}&duration_minutes=60",
                common::ts(common::at(0)),
                common::ts(common::at(60)),
            ),
            &client,
        )
        .await;
    let slots = slots.assert_status(200).clone();
    assert!(
        slots.to_string().contains(&common::ts(common::at(0))),
        "{slots}"
    );
    p.fake.set_down(false);
    // The same request, retried with its key, tries again and books.
    let retry = p
        .app
        .call(
            "POST",
            "/v1/bookings",
            Some(&client),
            Some(&key),
            Some(booking_body(&pro, 0, 60)),
        )
        .await;
    let b = retry.assert_status(201).clone();
    assert_eq!(b["status"], "pending_payment");
    assert!(retry.header("idempotent-replayed").is_none());
}

async fn expired_hold_cancels_its_intent_and_late_payment_confirms_or_refunds(on: On) {
    let Some(p) = PayApp::start(on, Duration::from_secs(1), WebhookConfig::default()).await else {
        return;
    };
    let (pro, client) = p.parties().await;
    let free = p.book(&client, &pro, 0).await.assert_status(201).clone();
    let taken = p.book(&client, &pro, 120).await.assert_status(201).clone();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(workers::expire_holds(p.state()).await, 2);
    assert_eq!(workers::discharge_obligations(p.state()).await, 2);
    for b in [&free, &taken] {
        let id = str_of(&b["id"]);
        assert_eq!(p.booking(&id).await["status"], "expired");
        let intent = str_of(&b["payment"]["payment_intent_id"]);
        let cancel = p
            .fake
            .requests()
            .into_iter()
            .find(|r| r.path == format!("/v1/payment_intents/{intent}/cancel"))
            .expect("the sweep cancelled the intent");
        assert_eq!(cancel.idempotency_key, Some(format!("booking-{id}-cancel")));
    }
    // Someone else takes the second slot (a fresh hold).
    p.book(&client, &pro, 120).await.assert_status(201);
    // Both were paid anyway (the payment raced the cancel).
    for b in [&free, &taken] {
        p.deliver(&intent_event("payment_intent.succeeded", b))
            .await
            .assert_status(200);
    }
    workers::process_inbox(p.state()).await;
    assert_eq!(p.booking(&str_of(&free["id"])).await["status"], "confirmed");
    let kept = p.booking(&str_of(&taken["id"])).await;
    assert_eq!(kept["status"], "expired");
    assert_eq!(kept["payment"]["refund_owed"], true);
    let intent = str_of(&taken["payment"]["payment_intent_id"]);
    let refunds: Vec<_> = p
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/refunds")
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].param("payment_intent"), Some(intent.as_str()));
    assert_eq!(refunds[0].idempotency_key, Some(format!("refund-{intent}")));
}

async fn cancelling_a_hold_cancels_its_intent(on: On) {
    let Some(p) = PayApp::default(on).await else {
        return;
    };
    let (pro, client) = p.parties().await;
    let b = p.book(&client, &pro, 0).await.assert_status(201).clone();
    let id = str_of(&b["id"]);
    let r = p
        .app
        .post(&format!("/v1/bookings/{id}/cancel"), &client, json!({}))
        .await;
    assert_eq!(r.assert_status(200)["status"], "cancelled");
    let intent = str_of(&b["payment"]["payment_intent_id"]);
    assert!(
        p.fake
            .requests()
            .iter()
            .any(|r| r.path == format!("/v1/payment_intents/{intent}/cancel")),
        "the intent was cancelled at Stripe"
    );
}

/// A handler that fails (here: the memory store's `settle_payment` fails, injected with
/// `booking_core::testing::faulty::Faulty`) is retried with backoff, dead-lettered after
/// the last attempt, and processed once replayed after the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handler_is_dead_lettered_then_replayed_on_memory() {
    let webhook = WebhookConfig {
        max_attempts: 3,
        retry_base: Duration::from_millis(1),
        ..WebhookConfig::default()
    };
    let faulty = Arc::new(Faulty::new(Arc::new(booking_memory::MemoryStore::new())));
    let p = PayApp::on_store(faulty.clone(), None, Duration::from_secs(900), webhook).await;
    let (pro, client) = p.parties().await;
    let b = p.book(&client, &pro, 0).await.assert_status(201).clone();
    let id = str_of(&b["id"]);
    faulty.fail("settle_payment", u32::MAX);
    let event = intent_event("payment_intent.succeeded", &b);
    p.deliver(&event).await.assert_status(200);
    let mut dead = Value::Null;
    for _ in 0..200 {
        workers::process_inbox(p.state()).await;
        dead = p
            .app
            .get("/v1/admin/webhooks/dead-letters", ADMIN)
            .await
            .assert_status(200)
            .clone();
        if dead["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead["data"][0]["event_id"], event["id"], "{dead}");
    assert_eq!(dead["data"][0]["attempts"], 3);
    assert!(
        dead["data"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("injected")),
        "{dead}"
    );
    assert_eq!(p.booking(&id).await["status"], "pending_payment");
    faulty.heal("settle_payment");
    let event_id = str_of(&event["id"]);
    p.app
        .post(
            &format!("/v1/admin/webhooks/dead-letters/{event_id}/replay"),
            ADMIN,
            json!({}),
        )
        .await
        .assert_status(200);
    assert_eq!(workers::process_inbox(p.state()).await, 1);
    assert_eq!(p.booking(&id).await["status"], "confirmed");
}

/// A handler that fails (here: PostgreSQL refuses the booking's update) is retried with
/// backoff, dead-lettered after the last attempt, listed for the admin, and processed once
/// replayed after the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handler_is_dead_lettered_then_replayed_on_postgres() {
    let webhook = WebhookConfig {
        max_attempts: 3,
        retry_base: Duration::from_millis(1),
        ..WebhookConfig::default()
    };
    let Some(p) = PayApp::start(On::Postgres, Duration::from_secs(900), webhook).await else {
        return;
    };
    let pool = p.pg.as_ref().expect("postgres").pool().clone();
    let (pro, client) = p.parties().await;
    let b = p.book(&client, &pro, 0).await.assert_status(201).clone();
    let id = str_of(&b["id"]);
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON bookings FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&pool)
    .await
    .expect("install the failing trigger");
    let event = intent_event("payment_intent.succeeded", &b);
    p.deliver(&event).await.assert_status(200);
    let mut dead = Value::Null;
    for _ in 0..200 {
        workers::process_inbox(p.state()).await;
        let list = p.app.get("/v1/admin/webhooks/dead-letters", ADMIN).await;
        dead = list.assert_status(200).clone();
        if dead["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = &dead["data"][0];
    assert_eq!(entry["event_id"], event["id"], "{dead}");
    assert_eq!(entry["attempts"], 3);
    assert_eq!(entry["state"], "dead_lettered");
    assert!(entry["last_error"].is_string());
    assert_eq!(p.booking(&id).await["status"], "pending_payment");
    // Only the admin sees the dead letters.
    p.app
        .get("/v1/admin/webhooks/dead-letters", &client)
        .await
        .assert_problem(403, "forbidden");
    sqlx::raw_sql("DROP TRIGGER refuse ON bookings")
        .execute(&pool)
        .await
        .expect("remove the trigger");
    let event_id = str_of(&event["id"]);
    let replay = p
        .app
        .post(
            &format!("/v1/admin/webhooks/dead-letters/{event_id}/replay"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(replay.assert_status(200)["state"], "pending");
    assert_eq!(workers::process_inbox(p.state()).await, 1);
    assert_eq!(p.booking(&id).await["status"], "confirmed");
    let list = p.app.get("/v1/admin/webhooks/dead-letters", ADMIN).await;
    assert_eq!(list.assert_status(200)["data"], json!([]));
    p.app
        .post(
            "/v1/admin/webhooks/dead-letters/evt_unknown/replay",
            ADMIN,
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
}
