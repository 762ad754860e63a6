//! `POST /v1/professionals`, `GET` and `PATCH /v1/professionals/{id}`.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn professionals_create_get_patch() {
    let app = TestApp::new();
    let r = app
        .post(
            "/v1/professionals",
            ADMIN,
            professional_body("physio", 9000),
        )
        .await;
    let v = r.assert_status(201).clone();
    for k in [
        "id",
        "name",
        "category",
        "location",
        "hourly_rate_cents",
        "currency",
        "timezone",
        "is_active",
        "created_at",
        "updated_at",
        "api_token",
    ] {
        assert!(!v[k].is_null(), "{k} missing in {v}");
    }
    assert_eq!(v["currency"], "eur");
    assert_eq!(v["is_active"], true);
    let grace = Party::of(&v);
    let lin = app.create_client("lin").await;
    let other_pro = app.create_professional("physio", 1).await;

    let g = app
        .get(&format!("/v1/professionals/{}", grace.id), &lin.token)
        .await;
    let g = g.assert_status(200);
    assert!(g.get("api_token").is_none());
    assert_eq!(g["name"], "Grace");

    app.get("/v1/professionals/not-a-uuid", &lin.token)
        .await
        .assert_problem(404, "not_found");
    app.get(
        &format!("/v1/professionals/{}", uuid::Uuid::now_v7()),
        &lin.token,
    )
    .await
    .assert_problem(404, "not_found");

    let patch = async |token: &str, body| app.patch_professional(token, &grace.id, body).await;
    let r = patch(&grace.token, json!({"hourly_rate_cents": 9500})).await;
    assert_eq!(r.assert_status(200)["hourly_rate_cents"], 9500);
    let r = patch(ADMIN, json!({"name": "Grace H."})).await;
    assert_eq!(r.assert_status(200)["name"], "Grace H.");
    patch(&lin.token, json!({"name": "x"}))
        .await
        .assert_problem(403, "forbidden");
    patch(&other_pro.token, json!({"name": "x"}))
        .await
        .assert_problem(403, "forbidden");
    let r = patch(&grace.token, json!({"timezone": "Mars/Olympus", "location": {"lat": 91.0, "lng": 0.0}, "hourly_rate_cents": -1})).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 3, "{}", r.json);
    patch(&grace.token, json!({"nope": 1}))
        .await
        .assert_problem(400, "malformed_request");
    app.patch_professional(ADMIN, &uuid::Uuid::now_v7().to_string(), json!({}))
        .await
        .assert_problem(404, "not_found");

    // Create-time validation.
    let mut bad = professional_body("Not A Slug", -5);
    bad["timezone"] = json!("Nowhere/Land");
    bad["location"] = json!({"lat": 0.0, "lng": 200.0});
    let r = app.post("/v1/professionals", ADMIN, bad).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 4, "{}", r.json);
    app.post("/v1/professionals", &lin.token, professional_body("x", 1))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn permission_and_existence_come_before_body_errors() {
    let app = TestApp::new();
    let pro = app.create_professional("massage", 5000).await;
    let nosy = app.create_client("nosy").await;
    let garbage = json!({"not": "a schedule"});
    for (method, path) in [
        ("PUT", format!("/v1/professionals/{}/schedule", pro.id)),
        ("PATCH", format!("/v1/professionals/{}", pro.id)),
    ] {
        let send = |token: &str| {
            app.request(method, &path)
                .token(token)
                .json(garbage.clone())
                .send()
        };
        // A caller who may not change the professional learns that first...
        send(&nosy.token).await.assert_problem(403, "forbidden");
        // ...the admin gets the body's error.
        send(ADMIN).await.assert_problem(400, "malformed_request");
    }
    let unknown = "0190a8f0-e4b2-7d6c-b0f6-d6f1c2a3b4c5";
    app.put_schedule(ADMIN, unknown, garbage)
        .await
        .assert_problem(404, "not_found");
}
