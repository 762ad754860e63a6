//! API tokens are never at rest, and a retried create never makes a second subject, on the
//! memory store and on PostgreSQL (in-process, `oneshot`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;

use base64::Engine as _;
use booking_core::idempotency::request_ref;
use booking_core::{Decision, Fingerprint, IdempotencyKey, Scope, Store, TokenHash};
use common::*;
use reference_server::{AppState, Config};
use serde_json::{Value, json};

const SECRET: &str = "test-token-secret-0123456789abcdef";
const ROTATED: &str = "test-token-secret-rotated-0123456789";

/// An app over `store` whose tokens are derived with `secret`.
fn app_over(store: Arc<dyn Store>, secret: &str) -> TestApp {
    let config = Config {
        admin_token: Some(ADMIN.into()),
        token_secret: Some(secret.into()),
        ..Config::default()
    };
    let state = AppState::new(store, &config, ADMIN, None);
    TestApp {
        router: reference_server::router(state.clone(), &config),
        state,
    }
}

fn memory() -> Arc<dyn Store> {
    Arc::new(booking_memory::MemoryStore::new())
}

/// A migrated PostgreSQL store of its own, or `None` when skipped.
async fn postgres() -> Option<Arc<booking_postgres::PgStore>> {
    let db = booking_postgres::test_support::TestDatabase::create().await?;
    Some(Arc::new(db.into_store(4).await))
}

fn client_body(name: &str) -> Value {
    json!({"name": name, "email": format!("{name}@example.com")})
}

/// Both create endpoints, each with a body.
fn creates() -> [(&'static str, Value); 2] {
    [
        ("/v1/clients", client_body("lin")),
        ("/v1/professionals", professional_body("massage", 6000)),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Begins the request `POST path` with `key` as the admin, the way the middleware does.
async fn begin(app: &TestApp, path: &str, key: &str, body: &Value) -> Decision {
    let bytes = serde_json::to_vec(body).unwrap();
    app.state
        .engine()
        .begin_request(
            &Scope::new("admin"),
            &IdempotencyKey::parse(key).unwrap(),
            Fingerprint::of_request("POST", path, &bytes),
        )
        .await
        .unwrap()
}

// ---- replay: the same bytes, a working token, no token in the record ---------------------

async fn replay_returns_the_same_working_token(store: Arc<dyn Store>) {
    let app = app_over(store, SECRET);
    for (i, (path, body)) in creates().into_iter().enumerate() {
        let key = format!("create-{i}");
        let first = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        first.assert_status(201);
        let token = str_of(&first.json["api_token"]);
        let again = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        assert_eq!(again.status, 201, "{}", again.json);
        assert_eq!(again.bytes, first.bytes, "a replay is byte for byte");
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        // The token works.
        app.get("/v1/bookings", &token).await.assert_status(200);
        // The stored response holds no token, only a placeholder.
        let Decision::Replay { response, .. } = begin(&app, path, &key, &body).await else {
            panic!("the request completed");
        };
        assert_eq!(response.status, 201);
        assert!(!contains(&response.body, token.as_bytes()));
        assert!(contains(&response.body, b"\"api_token\":\"<redacted"));
    }
}

#[tokio::test]
async fn replay_returns_the_same_working_token_on_memory() {
    replay_returns_the_same_working_token(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_the_same_working_token_on_postgres() {
    let Some(store) = postgres().await else {
        return; // SKIPPED was printed loudly
    };
    replay_returns_the_same_working_token(store).await;
}

// ---- a retry after a 5xx finds the first attempt's subject --------------------------------

/// The first attempt of `POST path` began, stored its subject and failed (a 5xx releases
/// the key without storing a response). Returns the subject's id and the derived token.
async fn crashed_attempt(app: &TestApp, path: &str, key: &str, body: &Value) -> (String, String) {
    let Decision::Started { lease, first_seen } = begin(app, path, key, body).await else {
        panic!("the first attempt starts");
    };
    let scope = Scope::new("admin");
    let key = IdempotencyKey::parse(key).unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    let fp = Fingerprint::of_request("POST", path, &bytes);
    let request_ref = request_ref(&scope, &key, &fp, first_seen);
    let token = app.state.token_secret().api_token(&request_ref).unwrap();
    let engine = app.state.engine();
    let hash = TokenHash::of(&token);
    let id = if path == "/v1/clients" {
        let input = serde_json::from_value(body.clone()).unwrap();
        let c = engine
            .register_client(&input, hash, Some(&request_ref))
            .await
            .unwrap();
        c.get().id.to_string()
    } else {
        let input = serde_json::from_value(body.clone()).unwrap();
        let p = engine
            .register_professional(&input, hash, Some(&request_ref))
            .await
            .unwrap();
        p.get().id.to_string()
    };
    assert!(engine.abandon_request(&scope, &key, lease).await.unwrap());
    (id, token)
}

async fn retry_after_a_5xx_returns_the_first_subject(store: Arc<dyn Store>) {
    let app = app_over(store, SECRET);
    for (i, (path, body)) in creates().into_iter().enumerate() {
        let key = format!("crashy-{i}");
        let (id, token) = crashed_attempt(&app, path, &key, &body).await;
        let r = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        let v = r.assert_status(201);
        assert_eq!(str_of(&v["id"]), id, "the first attempt's subject");
        assert_eq!(str_of(&v["api_token"]), token);
        assert!(r.header("idempotent-replayed").is_none());
        app.get("/v1/bookings", &token).await.assert_status(200);
        // From now on it is a replay of that answer.
        let again = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        assert_eq!(again.bytes, r.bytes);
    }
    let list = app.get("/v1/professionals", ADMIN).await;
    assert_eq!(list.assert_status(200)["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn retry_after_a_5xx_returns_the_first_subject_on_memory() {
    retry_after_a_5xx_returns_the_first_subject(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_a_5xx_returns_the_first_subject_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    retry_after_a_5xx_returns_the_first_subject(store).await;
}

// ---- a changed token secret: a clear problem, never a token that does not work ------------

async fn rotated_secret_is_a_problem_not_a_wrong_token(store: Arc<dyn Store>) {
    let before = app_over(Arc::clone(&store), SECRET);
    let after = app_over(store, ROTATED);
    for (i, (path, body)) in creates().into_iter().enumerate() {
        // A replay.
        let key = format!("rotate-{i}");
        let first = before
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        first.assert_status(201);
        let token = str_of(&first.json["api_token"]);
        let r = after
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        r.assert_problem(409, "api_token_unrecoverable");
        assert!(!contains(&r.bytes, token.as_bytes()));
        // With the old secret the replay still works.
        let old = before
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        assert_eq!(old.bytes, first.bytes);
        // A retry after a 5xx.
        let key = format!("rotate-crashy-{i}");
        let (_, token) = crashed_attempt(&before, path, &key, &body).await;
        let r = after
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        r.assert_problem(409, "api_token_unrecoverable");
        assert!(!contains(&r.bytes, token.as_bytes()));
    }
}

#[tokio::test]
async fn rotated_secret_is_a_problem_not_a_wrong_token_on_memory() {
    rotated_secret_is_a_problem_not_a_wrong_token(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_is_a_problem_not_a_wrong_token_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    rotated_secret_is_a_problem_not_a_wrong_token(store).await;
}

// ---- nothing secret in the database ------------------------------------------------------

/// Every row of every table of the database, as text (bytea renders as hex).
async fn rows_as_text(pool: &sqlx::PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
         FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' \
           AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        tables.iter().any(|t| t.ends_with(".idempotency_keys")),
        "{tables:?}"
    );
    let mut out = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        out.push_str(&format!("-- {table}\n{}\n", rows.join("\n")));
    }
    out
}

/// `pg_dump --data-only` of `url`, if a `pg_dump` is installed.
fn pg_dump(url: &str) -> Option<String> {
    let binary = ["/usr/lib/postgresql/15/bin/pg_dump", "/usr/bin/pg_dump"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let out = std::process::Command::new(binary)
        .args(["--data-only", "--no-owner", "--dbname", url])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asserts that `dump` holds none of the forms a token could take at rest: its text, the
/// hex of its text (bytea), the hex of its 32 random bytes. It must hold the hash.
#[track_caller]
fn assert_no_token(dump: &str, tokens: &[String]) {
    for token in tokens {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_start_matches("bk_"))
            .unwrap();
        for form in [token.clone(), hex::encode(token), hex::encode(raw)] {
            assert!(!dump.contains(&form), "a token is at rest: {form}");
        }
        let hash = hex::encode(TokenHash::of(token).0);
        assert!(dump.contains(&hash), "the dump lacks the token's hash");
    }
    // The scan saw the subjects and the stored responses.
    assert!(dump.contains("lin@example.com"));
    assert!(dump.contains(&hex::encode("\"api_token\":\"<redacted")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_at_rest_in_postgres() {
    let Some(db) = booking_postgres::test_support::TestDatabase::create().await else {
        return;
    };
    let url = db.url();
    let store = Arc::new(db.into_store(4).await);
    let app = app_over(store.clone(), SECRET);
    let mut tokens = Vec::new();
    for (i, (path, body)) in creates().into_iter().enumerate() {
        // Created and replayed (with a key) ...
        let key = format!("dump-{i}");
        let r = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        r.assert_status(201);
        tokens.push(str_of(&r.json["api_token"]));
        let again = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        assert_eq!(again.bytes, r.bytes);
        // ... and retried after a crash.
        let key = format!("dump-crashy-{i}");
        crashed_attempt(&app, path, &key, &body).await;
        let r = app
            .call("POST", path, Some(ADMIN), Some(&key), Some(body.clone()))
            .await;
        r.assert_status(201);
        tokens.push(str_of(&r.json["api_token"]));
    }
    // The tokens are in use: a booking by the client.
    let (pro, pro_token) = app.open_professional(0).await;
    tokens.push(pro_token);
    let booking = app
        .post("/v1/bookings", &tokens[0], booking_body(&pro, 60, 60))
        .await;
    booking.assert_status(201);

    assert_no_token(&rows_as_text(store.pool()).await, &tokens);
    match pg_dump(&url) {
        Some(dump) => assert_no_token(&dump, &tokens),
        None => eprintln!("pg_dump not installed: checked the row scan only"),
    }
}
