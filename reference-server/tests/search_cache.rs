//! The search cache: `ETag`/`If-None-Match`, and no stale page after any change, in-process
//! and with the real Redis at 127.0.0.1:6379 (`REDIS_TEST_URL` to use another one), shared
//! by two app instances. Each test uses its own Redis key prefix.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use booking_core::store::Store;
use common::*;
use reference_server::{AppState, Config};
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// An app over `store` with the given cache settings.
fn app_over(store: Arc<dyn Store>, redis: Option<(&str, &str)>) -> TestApp {
    let config = Config {
        admin_token: Some(ADMIN.into()),
        redis_url: redis.map(|(url, _)| url.to_owned()),
        redis_prefix: redis.map_or_else(|| "booking:".into(), |(_, p)| p.to_owned()),
        ..Config::default()
    };
    let state = AppState::new(store, &config, ADMIN, None);
    TestApp {
        router: reference_server::router(state.clone(), &config),
        state,
    }
}

fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::now_v7().simple())
}

async fn search_ids(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let r = app.get(&format!("/v1/professionals?{query}"), token).await;
    r.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["id"]))
        .collect()
}

async fn patch(app: &TestApp, id: &str, body: Value) {
    app.call(
        "PATCH",
        &format!("/v1/professionals/{id}"),
        Some(ADMIN),
        None,
        Some(body),
    )
    .await
    .assert_status(200);
}

/// Every kind of change is visible on the next search through `reader`, made through
/// `writer` (the same app, or another instance sharing the Redis).
async fn every_change_is_visible(writer: &TestApp, reader: &TestApp) {
    let (_, t) = reader.client("lin").await;
    let q = "category=massage&lat=52.52&lng=13.40&radius_km=5";
    assert!(search_ids(reader, &t, q).await.is_empty());
    // Warm the cache, then create.
    assert!(search_ids(reader, &t, q).await.is_empty());
    let (a, _) = writer.professional("massage", 5000).await;
    assert_eq!(search_ids(reader, &t, q).await, std::slice::from_ref(&a));
    // Update: the rate moves it out of a rate filter.
    let rate_q = format!("{q}&max_rate_cents=6000");
    assert_eq!(
        search_ids(reader, &t, &rate_q).await,
        std::slice::from_ref(&a)
    );
    patch(writer, &a, json!({"hourly_rate_cents": 7000})).await;
    assert!(search_ids(reader, &t, &rate_q).await.is_empty());
    // Update: the location moves it out of the radius, and back.
    patch(writer, &a, json!({"location": {"lat": 48.85, "lng": 2.35}})).await;
    assert!(search_ids(reader, &t, q).await.is_empty());
    patch(
        writer,
        &a,
        json!({"location": {"lat": 52.52, "lng": 13.40}}),
    )
    .await;
    assert_eq!(search_ids(reader, &t, q).await, std::slice::from_ref(&a));
    // Rename: text search follows.
    let text_q = "q=zelda";
    assert!(search_ids(reader, &t, text_q).await.is_empty());
    patch(writer, &a, json!({"name": "Zelda"})).await;
    assert_eq!(
        search_ids(reader, &t, text_q).await,
        std::slice::from_ref(&a)
    );
    // Deactivate, reactivate.
    patch(writer, &a, json!({"is_active": false})).await;
    assert!(search_ids(reader, &t, q).await.is_empty());
    patch(writer, &a, json!({"is_active": true})).await;
    assert_eq!(search_ids(reader, &t, q).await, [a]);
}

#[tokio::test]
async fn etag_and_if_none_match() {
    let app = TestApp::new();
    app.professional("massage", 5000).await;
    let (_, t) = app.client("lin").await;
    let first = app.get("/v1/professionals", &t).await;
    first.assert_status(200);
    let etag = first.header("etag").unwrap().to_owned();
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));
    let conditional = |tag: String| {
        Request::builder()
            .uri("/v1/professionals")
            .header("authorization", format!("Bearer {t}"))
            .header("if-none-match", tag)
            .body(Body::empty())
            .unwrap()
    };
    let not_modified = app.send(conditional(etag.clone())).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.bytes.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    let listed = app.send(conditional(format!("\"other\", W/{etag}"))).await;
    assert_eq!(listed.status, 304);
    assert_eq!(app.send(conditional("\"other\"".into())).await.status, 200);
    // A change gives the page a new ETag, so the old one no longer matches.
    app.professional("massage", 6000).await;
    let changed = app.send(conditional(etag.clone())).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn in_process_cache_shows_every_change() {
    let app = TestApp::new();
    every_change_is_visible(&app, &app).await;
}

#[tokio::test]
async fn redis_cache_shows_every_change_across_instances() {
    let url = redis_url();
    let prefix = unique_prefix();
    let store: Arc<dyn Store> = Arc::new(booking_memory::MemoryStore::new());
    let writer = app_over(store.clone(), Some((&url, &prefix)));
    let reader = app_over(store, Some((&url, &prefix)));
    every_change_is_visible(&writer, &reader).await;
    // The pages and the generation really live in Redis, under this test's prefix.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.contains("search:page:")), "{keys:?}");
    let generation: u64 = redis::cmd("GET")
        .arg(format!("{prefix}search:generation"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(generation, 7, "one bump per change");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_down_answers_from_the_store() {
    let prefix = unique_prefix();
    let store: Arc<dyn Store> = Arc::new(booking_memory::MemoryStore::new());
    let app = app_over(store, Some(("redis://127.0.0.1:1/", &prefix)));
    every_change_is_visible(&app, &app).await;
}
