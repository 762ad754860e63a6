//! `/v1/bookings`: create, read, reschedule, cancel, who may do what, lists.

use serde_json::json;

use crate::common::metrics::isolated;
use crate::common::*;

#[tokio::test]
async fn booking_lifecycle_and_permissions() {
    isolated(|metrics| async move {
        let app = TestApp::new();
        let pro = app.create_open_professional(0).await;
        let other_pro = app.create_open_professional(0).await;
        let lin = app.create_client("lin").await;
        let max = app.create_client("max").await;

        let r = app
            .create_booking(&lin.token, booking_body(&pro.id, 0, 90))
            .await;
        let b = r.assert_status(201).clone();
        assert_eq!(b["status"], "confirmed");
        assert_eq!(b["price"], json!({"amount_cents": 9000, "currency": "eur"}));
        assert_eq!(b["client_id"], lin.id);
        assert_eq!(b["professional_id"], pro.id);
        assert!(b["payment"].is_null());
        assert!(b["hold_expires_at"].is_null());
        assert_eq!(b["start"], ts(at(0)));
        let id = str_of(&b["id"]);
        assert_eq!(r.header("location").unwrap(), format!("/v1/bookings/{id}"));
        let path = format!("/v1/bookings/{id}");

        // Who can see it.
        for t in [lin.token.as_str(), pro.token.as_str(), ADMIN] {
            assert_eq!(app.get(&path, t).await.assert_status(200)["id"], id);
        }
        for t in [max.token.as_str(), other_pro.token.as_str()] {
            app.get(&path, t).await.assert_problem(404, "not_found");
        }
        app.get("/v1/bookings/xyz", &lin.token)
            .await
            .assert_problem(404, "not_found");

        // Conflicts, availability, who may book.
        app.create_booking(&max.token, booking_body(&pro.id, 60, 60))
            .await
            .assert_problem(409, "slot_unavailable");
        app.create_booking(&max.token, booking_body(&pro.id, 90, 60))
            .await
            .assert_status(201);
        let past = json!({"professional_id": pro.id, "start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"});
        app.create_booking(&lin.token, past)
            .await
            .assert_problem(422, "outside_availability");
        let no_schedule = app.create_professional("massage", 1).await;
        app.create_booking(&lin.token, booking_body(&no_schedule.id, 0, 60))
            .await
            .assert_problem(422, "outside_availability");
        app.create_booking(ADMIN, booking_body(&pro.id, 300, 60))
            .await
            .assert_problem(403, "forbidden");
        app.create_booking(&pro.token, booking_body(&pro.id, 300, 60))
            .await
            .assert_problem(403, "forbidden");
        app.create_booking(
            &lin.token,
            booking_body(&uuid::Uuid::now_v7().to_string(), 300, 60),
        )
        .await
        .assert_problem(404, "not_found");
        let r = app
            .create_booking(
                &lin.token,
                json!({"professional_id": "x", "start": "soon", "end": "later"}),
            )
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.json["errors"].as_array().unwrap().len(), 3);
        app.create_booking(&lin.token, booking_body(&pro.id, 400, -60))
            .await
            .assert_problem(422, "validation_failed");
        app.create_booking(&lin.token, json!({"professional_id": pro.id}))
            .await
            .assert_problem(400, "malformed_request");

        // Reschedule: its client only; conflicts leave it unchanged.
        let to = |m: i64| json!({"start": ts(at(m)), "end": ts(at(m + 90))});
        let reschedule = async |token: &str, body| app.reschedule_booking(token, &id, body).await;
        reschedule(&pro.token, to(300))
            .await
            .assert_problem(403, "forbidden");
        reschedule(&max.token, to(300))
            .await
            .assert_problem(404, "not_found");
        reschedule(&lin.token, to(120))
            .await
            .assert_problem(409, "slot_unavailable");
        assert_eq!(app.get(&path, &lin.token).await.json["start"], ts(at(0)));
        let r = reschedule(&lin.token, to(300)).await;
        assert_eq!(r.assert_status(200)["start"], ts(at(300)));
        reschedule(&lin.token, json!({"start": ts(at(600)), "end": ts(at(630))}))
            .await
            .assert_problem(422, "validation_failed");

        // Cancel: client, professional or admin; cancelling again is the same answer.
        app.post(&format!("{path}/cancel"), &max.token, json!({}))
            .await
            .assert_problem(404, "not_found");
        let r = app.cancel_booking(&pro.token, &id, "c1").await;
        assert_eq!(r.assert_status(200)["status"], "cancelled");
        let again = app.cancel_booking(&lin.token, &id, "c2").await;
        assert_eq!(again.assert_status(200)["status"], "cancelled");
        reschedule(&lin.token, to(600))
            .await
            .assert_problem(409, "invalid_state");
        app.cancel_booking(&lin.token, "nope", "c3")
            .await
            .assert_problem(404, "not_found");
        // The slot is free again.
        app.create_booking(&max.token, booking_body(&pro.id, 300, 60))
            .await
            .assert_status(201);

        // Three bookings created; two attempts refused with slot_unavailable (a booking
        // and a reschedule).
        let m = metrics.scrape();
        assert_eq!(m.value("bookings_created_total", &[]), 3.0);
        assert_eq!(m.value("booking_conflicts_total", &[]), 2.0);
        let created = [
            ("method", "POST"),
            ("route", "/v1/bookings"),
            ("status", "201"),
        ];
        assert_eq!(m.value("http_requests_total", &created), 3.0);
    })
    .await;
}

#[tokio::test]
async fn booking_lists_are_scoped_filtered_and_paginated() {
    let app = TestApp::new();
    let pro_a = app.create_open_professional(0).await;
    let pro_b = app.create_open_professional(0).await;
    let lin = app.create_client("lin").await.token;
    let max = app.create_client("max").await.token;
    for i in 0..5 {
        app.create_booking(&lin, booking_body(&pro_a.id, i * 60, 60))
            .await
            .assert_status(201);
    }
    app.create_booking(&max, booking_body(&pro_b.id, 0, 60))
        .await
        .assert_status(201);
    let count = |r: &Res| r.json["data"].as_array().unwrap().len();
    assert_eq!(count(&app.get("/v1/bookings", &lin).await), 5);
    assert_eq!(count(&app.get("/v1/bookings", &max).await), 1);
    assert_eq!(count(&app.get("/v1/bookings", &pro_a.token).await), 5);
    assert_eq!(count(&app.get("/v1/bookings", ADMIN).await), 6);
    assert_eq!(
        count(
            &app.get(&format!("/v1/bookings?professional_id={}", pro_b.id), ADMIN)
                .await
        ),
        1
    );
    assert_eq!(
        count(&app.get("/v1/bookings?status=cancelled", ADMIN).await),
        0
    );
    assert_eq!(
        count(
            &app.get(
                &format!("/v1/bookings?from={}&to={}", ts(at(60)), ts(at(180))),
                &lin
            )
            .await
        ),
        2
    );
    // Pages in start order.
    let starts_of = |r: &Res| -> Vec<String> {
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| str_of(&b["start"]))
            .collect()
    };
    let p1 = app.get("/v1/bookings?limit=2", &lin).await;
    let mut starts = starts_of(&p1);
    let mut cursor = str_of(&p1.json["next_cursor"]);
    while !cursor.is_empty() {
        let p = app
            .get(&format!("/v1/bookings?limit=2&cursor={cursor}"), &lin)
            .await;
        starts.extend(starts_of(&p));
        cursor = str_of(&p.json["next_cursor"]);
    }
    let expected: Vec<String> = (0..5).map(|i| ts(at(i * 60))).collect();
    assert_eq!(starts, expected);
    // A cursor of another query or caller is rejected.
    let c = str_of(&p1.json["next_cursor"]);
    app.get(&format!("/v1/bookings?status=confirmed&cursor={c}"), &lin)
        .await
        .assert_problem(400, "malformed_request");
    app.get(&format!("/v1/bookings?limit=2&cursor={c}"), ADMIN)
        .await
        .assert_problem(400, "malformed_request");
    for q in [
        "status=done",
        "from=x",
        "professional_id=nope",
        "limit=1000",
        "from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z",
    ] {
        app.get(&format!("/v1/bookings?{q}"), &lin)
            .await
            .assert_problem(422, "validation_failed");
    }
}
