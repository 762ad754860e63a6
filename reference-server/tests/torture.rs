//! Torture: the server on PostgreSQL (payments on, against a fake Stripe) under 64
//! concurrent clients fighting over a few hot slots of two professionals, then the
//! guarantees checked against the database directly.
//!
//! Each client books (fresh keys; some retried with the same key and body, some sent twice
//! at once, some keys reused with another body), cancels and reschedules its bookings, and
//! delivers Stripe-signed webhook events for anyone's bookings: a payment that succeeds
//! (sometimes after a failure, sometimes refunded later) or an intent that is cancelled, in
//! random order and with duplicates, plus deliveries with a bad signature. Holds last eight
//! seconds, so some expire and get paid late. Afterwards (see `common::invariants`):
//! no two active bookings of a professional overlap, every 201 is exactly one row and every
//! row has a 201 (or an unanswered request), every replay equals its original byte for
//! byte and the stored copy, the outbox tells each booking's story up to its row, and no
//! key is left in flight.
//!
//! The run prints its seed and its counts (`cargo test ... -- --nocapture`).
//! `BOOKING_TORTURE_SEED=<n>` replays a seed's choices (the interleaving still varies);
//! `BOOKING_TORTURE_SCALE=<n>` multiplies the operations per client (CI: 1, about 3,000
//! requests; a person: 10 or more).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use booking_core::webhook::{WebhookSecret, sign};
use chrono::Utc;
use common::fake_stripe::FakeStripe;
use common::invariants::{self, Exchange, Kind, Ledger};
use common::rng::{self, Rng};
use common::wire::{self, Call, Reply};
use common::{ADMIN, HttpClient, at, http_client, professional_body, str_of, ts};
use reference_server::config::{StripeConfig, WebhookConfig};
use reference_server::{Application, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const SIGNING_SECRET: &str = "whsec_torture_0123456789abcdef";
const CLIENTS: usize = 64;
/// Operations per client at scale 1.
const OPS_PER_CLIENT: usize = 40;
/// Start offsets (minutes) of the hot slots; bookings last an hour, so neighbours overlap.
const STARTS: [i64; 8] = [0, 30, 60, 90, 120, 150, 180, 210];
/// Buffers after a booking of each professional (minutes).
const BUFFERS: [i64; 3] = [0, 15, 0];

/// A Stripe event waiting to be delivered (again).
#[derive(Debug, Clone)]
struct Pending {
    event: Value,
    intent: String,
}

/// What every client task shares.
struct Shared {
    base: String,
    http: HttpClient,
    ledger: Ledger,
    fake: FakeStripe,
    professionals: Vec<String>,
    events: Mutex<Vec<Pending>>,
    deliveries: Mutex<BTreeMap<String, usize>>,
}

impl Shared {
    async fn post(
        &self,
        kind: Kind,
        token: &str,
        key: &str,
        path: &str,
        body: &Value,
        target: Option<&str>,
    ) -> Result<Reply, String> {
        let bytes = serde_json::to_vec(body).unwrap();
        let outcome = wire::send(
            &self.http,
            &self.base,
            &Call::post(path, token, key, &bytes),
        )
        .await;
        self.ledger.record(Exchange {
            kind,
            scope: token.to_owned(),
            key: key.to_owned(),
            body: bytes,
            target: target.map(str::to_owned),
            outcome: outcome.clone(),
        });
        outcome
    }

    fn count_delivery(&self, label: String) {
        *self.deliveries.lock().unwrap().entry(label).or_insert(0) += 1;
    }

    /// Delivers `event` signed with `secret`.
    async fn deliver(&self, event: &Value, secret: &str) -> Result<Reply, String> {
        let body = serde_json::to_vec(event).unwrap();
        let header = sign(&WebhookSecret::new(secret).unwrap(), Utc::now(), &body);
        let headers = [("stripe-signature", header)];
        let call = Call {
            method: "POST",
            path: "/v1/webhooks/stripe",
            token: None,
            key: None,
            body: Some(&body),
            headers: &headers,
        };
        wire::send(&self.http, &self.base, &call).await
    }
}

/// A Stripe event about `booking`'s payment intent.
fn stripe_event(kind: &str, booking: &Value) -> Value {
    let intent = &booking["payment"]["payment_intent_id"];
    let object = if kind == "charge.refunded" {
        json!({"id": "ch_torture", "object": "charge", "payment_intent": intent,
               "amount_refunded": booking["price"]["amount_cents"].as_i64().unwrap_or(0) / 2,
               "currency": booking["price"]["currency"]})
    } else {
        json!({"id": intent, "object": "payment_intent",
               "amount": booking["price"]["amount_cents"], "currency": booking["price"]["currency"],
               "metadata": {"booking_id": booking["id"]}})
    };
    json!({"id": format!("evt_{}", uuid::Uuid::now_v7().simple()), "object": "event",
           "type": kind, "created": Utc::now().timestamp(), "data": {"object": object}})
}

/// The events Stripe would send about a new hold: a payment (maybe after a failure, maybe
/// refunded later), a cancelled intent, or nothing (the hold expires).
fn fate(rng: &mut Rng, booking: &Value) -> Vec<Value> {
    let mut kinds = Vec::new();
    if rng.percent(30) {
        kinds.push("payment_intent.payment_failed");
    }
    match rng.below(100) {
        0..55 => {
            kinds.push("payment_intent.succeeded");
            if rng.percent(20) {
                kinds.push("charge.refunded");
            }
        }
        55..75 => kinds.push("payment_intent.canceled"),
        _ => {}
    }
    kinds
        .into_iter()
        .map(|k| stripe_event(k, booking))
        .collect()
}

/// One client's bookings: id and current start offset.
type Mine = Vec<(String, i64)>;

async fn book(s: &Shared, rng: &mut Rng, token: &str, mine: &mut Mine) {
    let pro = rng.pick(&s.professionals).clone();
    let start = *rng.pick(&STARTS);
    let body = json!({"professional_id": pro, "start": ts(at(start)), "end": ts(at(start + 60))});
    let key = uuid::Uuid::now_v7().to_string();
    let path = "/v1/bookings";
    let first = if rng.percent(5) {
        // The same request twice at once: one runs, the other waits or replays.
        let (a, _) = tokio::join!(
            s.post(Kind::CreateBooking, token, &key, path, &body, None),
            s.post(Kind::CreateBooking, token, &key, path, &body, None)
        );
        a
    } else {
        s.post(Kind::CreateBooking, token, &key, path, &body, None)
            .await
    };
    if let Some(r) = first
        .as_ref()
        .ok()
        .filter(|r| r.status == 201 && !r.replayed)
    {
        mine.push((str_of(&r.json["id"]), start));
        let events = fate(rng, &r.json);
        s.events
            .lock()
            .unwrap()
            .extend(events.into_iter().map(|event| Pending {
                event,
                intent: str_of(&r.json["payment"]["payment_intent_id"]),
            }));
    }
    if rng.percent(15) {
        let _ = s
            .post(Kind::CreateBooking, token, &key, path, &body, None)
            .await;
    }
    if rng.percent(5) {
        let other = *rng.pick(&STARTS) + 15;
        let changed =
            json!({"professional_id": pro, "start": ts(at(other)), "end": ts(at(other + 60))});
        let _ = s
            .post(Kind::KeyReuse, token, &key, path, &changed, None)
            .await;
    }
}

async fn cancel(s: &Shared, rng: &mut Rng, token: &str, mine: &mut Mine) {
    let i = rng.below(mine.len());
    let id = mine[i].0.clone();
    let key = uuid::Uuid::now_v7().to_string();
    let path = format!("/v1/bookings/{id}/cancel");
    let mut cancelled = false;
    for _ in 0..1 + usize::from(rng.percent(10)) {
        let r = s
            .post(Kind::Cancel, token, &key, &path, &json!({}), Some(&id))
            .await;
        cancelled |= r.is_ok_and(|r| r.status == 200);
    }
    // Mostly forget a cancelled booking; sometimes cancel it again later.
    if cancelled && rng.percent(80) {
        mine.swap_remove(i);
    }
}

async fn reschedule(s: &Shared, rng: &mut Rng, token: &str, mine: &mut Mine) {
    let i = rng.below(mine.len());
    let (id, current) = mine[i].clone();
    let to = *rng.pick(&STARTS);
    if to == current {
        return;
    }
    let key = uuid::Uuid::now_v7().to_string();
    let path = format!("/v1/bookings/{id}/reschedule");
    let body = json!({"start": ts(at(to)), "end": ts(at(to + 60))});
    for _ in 0..1 + usize::from(rng.percent(10)) {
        let r = s
            .post(Kind::Reschedule, token, &key, &path, &body, Some(&id))
            .await;
        if r.is_ok_and(|r| r.status == 200) {
            mine[i].1 = to;
        }
    }
}

/// Delivers one waiting event (kept for a duplicate delivery half of the time), or one with
/// a bad signature.
async fn webhook(s: &Shared, rng: &mut Rng) {
    if rng.percent(5) {
        let r = s
            .deliver(
                &json!({"id": "evt_forged", "type": "payment_intent.succeeded"}),
                "whsec_wrong",
            )
            .await;
        s.count_delivery(format!("forged {}", r.map_or(0, |r| r.status)));
        return;
    }
    let pending = {
        let mut events = s.events.lock().unwrap();
        if events.is_empty() {
            return;
        }
        let i = rng.below(events.len());
        if rng.percent(50) {
            events.swap_remove(i)
        } else {
            events[i].clone()
        }
    };
    let mut event = pending.event;
    if event["type"] == "payment_intent.succeeded" {
        // A cancelled intent cannot be paid any more; Stripe then reports the cancel.
        let canceled = s
            .fake
            .intents()
            .iter()
            .any(|i| i.id == pending.intent && i.status == "canceled");
        if canceled {
            event["type"] = json!("payment_intent.canceled");
        } else {
            s.fake.succeed(&pending.intent);
        }
    }
    let r = s.deliver(&event, SIGNING_SECRET).await;
    let label = match r {
        Ok(r) => format!(
            "{} {} duplicate={}",
            event["type"].as_str().unwrap_or(""),
            r.status,
            r.json["duplicate"]
        ),
        Err(_) => "no answer".to_owned(),
    };
    s.count_delivery(label);
}

async fn client_task(s: Arc<Shared>, mut rng: Rng, token: String, ops: usize) {
    let mut mine = Mine::new();
    for _ in 0..ops {
        let waiting = !s.events.lock().unwrap().is_empty();
        match rng.below(100) {
            35..50 if !mine.is_empty() => cancel(&s, &mut rng, &token, &mut mine).await,
            50..65 if !mine.is_empty() => reschedule(&s, &mut rng, &token, &mut mine).await,
            65..100 if waiting => webhook(&s, &mut rng).await,
            _ => book(&s, &mut rng, &token, &mut mine).await,
        }
    }
}

/// Creates a subject through the API; returns (id, token).
async fn subject(s: &Shared, path: &str, body: Value) -> (String, String) {
    let key = uuid::Uuid::now_v7().to_string();
    let r = s
        .post(Kind::CreateSubject, ADMIN, &key, path, &body, None)
        .await
        .expect("server up");
    assert_eq!(r.status, 201, "{}", r.json);
    (str_of(&r.json["id"]), str_of(&r.json["api_token"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_on_postgres() {
    let Some(db) = booking_postgres::test_support::TestDatabase::create().await else {
        return; // SKIPPED was printed loudly
    };
    let seed = rng::seed();
    let ops = OPS_PER_CLIENT * rng::scale();
    eprintln!("torture: seed {seed} (BOOKING_TORTURE_SEED), {CLIENTS} clients x {ops} operations");
    let mut rng = Rng::new(seed);
    let fake = FakeStripe::start().await;
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token: Some(ADMIN.into()),
        database_url: Some(db.url()),
        token_secret: Some("torture-token-secret-0123456789abcdef".into()),
        hold_ttl: Duration::from_secs(8),
        stripe: Some(StripeConfig {
            secret_key: "sk_test_fake".into(),
            api_base: Some(fake.base_url()),
            timeout: Duration::from_secs(5),
        }),
        webhook_secrets: vec![SIGNING_SECRET.into()],
        webhook: WebhookConfig {
            retry_base: Duration::from_millis(50),
            ..WebhookConfig::default()
        },
        sweep_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let app = Application::build(config).await.expect("server starts");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let mut shared = Shared {
        base,
        http: http_client(),
        ledger: Ledger::default(),
        fake,
        professionals: Vec::new(),
        events: Mutex::new(Vec::new()),
        deliveries: Mutex::new(BTreeMap::new()),
    };
    for buffer in BUFFERS {
        let (id, token) = subject(
            &shared,
            "/v1/professionals",
            professional_body("massage", 6000),
        )
        .await;
        wire::open_all_week(&shared.http, &shared.base, &id, &token, buffer).await;
        shared.professionals.push(id);
    }
    let mut client_of = HashMap::new();
    for i in 0..CLIENTS {
        let (id, token) = subject(
            &shared,
            "/v1/clients",
            json!({"name": format!("c{i}"), "email": format!("c{i}@example.com")}),
        )
        .await;
        client_of.insert(token, id);
    }

    let started = Instant::now();
    let shared = Arc::new(shared);
    let tasks: Vec<_> = client_of
        .keys()
        .map(|token| tokio::spawn(client_task(shared.clone(), rng.fork(), token.clone(), ops)))
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let load = started.elapsed();
    let pool = sqlx::PgPool::connect_with(db.connect_options())
        .await
        .expect("connect");
    // Let the inbox worker settle every recorded event before the server stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE state = 'pending'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");

    let exchanges = shared.ledger.all();
    let findings = invariants::check_bookings(&pool, &exchanges, &client_of).await;
    let inbox: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM webhook_inbox GROUP BY state ORDER BY state")
            .fetch_all(&pool)
            .await
            .unwrap();
    let deliveries = shared.deliveries.lock().unwrap().clone();
    let webhook_total: usize = deliveries.values().sum();
    eprintln!(
        "torture: seed {seed}: {} idempotent requests + {webhook_total} webhook deliveries in {load:?}",
        exchanges.len()
    );
    let mut notes: Vec<String> = deliveries
        .iter()
        .map(|(label, n)| format!("{n:>6}  webhook {label}"))
        .collect();
    notes.push(format!("webhook inbox: {inbox:?}"));
    invariants::report(seed, &exchanges, &notes, &findings);
}
