//! Malformed and oversized bodies, odd paths and values: answered with a problem, never a
//! 5xx; numbers too large for their field are refused, never overflowed.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::*;
use crate::{error_fields, raw_post};

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::new();
    let cases: Vec<(Option<&str>, &[u8])> = vec![
        (Some("application/json"), b"{not json"),
        (Some("text/plain"), br#"{"name":"a","email":"a@b"}"#),
        (None, br#"{"name":"a","email":"a@b"}"#),
        (
            Some("application/json"),
            br#"{"name":"a","email":"a@b","extra":1}"#,
        ),
        (Some("application/json"), br#"{"name":1,"email":"a@b"}"#),
        (Some("application/json"), b""),
    ];
    for (i, (ctype, body)) in cases.into_iter().enumerate() {
        let r = app
            .send(raw_post(
                "/v1/clients",
                ADMIN,
                Some(&format!("m{i}")),
                ctype,
                body.to_vec(),
            ))
            .await;
        r.assert_problem(400, "malformed_request");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::new();
    let big = vec![b' '; 70 * 1024];
    // With a Content-Length.
    let mut req = raw_post(
        "/v1/clients",
        ADMIN,
        Some("big"),
        Some("application/json"),
        big.clone(),
    );
    req.headers_mut()
        .insert("content-length", big.len().to_string().parse().unwrap());
    app.send(req).await.assert_problem(413, "payload_too_large");
    // Streamed, without one.
    let req = raw_post(
        "/v1/clients",
        ADMIN,
        Some("big2"),
        Some("application/json"),
        big,
    );
    app.send(req).await.assert_problem(413, "payload_too_large");
    // Also on routes without idempotency.
    let pro = app.create_professional("massage", 100).await;
    let req = Request::builder()
        .method("PATCH")
        .uri(format!("/v1/professionals/{}", pro.id))
        .header("authorization", format!("Bearer {}", pro.token))
        .header("content-type", "application/json")
        .body(Body::from(vec![b' '; 70 * 1024]))
        .unwrap();
    app.send(req).await.assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn odd_inputs_never_produce_a_5xx() {
    let app = TestApp::new();
    let pro = app.create_open_professional(0).await.id;
    let lin = app.create_client("lin").await.token;
    let paths = [
        "/v1/professionals/%FF%FE".to_owned(),
        "/v1/professionals/%00/schedule".to_owned(),
        format!("/v1/professionals/{pro}/availability?from=%FF&to=%00&duration_minutes=-1"),
        format!(
            "/v1/professionals/{pro}/availability?from=2027-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&duration_minutes=60"
        ),
        format!(
            "/v1/professionals/{pro}/availability?from=-262143-01-01T00:00:00Z&to=%2B262142-12-31T23:59:59Z&duration_minutes=60"
        ),
        "/v1/professionals?min_rate_cents=99999999999999999999999".to_owned(),
        "/v1/bookings?from=0000-01-01T00:00:00Z&to=9999-12-31T23:59:59Z".to_owned(),
        "/v1/bookings?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "/v1//bookings".to_owned(),
        "/%2e%2e/etc/passwd".to_owned(),
    ];
    for p in &paths {
        let r = app.get(p, &lin).await;
        assert!(r.status.as_u16() < 500, "{p}: {} {}", r.status, r.json);
        assert_eq!(
            r.header("content-type")
                .map(|c| c.starts_with("application/")),
            Some(true),
            "{p}"
        );
    }
    let bodies = [
        json!({"professional_id": pro, "start": "9999-12-31T23:00:00Z", "end": "9999-12-31T23:59:00Z"}),
        json!({"professional_id": pro, "start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:00Z"}),
        json!({"professional_id": pro, "start": ts(at(0)), "end": ts(at(0))}),
        json!({"professional_id": pro, "start": "2027-01-01T00:00:00.5Z", "end": "2027-01-01T01:00:00Z"}),
        json!({"professional_id": null, "start": [], "end": {}}),
        json!([1, 2, 3]),
        json!("string"),
        json!(null),
    ];
    for b in bodies {
        let r = app.create_booking(&lin, b.clone()).await;
        assert!(r.status.as_u16() < 500, "{b}: {} {}", r.status, r.json);
    }
}

/// Coordinates far out of range (`1e308`) are a validation error of the location.
#[tokio::test]
async fn a_location_far_out_of_range_is_422() {
    let app = TestApp::new();
    let mut body = professional_body("massage", 6000);
    body["location"] = json!({"lat": 1e308, "lng": -1e308});
    let r = app.post("/v1/professionals", ADMIN, body).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(error_fields(&r), ["location.lat", "location.lng"]);
}

/// The largest hourly rate is accepted; a booking whose price would not fit in an `i64`
/// is refused with a validation error instead of overflowing, and a shorter one at the
/// same rate is priced exactly.
#[tokio::test]
async fn a_price_beyond_i64_is_refused_not_overflowed() {
    let app = TestApp::new();
    let r = app
        .post(
            "/v1/professionals",
            ADMIN,
            professional_body("massage", i64::MAX),
        )
        .await;
    assert_eq!(r.assert_status(201)["hourly_rate_cents"], i64::MAX);
    let pro = Party::of(&r.json);
    app.put_schedule(&pro.token, &pro.id, open_schedule(0))
        .await
        .assert_status(200);
    let lin = app.create_client("lin").await.token;
    // Ten hours at i64::MAX cents an hour.
    let r = app
        .create_booking(&lin, booking_body(&pro.id, 0, 600))
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(error_fields(&r), ["price"], "{}", r.json);
    // Half an hour: half the rate, rounded half up, fits.
    let r = app.create_booking(&lin, booking_body(&pro.id, 0, 30)).await;
    let half = (i128::from(i64::MAX) * 30 + 30) / 60;
    assert_eq!(
        r.assert_status(201)["price"]["amount_cents"],
        i64::try_from(half).unwrap()
    );
}
