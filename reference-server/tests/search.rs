//! `GET /v1/professionals` with a radius and text (memory store, `oneshot`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use serde_json::{Value, json};

/// Creates a professional named `name` at (`lat`, `lng`); returns the id.
async fn professional_at(app: &TestApp, name: &str, lat: f64, lng: f64, rate: i64) -> String {
    let (id, _) = app.professional("massage", rate).await;
    app.call(
        "PATCH",
        &format!("/v1/professionals/{id}"),
        Some(ADMIN),
        None,
        Some(json!({"name": name, "location": {"lat": lat, "lng": lng}})),
    )
    .await
    .assert_status(200);
    id
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["id"]))
        .collect()
}

#[tokio::test]
async fn radius_search_orders_by_distance_and_pages() {
    let app = TestApp::new();
    let far = professional_at(&app, "Potsdam", 52.3906, 13.0645, 1000).await;
    let near = professional_at(&app, "Mitte", 52.5219, 13.4132, 9000).await;
    let mid = professional_at(&app, "Pankow", 52.5693, 13.4010, 5000).await;
    let _paris = professional_at(&app, "Paris", 48.8566, 2.3522, 1000).await;
    let (_, t) = app.client("lin").await;
    let base = "/v1/professionals?lat=52.520008&lng=13.404954&radius_km=30";

    let all = app.get(base, &t).await;
    let v = all.assert_status(200);
    assert_eq!(ids(v), [near.clone(), mid.clone(), far.clone()]);
    let d: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["distance_km"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    assert!(
        (d[0] - 0.6).abs() < 0.1 && (d[2] - 27.1).abs() < 0.5,
        "{d:?}"
    );

    // Pages of one, nearest first; the cursor belongs to this radius only.
    let p1 = app.get(&format!("{base}&limit=1"), &t).await;
    assert_eq!(ids(p1.assert_status(200)), std::slice::from_ref(&near));
    let c1 = str_of(&p1.json["next_cursor"]);
    let p2 = app.get(&format!("{base}&limit=1&cursor={c1}"), &t).await;
    assert_eq!(ids(p2.assert_status(200)), [mid]);
    app.get(
        &format!("/v1/professionals?lat=52.520008&lng=13.404954&radius_km=31&cursor={c1}"),
        &t,
    )
    .await
    .assert_problem(400, "malformed_request");
    app.get(&format!("/v1/professionals?cursor={c1}"), &t)
        .await
        .assert_problem(400, "malformed_request");

    // Without a geo filter: rate order and no distance_km.
    let plain = app.get("/v1/professionals", &t).await;
    let v = plain.assert_status(200);
    assert!(v["data"][0].get("distance_km").is_none(), "{v}");
    assert_eq!(v["data"][0]["hourly_rate_cents"], 1000);

    // Moving a professional away is visible on the next search.
    app.call(
        "PATCH",
        &format!("/v1/professionals/{near}"),
        Some(ADMIN),
        None,
        Some(json!({"location": {"lat": 0.0, "lng": 0.0}})),
    )
    .await
    .assert_status(200);
    let after = app.get(base, &t).await;
    assert!(!ids(after.assert_status(200)).contains(&near));
}

#[tokio::test]
async fn text_search_matches_every_term_of_name_or_category() {
    let app = TestApp::new();
    let anna = professional_at(&app, "Anna Smith", 52.5, 13.4, 1000).await;
    let joanne = professional_at(&app, "JOANNE", 52.5, 13.4, 2000).await;
    let (bob, _) = app.professional("physio", 3000).await;
    let (_, t) = app.client("lin").await;
    let search = |q: &str| {
        let app = app.clone();
        let t = t.clone();
        let path = format!("/v1/professionals?q={q}");
        async move { ids(app.get(&path, &t).await.assert_status(200)) }
    };
    assert_eq!(search("ann").await, [anna.clone(), joanne.clone()]);
    assert_eq!(search("%20ANN%20smi%20").await, std::slice::from_ref(&anna));
    assert_eq!(search("physio").await, [bob]);
    assert_eq!(search("ann+physio").await, Vec::<String>::new());
    // Text and radius together, with a cursor bound to both.
    let r = app
        .get(
            "/v1/professionals?q=ann&lat=52.5&lng=13.4&radius_km=1&limit=1",
            &t,
        )
        .await;
    assert_eq!(ids(r.assert_status(200)), [anna]);
    let c = str_of(&r.json["next_cursor"]);
    app.get(
        &format!("/v1/professionals?q=anne&lat=52.5&lng=13.4&radius_km=1&limit=1&cursor={c}"),
        &t,
    )
    .await
    .assert_problem(400, "malformed_request");
    let r2 = app
        .get(
            &format!("/v1/professionals?q=ANN&lat=52.5&lng=13.4&radius_km=1&limit=1&cursor={c}"),
            &t,
        )
        .await;
    assert_eq!(ids(r2.assert_status(200)), [joanne]);
    // Over 100 characters, or all blank: 422 naming `q`.
    let long = "a".repeat(101);
    let r = app.get(&format!("/v1/professionals?q={long}"), &t).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "q", "{}", r.json);
}
