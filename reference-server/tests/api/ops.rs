//! Health, readiness, `/metrics`, the OpenAPI document, unknown routes and methods.

use crate::common::metrics::Scrape;
use crate::common::*;

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = TestApp::new();
    let r = app.request("GET", "/healthz").send().await;
    assert_eq!(r.assert_status(200)["status"], "ok");
    assert!(r.header("x-request-id").is_some());
    app.request("GET", "/readyz")
        .send()
        .await
        .assert_status(200);
    let m = app.request("GET", "/metrics").send().await;
    m.assert_status(200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let doc = app.request("GET", "/openapi.json").send().await;
    let doc = doc.assert_status(200);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/clients", "post"),
        ("/v1/professionals", "post"),
        ("/v1/professionals", "get"),
        ("/v1/professionals/{id}", "get"),
        ("/v1/professionals/{id}", "patch"),
        ("/v1/professionals/{id}/schedule", "put"),
        ("/v1/professionals/{id}/schedule", "get"),
        ("/v1/professionals/{id}/availability", "get"),
        ("/v1/bookings", "post"),
        ("/v1/bookings", "get"),
        ("/v1/bookings/{id}", "get"),
        ("/v1/bookings/{id}/cancel", "post"),
        ("/v1/bookings/{id}/reschedule", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} undocumented");
        if path.starts_with("/v1/") {
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["BookingView"].is_object());
}

/// `/metrics` serves the process-wide recorder, which every test of this binary shares, so
/// this test counts requests nobody else sends (`HEAD /healthz`: no other test of this
/// binary may send one) and compares the values before and after.
#[tokio::test]
async fn metrics_count_requests_by_method_route_and_status() {
    let app = TestApp::new();
    let scrape = |app: TestApp| async move {
        let r = app.request("GET", "/metrics").send().await;
        r.assert_status(200);
        Scrape::parse(std::str::from_utf8(&r.bytes).unwrap())
    };
    let labels = [("method", "HEAD"), ("route", "/healthz"), ("status", "200")];
    let before = scrape(app.clone()).await;
    for _ in 0..3 {
        app.request("HEAD", "/healthz")
            .send()
            .await
            .assert_status(200);
    }
    let after = scrape(app.clone()).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(delta("http_requests_total", &labels), 3.0);
    assert_eq!(delta("http_request_duration_seconds_count", &labels), 3.0);
    // Latencies are histograms with the server's buckets, down to 100 µs.
    let le = [labels.as_slice(), &[("le", "0.0001")]].concat();
    assert!(after.has("http_request_duration_seconds_bucket", &le));
    let le = [labels.as_slice(), &[("le", "10")]].concat();
    assert_eq!(delta("http_request_duration_seconds_bucket", &le), 3.0);
}

/// The exporter renders `*_duration_seconds` and `*_lag_seconds` histograms with their own
/// buckets (a label value of this test's own keeps its series apart).
#[tokio::test]
async fn histograms_are_rendered_with_the_servers_buckets() {
    let handle = reference_server::metrics::handle();
    let run = uuid::Uuid::now_v7().to_string();
    ::metrics::histogram!("stripe_request_duration_seconds", "op" => run.clone()).record(0.003);
    ::metrics::histogram!("webhook_processing_lag_seconds", "run" => run.clone()).record(42.0);
    let scrape = Scrape::parse(&handle.render());
    let bucket = |name: &str, label: &str, le: &str| {
        scrape.value(name, &[(label, run.as_str()), ("le", le)])
    };
    let duration = "stripe_request_duration_seconds_bucket";
    assert_eq!(bucket(duration, "op", "0.0025"), 0.0);
    assert_eq!(bucket(duration, "op", "0.005"), 1.0);
    assert_eq!(bucket(duration, "op", "10"), 1.0);
    let lag = "webhook_processing_lag_seconds_bucket";
    assert_eq!(bucket(lag, "run", "30"), 0.0);
    assert_eq!(bucket(lag, "run", "60"), 1.0);
    assert_eq!(bucket(lag, "run", "86400"), 1.0);
}

#[test]
fn scrapes_parse_labels_with_braces_commas_and_quotes() {
    let s = Scrape::parse(
        "# TYPE x counter\n\
         x{route=\"/v1/p/{id}\",q=\"a\\\"b,c\"} 3\n\
         y 1.5\n\
         x{route=\"/other\"} 4\n",
    );
    assert_eq!(
        s.value("x", &[("route", "/v1/p/{id}"), ("q", "a\"b,c")]),
        3.0
    );
    assert_eq!(s.value("x", &[]), 7.0);
    assert_eq!(s.value("y", &[]), 1.5);
    assert_eq!(s.value("z", &[]), 0.0);
    assert!(!s.has("x", &[("route", "/nope")]));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::new();
    app.request("GET", "/nope")
        .send()
        .await
        .assert_problem(404, "not_found");
    app.request("GET", "/v1/nope")
        .token(ADMIN)
        .send()
        .await
        .assert_problem(404, "not_found");
    let r = app.request("DELETE", "/healthz").send().await;
    r.assert_problem(405, "method_not_allowed");
    assert!(r.header("allow").is_some());
    app.request("DELETE", "/v1/bookings")
        .token(ADMIN)
        .send()
        .await
        .assert_problem(405, "method_not_allowed");
}
