//! `GET /v1/professionals`: filters, order, pagination, validation.

use serde_json::json;

use crate::common::*;

/// The hourly rates of a page, in order.
fn rates(r: &Res) -> Vec<i64> {
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hourly_rate_cents"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn search_filters_order_and_pagination() {
    let app = TestApp::new();
    for (cat, rate) in [
        ("massage", 5000),
        ("massage", 3000),
        ("physio", 4000),
        ("massage", 7000),
        ("massage", 3000),
    ] {
        app.create_professional(cat, rate).await;
    }
    let inactive = app.create_professional("massage", 1000).await;
    app.patch_professional(ADMIN, &inactive.id, json!({"is_active": false}))
        .await
        .assert_status(200);
    let t = app.create_client("lin").await.token;

    let all = app.get("/v1/professionals?category=massage", &t).await;
    assert_eq!(rates(&all), [3000, 3000, 5000, 7000]);
    assert!(all.json["next_cursor"].is_null());

    let r = app
        .get(
            "/v1/professionals?min_rate_cents=3500&max_rate_cents=5000",
            &t,
        )
        .await;
    assert_eq!(rates(&r), [4000, 5000]);

    // Pages of 3 over all five active professionals.
    let p1 = app.get("/v1/professionals?limit=3", &t).await;
    assert_eq!(p1.json["data"].as_array().unwrap().len(), 3);
    let cursor = str_of(&p1.json["next_cursor"]);
    let p2 = app
        .get(&format!("/v1/professionals?limit=3&cursor={cursor}"), &t)
        .await;
    assert_eq!(p2.assert_status(200)["data"].as_array().unwrap().len(), 2);
    assert!(p2.json["next_cursor"].is_null());
    // The cursor belongs to its query.
    app.get(
        &format!("/v1/professionals?category=massage&cursor={cursor}"),
        &t,
    )
    .await
    .assert_problem(400, "malformed_request");
    app.get("/v1/professionals?cursor=garbage", &t)
        .await
        .assert_problem(400, "malformed_request");

    for q in [
        "limit=0",
        "limit=101",
        "limit=x",
        "category=Bad%20Slug",
        "min_rate_cents=-1",
        "min_rate_cents=5&max_rate_cents=4",
        "lat=1&lng=2",
        "radius_km=3",
        "lat=91&lng=2&radius_km=3",
        "lat=1&lng=-181&radius_km=3",
        "lat=1&lng=2&radius_km=0",
        "lat=1&lng=2&radius_km=20000.5",
        "lat=NaN&lng=2&radius_km=3",
        "lat=1&lng=2&radius_km=inf",
        "lat=x&lng=2&radius_km=3",
        "q=",
        "q=%20%20",
        "q=a%00b",
    ] {
        app.get(&format!("/v1/professionals?{q}"), &t)
            .await
            .assert_problem(422, "validation_failed");
    }
    // Unknown parameters are ignored.
    app.get("/v1/professionals?whatever=1", &t)
        .await
        .assert_status(200);
}
