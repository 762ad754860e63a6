//! In-process tests of every endpoint and every error code (memory store, `oneshot`), one
//! module per resource or concern.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod availability;
mod bookings;
mod clients;
mod idempotency;
mod ops;
mod professionals;
mod robustness;
mod schedules;
mod search;

use axum::body::Body;
use axum::http::Request;

/// A POST with raw bytes, an optional idempotency key and an optional content type.
fn raw_post(
    path: &str,
    token: &str,
    key: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    if let Some(c) = ctype {
        b = b.header("content-type", c);
    }
    b.body(Body::from(body)).unwrap()
}

/// The `field` of every entry of a 422's `errors`, in order.
fn error_fields(r: &common::Res) -> Vec<&str> {
    r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}
