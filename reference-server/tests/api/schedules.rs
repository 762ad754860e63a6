//! `PUT` and `GET /v1/professionals/{id}/schedule`.

use serde_json::json;

use crate::common::*;
use crate::error_fields;

#[tokio::test]
async fn schedules_put_get_and_permissions() {
    let app = TestApp::new();
    let pro = app.create_professional("massage", 6000).await;
    let other = app.create_professional("massage", 6000).await;
    let lin = app.create_client("lin").await;
    let path = format!("/v1/professionals/{}/schedule", pro.id);
    app.get(&path, &lin.token)
        .await
        .assert_problem(404, "not_found");
    let body = json!({
        "timezone": "Europe/Berlin",
        "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"}],
        "overrides": [{"date": "2027-03-10", "intervals": [{"start": "10:00", "end": "12:00"}]}],
        "buffer_before_minutes": 0, "buffer_after_minutes": 15,
        "min_notice_minutes": 120, "horizon_days": 60, "slot_step_minutes": 30
    });
    let put = async |token: &str, body| app.put_schedule(token, &pro.id, body).await;
    let r = put(&pro.token, body.clone()).await;
    assert_eq!(r.assert_status(200), &body);
    assert_eq!(app.get(&path, &lin.token).await.assert_status(200), &body);
    put(ADMIN, body.clone()).await.assert_status(200);
    put(&other.token, body.clone())
        .await
        .assert_problem(403, "forbidden");
    put(&lin.token, body.clone())
        .await
        .assert_problem(403, "forbidden");
    let r = put(
        &pro.token,
        json!({"timezone": "Mars/Olympus", "weekly": [{"weekday": "mon", "start": "10:00", "end": "09:00"}]}),
    )
    .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(error_fields(&r), ["timezone", "weekly[0].end"]);
    put(&pro.token, json!({"timezone": "UTC", "bogus": 1}))
        .await
        .assert_problem(400, "malformed_request");
    app.put_schedule(ADMIN, &uuid::Uuid::now_v7().to_string(), body)
        .await
        .assert_problem(404, "not_found");
}
