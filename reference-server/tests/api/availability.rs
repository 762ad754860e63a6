//! `GET /v1/professionals/{id}/availability`.

use crate::common::*;

#[tokio::test]
async fn availability_lists_free_slots() {
    let app = TestApp::new();
    let pro = app.create_open_professional(30).await;
    let lin = app.create_client("lin").await;
    let url = |from: i64, to: i64, d: i64| {
        format!(
            "/v1/professionals/{}/availability?from={}&to={}&duration_minutes={d}",
            pro.id,
            ts(at(from)),
            ts(at(to))
        )
    };
    let r = app.get(&url(0, 180, 60), &lin.token).await;
    let slots = r.assert_status(200)["slots"].as_array().unwrap().clone();
    assert_eq!(slots.len(), 5, "{slots:?}"); // 10:00 .. 12:00 every 30 minutes
    assert_eq!(slots[0]["start"], ts(at(0)));
    assert_eq!(slots[0]["end"], ts(at(60)));
    // Book 11:00-12:00, blocking 11:00-12:30 with the 30-minute buffer. A slot's own
    // blocked range (slot + 30 minutes) must miss it: 10:00 (blocks to 11:30) is gone,
    // 12:30 and 13:00 remain.
    app.create_booking(&lin.token, booking_body(&pro.id, 60, 60))
        .await
        .assert_status(201);
    let r = app.get(&url(0, 240, 60), &lin.token).await;
    let starts: Vec<String> = r.json["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["start"]))
        .collect();
    assert_eq!(starts, [ts(at(150)), ts(at(180))]);

    for q in [
        format!("/v1/professionals/{}/availability", pro.id),
        url(60, 0, 60),
        url(0, 60 * 24 * 32, 60),
        url(0, 180, 3),
        url(0, 180, 99_999_999_999_999),
        format!(
            "/v1/professionals/{}/availability?from=yesterday&to=now&duration_minutes=x",
            pro.id
        ),
    ] {
        app.get(&q, &lin.token)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.get(
        &format!(
            "/v1/professionals/{}/availability?from={}&to={}&duration_minutes=60",
            uuid::Uuid::now_v7(),
            ts(at(0)),
            ts(at(60))
        ),
        &lin.token,
    )
    .await
    .assert_problem(404, "not_found");
}
