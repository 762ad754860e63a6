//! `POST /v1/clients`.

use serde_json::json;

use crate::common::*;
use crate::error_fields;

#[tokio::test]
async fn create_client_admin_only_and_validated() {
    let app = TestApp::new();
    let r = app
        .post(
            "/v1/clients",
            ADMIN,
            json!({"name": " Lin ", "email": "lin@example.com"}),
        )
        .await;
    let v = r.assert_status(201);
    assert_eq!(v["name"], "Lin");
    assert!(v["api_token"].as_str().unwrap().starts_with("bk_"));
    let lin = Party::of(v);
    // A client may not create clients.
    app.post(
        "/v1/clients",
        &lin.token,
        json!({"name": "X", "email": "x@example.com"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Invalid values: 422 with every field.
    let r = app
        .post("/v1/clients", ADMIN, json!({"name": "", "email": "nope"}))
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(error_fields(&r), ["name", "email"]);
}
