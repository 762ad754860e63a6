//! Storage failures through the server, driven by `booking_core::testing::faulty::Faulty`
//! around the memory store: a write that fails before it reaches the store (503, the key
//! abandoned, the retry books once) and a write that committed but whose answer was lost
//! (503, and the retry with the same key answers with that very booking, never a second
//! one and never a 409 against itself).

mod common;

use std::sync::Arc;

use booking_core::testing::faulty::Faulty;
use common::{Res, TestApp, booking_body, str_of};

/// An app over a `Faulty` memory store, a client and a professional open around the clock.
async fn setup() -> (
    TestApp,
    Arc<Faulty<booking_memory::MemoryStore>>,
    String,
    String,
) {
    let store = Arc::new(Faulty::new(Arc::new(booking_memory::MemoryStore::new())));
    let app = TestApp::over(store.clone());
    let pro = app.create_open_professional(0).await;
    let client = app.create_client("Ola").await;
    (app, store, pro.id, client.token)
}

/// `POST /v1/bookings` of `body` by `token` with the idempotency key `key`.
async fn book(app: &TestApp, token: &str, key: &str, body: &serde_json::Value) -> Res {
    app.request("POST", "/v1/bookings")
        .token(token)
        .key(key)
        .json(body.clone())
        .send()
        .await
}

/// The bookings `token` sees.
async fn bookings(app: &TestApp, token: &str) -> Vec<String> {
    let list = app.get("/v1/bookings", token).await;
    let v = list.assert_status(200);
    v["data"]
        .as_array()
        .map(|items| items.iter().map(|b| str_of(&b["id"])).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_write_refused_by_the_store_is_503_and_the_retry_books_once() {
    let (app, store, pro, token) = setup().await;
    let body = booking_body(&pro, 60, 60);
    store.fail("insert_booking_answered", 1);

    let first = book(&app, &token, "faults-refused", &body).await;
    first.assert_problem(503, "store_unavailable");
    assert!(
        bookings(&app, &token).await.is_empty(),
        "nothing was stored"
    );

    // The 5xx released the key: the retry runs again at once (no 409 in flight).
    let retry = book(&app, &token, "faults-refused", &body).await;
    let id = str_of(&retry.assert_status(201)["id"]);
    let replay = book(&app, &token, "faults-refused", &body).await;
    assert_eq!(replay.status.as_u16(), 201);
    assert_eq!(
        replay.bytes, retry.bytes,
        "the replay is the retry's answer"
    );
    assert_eq!(bookings(&app, &token).await, vec![id]);
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_found_by_the_retry() {
    let (app, store, pro, token) = setup().await;
    let body = booking_body(&pro, 120, 30);
    // The booking and its stored answer commit; the server is told the store failed.
    store.lose_answer("insert_booking_answered", 1);

    let first = book(&app, &token, "faults-lost", &body).await;
    first.assert_problem(503, "store_unavailable");
    let stored = bookings(&app, &token).await;
    assert_eq!(stored.len(), 1, "the lost commit did store the booking");

    // The retry gets that booking, not a second one and not 409 slot_unavailable.
    let retry = book(&app, &token, "faults-lost", &body).await;
    assert_eq!(str_of(&retry.assert_status(201)["id"]), stored[0]);
    assert_eq!(bookings(&app, &token).await, stored);
}

#[tokio::test]
async fn a_lost_cancel_answer_is_repaired_by_the_retry() {
    let (app, store, pro, token) = setup().await;
    let created = app
        .create_booking(&token, booking_body(&pro, 240, 60))
        .await;
    let id = str_of(&created.assert_status(201)["id"]);
    store.lose_answer("transition_booking_from", 1);

    let first = app.cancel_booking(&token, &id, "faults-cancel").await;
    first.assert_problem(503, "store_unavailable");
    // The cancel committed: the slot is free again for someone else.
    let other = app.create_client("Pim").await;
    let rebook = app
        .create_booking(&other.token, booking_body(&pro, 240, 60))
        .await;
    rebook.assert_status(201);

    // The client's retry learns the outcome: the booking is cancelled.
    let retry = app.cancel_booking(&token, &id, "faults-cancel").await;
    let v = retry.assert_status(200);
    assert_eq!(v["status"], "cancelled");
}
