//! Bearer tokens: missing, unknown or of another scheme is 401; issued tokens work.

use axum::body::Body;
use axum::http::Request;

use crate::common::*;

#[tokio::test]
async fn missing_or_unknown_tokens_are_401() {
    let app = TestApp::new();
    let r = app.request("GET", "/v1/professionals").send().await;
    r.assert_problem(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.get("/v1/professionals", "bk_unknown")
        .await
        .assert_problem(401, "unauthorized");
    let req = Request::builder()
        .uri("/v1/professionals")
        .header("authorization", "Basic abc")
        .body(Body::empty())
        .unwrap();
    app.send(req).await.assert_problem(401, "unauthorized");
    // Issued tokens work.
    let lin = app.create_client("lin").await;
    app.get("/v1/professionals", &lin.token)
        .await
        .assert_status(200);
}
