//! Raw HTTP exchanges with a running server for the abuse tests: every answer is kept
//! byte for byte, and a refused connection, a reset or a timeout is an `Err` the caller
//! counts and retries instead of a panic.

use std::time::Duration;

use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::Value;

use super::HttpClient;

/// How long one exchange may take before it counts as failed.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A response as received.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Whether `Idempotent-Replayed: true` was set.
    pub replayed: bool,
    /// The body, exactly as sent.
    pub bytes: Vec<u8>,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: Value,
}

impl Reply {
    /// The problem `code`, or "".
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    /// A final answer: what the idempotency layer stores and replays (2xx and 4xx other
    /// than 401, 408 and 429).
    pub fn is_final(&self) -> bool {
        (200..300).contains(&self.status)
            || ((400..500).contains(&self.status) && ![401, 408, 429].contains(&self.status))
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path and query.
    pub path: &'a str,
    /// A bearer token.
    pub token: Option<&'a str>,
    /// An idempotency key.
    pub key: Option<&'a str>,
    /// A JSON body (sent as is).
    pub body: Option<&'a [u8]>,
    /// Further headers.
    pub headers: &'a [(&'a str, String)],
}

impl<'a> Call<'a> {
    /// A `POST` of `body` with `token` and `key`.
    pub fn post(path: &'a str, token: &'a str, key: &'a str, body: &'a [u8]) -> Self {
        Self {
            method: "POST",
            path,
            token: Some(token),
            key: Some(key),
            body: Some(body),
            headers: &[],
        }
    }
}

/// Sends `call` to the server at `base` (`http://host:port`).
pub async fn send(client: &HttpClient, base: &str, call: &Call<'_>) -> Result<Reply, String> {
    let mut b = Request::builder()
        .method(Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?)
        .uri(format!("{base}{}", call.path));
    if let Some(t) = call.token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(k) = call.key {
        b = b.header("idempotency-key", k);
    }
    if call.body.is_some() {
        b = b.header("content-type", "application/json");
    }
    for (name, value) in call.headers {
        b = b.header(*name, value.as_str());
    }
    let body = bytes::Bytes::copy_from_slice(call.body.unwrap_or_default());
    let req = b
        .body(http_body_util::Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let res = client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let replayed = res
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            replayed,
            bytes,
            json,
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// Gives professional `id` (with its `token`) a schedule open around the clock with
/// `buffer_after` minutes after each booking; panics unless the server answers 200.
pub async fn open_all_week(
    client: &HttpClient,
    base: &str,
    id: &str,
    token: &str,
    buffer_after: i64,
) {
    let schedule = serde_json::to_vec(&super::open_schedule(buffer_after)).expect("json");
    let path = format!("/v1/professionals/{id}/schedule");
    let call = Call {
        method: "PUT",
        path: &path,
        token: Some(token),
        key: None,
        body: Some(&schedule),
        headers: &[],
    };
    let r = send(client, base, &call).await.expect("server up");
    assert_eq!(r.status, 200, "{}", r.json);
}
