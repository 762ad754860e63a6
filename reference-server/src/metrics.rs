//! Prometheus metrics.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route` (template), `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `bookings_created_total` | counter | |
//! | `booking_conflicts_total` | counter | |
//! | `idempotency_replays_total`, `idempotency_mismatches_total`, `idempotency_in_flight_total` | counter | |
//! | `holds_expired_total` | counter | |
//! | `stripe_request_duration_seconds` | histogram | `op` |
//! | `stripe_request_errors_total` | counter | `op`, `kind` |
//! | `webhook_events_received_total`, `webhook_duplicates_total`, `webhook_signature_failures_total` | counter | |
//! | `webhook_events_processed_total` | counter | `outcome` (`applied`, `unchanged`, `acknowledged`, `ignored`) |
//! | `webhook_events_retried_total`, `webhook_events_dead_lettered_total`, `webhook_replays_total` | counter | |
//! | `webhook_processing_lag_seconds` | histogram | (from receipt to processed) |
//! | `payment_intents_cancelled_total`, `payment_refunds_issued_total`, `payment_obligation_failures_total` | counter | |
//!
//! The recorder is process-global (the `metrics` facade has one), so several
//! [`crate::Application`]s in one process (tests) share it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The route template a response was produced by (a response extension).
#[derive(Debug, Clone)]
struct RouteTemplate(String);

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Webhook processing lag: from milliseconds (the worker was idle) to the retry horizon.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86_400.0,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder
                .set_buckets_for_metric(
                    // HTTP and Stripe latencies (`*_duration_seconds`) share the buckets.
                    Matcher::Suffix("_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_lag_seconds".into()), LAG_BUCKETS)
                }) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by route template and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route template and status"
    );
    metrics::describe_counter!("bookings_created_total", "Bookings created");
    metrics::describe_counter!(
        "booking_conflicts_total",
        "Booking attempts refused with slot_unavailable"
    );
    metrics::describe_counter!("idempotency_replays_total", "Stored responses replayed");
    metrics::describe_counter!(
        "idempotency_mismatches_total",
        "Idempotency keys reused with another request"
    );
    metrics::describe_counter!(
        "idempotency_in_flight_total",
        "Requests refused because their key was in flight"
    );
    metrics::describe_counter!("holds_expired_total", "Holds marked expired by the sweep");
}

/// Route layer: remembers the matched route template on the response.
pub async fn capture_route(req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut res = next.run(req).await;
    if let Some(t) = template {
        res.extensions_mut().insert(RouteTemplate(t));
    }
    res
}

/// Outer layer: counts requests and records their latency by route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<RouteTemplate>()
        .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let labels = [
        ("method", method),
        ("route", route),
        ("status", res.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    res
}
