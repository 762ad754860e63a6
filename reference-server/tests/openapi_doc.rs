//! `docs/openapi.json` is the document the server serves at `/openapi.json`.
//!
//! The committed file is the generated reference the guide in `docs/` links to; this test
//! fails when it no longer matches what the server says about itself. After a change to the
//! routes or their types, regenerate it with
//!
//! ```text
//! UPDATE_OPENAPI=1 cargo test -p reference-server --test openapi_doc
//! ```

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use reference_server::{Application, Config};
use serde_json::Value;
use tower::ServiceExt;

/// Where the committed document lives.
fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

/// What `GET /openapi.json` answers on a server with the default configuration.
async fn served_document() -> Value {
    let app = Application::build(Config {
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    })
    .await
    .expect("the server builds with the default configuration");
    let request = Request::get("/openapi.json")
        .body(Body::empty())
        .expect("a valid request");
    let response = app.router().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body is readable")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("/openapi.json is JSON")
}

/// The file's text: pretty-printed, with a final newline.
fn render(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("a JSON value serialises");
    text.push('\n');
    text
}

#[tokio::test]
async fn committed_openapi_document_is_current() {
    let served = served_document().await;
    let path = committed_path();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v.trim() == "1") {
        std::fs::write(&path, render(&served)).expect("docs/openapi.json is writable");
        eprintln!("wrote {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with \
             `UPDATE_OPENAPI=1 cargo test -p reference-server --test openapi_doc`",
            path.display()
        )
    });
    let committed: Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    assert!(
        committed == served,
        "docs/openapi.json is stale: it differs from what GET /openapi.json serves. \
         Regenerate it with `UPDATE_OPENAPI=1 cargo test -p reference-server --test \
         openapi_doc` and commit the result."
    );
    assert_eq!(
        text,
        render(&committed),
        "docs/openapi.json is not in its generated layout; regenerate it as above"
    );
}
