//! Search: the SQL side computes exactly what `booking_core::search` defines.
//!
//! The distance in SQL (`booking_distance_mm`) must equal the core's `distance_mm` to the
//! millimetre for the filter, the order and the keyset to agree; the stored `search_doc`
//! must equal the core's `search_document`. Each test runs on a fresh database.

mod common;

use booking_core::GeoPoint;
use booking_core::auth::TokenHash;
use booking_core::search::{GeoFilter, distance_mm, search_document};
use booking_core::store::{DirectoryStore, ProfessionalQuery};
use booking_core::testing::fixtures::unique;
use booking_core::{Category, NewProfessional, ProfessionalId};
use chrono::Utc;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Points anywhere, rounded like every stored point, plus the awkward ones.
fn pairs() -> Vec<(GeoPoint, GeoPoint)> {
    let p = |lat: f64, lng: f64| GeoPoint::new(lat, lng).expect("valid point");
    let mut out = vec![
        (p(0.0, 0.0), p(0.0, 0.0)),
        (p(0.0, 0.0), p(0.0, 180.0)),
        (p(0.0, -180.0), p(0.0, 180.0)),
        (p(90.0, 0.0), p(-90.0, 0.0)),
        (p(90.0, 10.0), p(90.0, -170.0)),
        (p(1e-300, 1e-300), p(0.0, 0.0)),
        (p(52.52, 13.405), p(52.520000001, 13.405000001)),
        (p(-17.0, 179.999999999), p(-17.0, -179.999999999)),
        (p(45.0, 45.0), p(-45.0, -135.0)),
    ];
    let mut runner = TestRunner::deterministic();
    let point = || (-90.0..=90.0f64, -180.0..=180.0f64).prop_map(|(a, b)| (a, b));
    let near = || (-0.3..0.3f64, -0.3..0.3f64);
    let strategy = (point(), point(), near());
    for i in 0..20_000 {
        let ((a_lat, a_lng), (b_lat, b_lng), (dy, dx)) =
            strategy.new_tree(&mut runner).expect("a case").current();
        let a = p(a_lat, a_lng);
        // Half the pairs far apart, half within tens of kilometres.
        let b = if i % 2 == 0 {
            p(b_lat, b_lng)
        } else {
            p(
                (a_lat + dy).clamp(-90.0, 90.0),
                (a_lng + dx).clamp(-180.0, 180.0),
            )
        };
        out.push((a, b));
    }
    out
}

#[tokio::test]
async fn sql_distance_equals_the_core_formula_to_the_millimetre() {
    let Some(store) = common::store().await else {
        return;
    };
    let pairs = pairs();
    let col = |f: fn(&(GeoPoint, GeoPoint)) -> f64| pairs.iter().map(f).collect::<Vec<f64>>();
    let sql: Vec<i64> = sqlx::query_scalar(
        "SELECT booking_distance_mm(a, b, c, d) FROM \
         unnest($1::float8[], $2::float8[], $3::float8[], $4::float8[]) \
         WITH ORDINALITY AS t(a, b, c, d, n) ORDER BY n",
    )
    .bind(col(|(a, _)| a.lat))
    .bind(col(|(a, _)| a.lng))
    .bind(col(|(_, b)| b.lat))
    .bind(col(|(_, b)| b.lng))
    .fetch_all(store.pool())
    .await
    .expect("distances from SQL");
    assert_eq!(sql.len(), pairs.len());
    let differing: Vec<_> = pairs
        .iter()
        .zip(&sql)
        .filter(|((a, b), d)| distance_mm(*a, *b) != **d)
        .map(|((a, b), d)| (a, b, distance_mm(*a, *b), *d))
        .take(5)
        .collect();
    assert!(differing.is_empty(), "SQL and core differ: {differing:?}");
}

#[tokio::test]
async fn stored_search_document_equals_the_core_one() {
    let Some(store) = common::store().await else {
        return;
    };
    let now = Utc::now();
    for name in [
        "Anna Smith",
        "ÄÖÜ ß É é İstanbul",
        r"50% Off_Joe\",
        "Ǆemal ǅ ǆ",
        "ΣΊΣΥΦΟΣ",
    ] {
        let p = NewProfessional {
            name: name.into(),
            category: "tax-advice".into(),
            location: GeoPoint { lat: 1.0, lng: 2.0 },
            hourly_rate_cents: 100,
            currency: "eur".into(),
            timezone: "UTC".into(),
            is_active: None,
        }
        .validate(ProfessionalId::new_at(now), now)
        .expect("valid");
        store
            .insert_professional(&p, TokenHash::of(&unique("doc")), None)
            .await
            .expect("insert");
        let doc: String = sqlx::query_scalar("SELECT search_doc FROM professionals WHERE id = $1")
            .bind(p.id.as_uuid())
            .fetch_one(store.pool())
            .await
            .expect("search_doc");
        assert_eq!(doc, search_document(&p.name, p.category.as_str()));
    }
}

/// A radius search pages in the exact `(distance_mm, id)` order where the GiST walk's chord
/// order cannot give it: 40 professionals on one spot (the walk must widen past the cluster
/// before it can tell which ids come first) and a ladder of points 1e-9° (about 0.1 mm)
/// apart, several per millimetre, inserted farthest first so that within a millimetre the
/// walk's order is the reverse of the ids'. Every page size is checked against the core's
/// brute-force order, with and without a category (then the walk skips rows in the index).
#[tokio::test]
async fn radius_pages_follow_the_exact_order_through_clusters_and_near_ties() {
    let Some(store) = common::store().await else {
        return;
    };
    let now = Utc::now();
    let mut spots = Vec::new();
    for _ in 0..40 {
        spots.push((52.5245, 13.405));
    }
    for k in (0..60).rev() {
        spots.push((52.529 + f64::from(k) * 1e-9, 13.405));
    }
    for k in 0..20 {
        spots.push((
            52.52 + f64::from(k) * 0.0013,
            13.405 - f64::from(k) * 0.0011,
        ));
    }
    let mut made = Vec::new();
    for (i, (lat, lng)) in spots.into_iter().enumerate() {
        let p = NewProfessional {
            name: format!("Pro {i}"),
            category: if i % 3 == 0 { "yoga" } else { "massage" }.into(),
            location: GeoPoint::new(lat, lng).expect("valid point"),
            hourly_rate_cents: 1_000,
            currency: "eur".into(),
            timezone: "UTC".into(),
            is_active: None,
        }
        .validate(ProfessionalId::new_at(now), now)
        .expect("valid");
        store
            .insert_professional(&p, TokenHash::of(&unique("knn")), None)
            .await
            .expect("insert");
        made.push(p);
    }
    for category in [None, Some("yoga")] {
        for limit in [1, 2, 3, 7, 100] {
            let mut query = ProfessionalQuery::all(limit);
            query.near = Some(GeoFilter::new(52.52, 13.405, 2.0).expect("valid filter"));
            query.category = category.map(|c| Category::parse(c).expect("slug"));
            let mut want: Vec<_> = made
                .iter()
                .filter(|p| query.matches(p))
                .map(|p| query.sort_key(p))
                .collect();
            want.sort();
            let mut got = Vec::new();
            loop {
                let page = store.search_professionals(&query).await.expect("search");
                assert!(page.items.len() <= limit as usize);
                got.extend(page.items.iter().map(|p| query.sort_key(p)));
                match page.next_cursor {
                    Some(c) => query.after = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, want, "category {category:?}, limit {limit}");
        }
    }
}
