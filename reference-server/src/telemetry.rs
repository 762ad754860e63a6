//! Telemetry: the `tracing` subscriber and the per-request span. (Metrics: [`crate::metrics`].)

use axum::body::Body;
use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// Installs the `tracing` subscriber: `RUST_LOG` (default `info`) to standard error.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// How a request's span is made.
type MakeRequestSpan = fn(&Request<Body>) -> tracing::Span;

/// The layer of [`trace_layer`].
pub(crate) type RequestTraceLayer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeRequestSpan>;

/// The span every request runs in (`method`, `path` and the `x-request-id` set by the
/// request-id layer), with each response logged at `INFO`.
pub(crate) fn trace_layer() -> RequestTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(request_span as MakeRequestSpan)
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
}

fn request_span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %id,
    )
}
