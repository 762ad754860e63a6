//! Professional search: geo radius, text, their order and keyset pages.

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::auth::Actor;
use crate::auth::TokenHash;
use crate::domain::{Category, GeoPoint, NewProfessional, Professional, ProfessionalPatch};
use crate::engine::BookingEngine;
use crate::search::{GeoFilter, TextQuery};
use crate::store::{Cursor, ProfessionalQuery, Store};
use crate::testing::fixtures::{Fixture, unique};

/// Creates an active professional through the engine.
async fn create<S: Store + ?Sized, C: crate::clock::Clock>(
    engine: &BookingEngine<S, C>,
    name: &str,
    category: &str,
    location: GeoPoint,
    rate: i64,
    active: bool,
) -> Professional {
    engine
        .create_professional(
            &NewProfessional {
                name: name.to_owned(),
                category: category.to_owned(),
                location,
                hourly_rate_cents: rate,
                currency: "eur".into(),
                timezone: "UTC".into(),
                is_active: Some(active),
            },
            TokenHash::of(&unique("search")),
        )
        .await
        .expect("create a professional")
}

/// Every page of `query` (from its first page), each checked to hold at most `limit` rows,
/// and to be non-empty when an earlier page's cursor led to it (a full last page has no
/// next cursor; nothing is removed while the checks page).
async fn all_pages<S: Store + ?Sized, C: crate::clock::Clock>(
    engine: &BookingEngine<S, C>,
    query: &ProfessionalQuery,
) -> Vec<Professional> {
    let mut q = query.clone();
    q.after = None;
    let mut out = Vec::new();
    loop {
        let page = engine.search_professionals(&q).await.expect("search");
        assert!(page.items.len() <= q.limit as usize, "page over its limit");
        assert!(
            q.after.is_none() || !page.items.is_empty(),
            "a next cursor led to an empty page"
        );
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.after = Some(c),
            None => return out,
        }
    }
}

/// The specification: matching rows of `made`, sorted by the query's key.
fn brute_force(made: &[Professional], query: &ProfessionalQuery) -> Vec<Cursor> {
    let mut keys: Vec<Cursor> = made
        .iter()
        .filter(|p| query.matches(p))
        .map(|p| query.sort_key(p))
        .collect();
    keys.sort();
    keys
}

fn keys(query: &ProfessionalQuery, rows: &[Professional]) -> Vec<Cursor> {
    rows.iter().map(|p| query.sort_key(p)).collect()
}

fn point(lat: f64, lng: f64) -> GeoPoint {
    GeoPoint { lat, lng }
}

/// `DirectoryStore::search_professionals` with a radius: inside it, nearest first.
pub async fn search_by_radius_orders_by_distance<S: Store + ?Sized>(store: Arc<S>) {
    // `search_professionals` with a radius: only professionals inside it, nearest first,
    // ties by id, across pages; inactive ones never.
    let fx = Fixture::new(store).await; // its professional (massage) sits ~3 m from `berlin`
    let berlin = point(52.520008, 13.404954);
    let near = create(
        &fx.engine,
        "Mitte",
        "massage",
        point(52.5219, 13.4132),
        9_000,
        true,
    )
    .await;
    let tie_a = create(
        &fx.engine,
        "Tie A",
        "yoga",
        point(52.55, 13.404954),
        1_000,
        true,
    )
    .await;
    let tie_b = create(
        &fx.engine,
        "Tie B",
        "yoga",
        point(52.55, 13.404954),
        2_000,
        true,
    )
    .await;
    let potsdam = create(
        &fx.engine,
        "Potsdam",
        "yoga",
        point(52.3906, 13.0645),
        500,
        true,
    )
    .await;
    let _off = create(
        &fx.engine,
        "Closed",
        "yoga",
        point(52.5201, 13.405),
        500,
        false,
    )
    .await;
    let _paris = create(
        &fx.engine,
        "Paris",
        "yoga",
        point(48.8566, 2.3522),
        500,
        true,
    )
    .await;
    let mut query = ProfessionalQuery::all(1);
    query.near = Some(GeoFilter::new(berlin.lat, berlin.lng, 30.0).expect("valid filter"));
    let got: Vec<_> = all_pages(&fx.engine, &query)
        .await
        .iter()
        .map(|p| p.id)
        .collect();
    let (first_tie, second_tie) = if tie_a.id < tie_b.id {
        (tie_a.id, tie_b.id)
    } else {
        (tie_b.id, tie_a.id)
    };
    assert_eq!(got, [fx.pro.id, near.id, first_tie, second_tie, potsdam.id]);
    let d = query
        .distance_km(&potsdam)
        .expect("a geo query has distances");
    assert!(
        (d - 27.1).abs() < 0.5,
        "Berlin to Potsdam is about 27 km, got {d}"
    );
    // Combined with the other filters, still in distance order.
    query.category = Some(Category::parse("yoga").expect("slug"));
    query.max_rate_cents = Some(1_000);
    query.limit = 10;
    let got: Vec<_> = all_pages(&fx.engine, &query)
        .await
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(got, [tie_a.id, potsdam.id]);
    // A radius around the antimeridian finds points on both sides of it.
    let east = create(&fx.engine, "East", "yoga", point(-17.0, 179.99), 100, true).await;
    let west = create(&fx.engine, "West", "yoga", point(-17.0, -179.98), 100, true).await;
    let mut query = ProfessionalQuery::all(10);
    query.near = Some(GeoFilter::new(-17.0, 180.0, 5.0).expect("valid filter"));
    let got: Vec<_> = all_pages(&fx.engine, &query)
        .await
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(got, [east.id, west.id]);
}

/// `DirectoryStore::search_professionals` with text: every term matches, literally.
pub async fn search_text_matches_every_term<S: Store + ?Sized>(store: Arc<S>) {
    // `search_professionals` with `text`: every term is a case-insensitive (ASCII) substring
    // of the name or of the category; `%`, `_` and `\` are literal.
    let fx = Fixture::new(store).await;
    let anna = create(&fx.engine, "Anna Smith", "yoga", point(1.0, 1.0), 100, true).await;
    let annabel = create(
        &fx.engine,
        "ANNABELLE",
        "massage",
        point(1.0, 1.0),
        200,
        true,
    )
    .await;
    let joe = create(
        &fx.engine,
        r"50% Off_Joe\",
        "tax-advice",
        point(1.0, 1.0),
        300,
        true,
    )
    .await;
    let zoe = create(&fx.engine, "Zoë", "yoga", point(1.0, 1.0), 400, true).await;
    let _off = create(&fx.engine, "Anna Off", "yoga", point(1.0, 1.0), 50, false).await;
    let search = |q: &str| {
        let mut query = ProfessionalQuery::all(1);
        query.text = Some(TextQuery::parse(q).expect("valid text"));
        let engine = &fx.engine;
        async move {
            let mut ids: Vec<_> = all_pages(engine, &query)
                .await
                .iter()
                .map(|p| p.id)
                .collect();
            ids.retain(|id| *id != fx.pro.id);
            ids
        }
    };
    assert_eq!(search("ann").await, [anna.id, annabel.id]);
    assert_eq!(search("  aNN   YOGA ").await, [anna.id]);
    assert_eq!(search("smithyoga").await, []);
    assert_eq!(search("tax-adv").await, [joe.id]);
    assert_eq!(search("50%").await, [joe.id]);
    assert_eq!(search("_").await, [joe.id]);
    assert_eq!(search("%").await, [joe.id]);
    assert_eq!(search(r"\").await, [joe.id]);
    assert_eq!(search("f_j").await, [joe.id]);
    assert_eq!(search("x%").await, []);
    assert_eq!(search("ZOË").await, []);
    assert_eq!(search("zoë").await, [zoe.id]);
    // A change is visible to the next search.
    fx.engine
        .update_professional(
            Actor::Admin,
            anna.id,
            &ProfessionalPatch {
                name: Some("Hanna".into()),
                ..ProfessionalPatch::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(search("hann").await, [anna.id]);
    assert_eq!(search("smith").await, []);
}

/// `DirectoryStore::search_professionals` equals a brute-force filter, page by page.
pub async fn search_matches_brute_force_and_pages_cleanly<S: Store + ?Sized>(store: Arc<S>) {
    // `search_professionals` equals a brute-force filter and sort over the same rows for
    // random data and queries, and paging with a small limit never skips or repeats a row,
    // also while rows are inserted between pages.
    let fx = Fixture::new(store).await;
    let mut made = vec![fx.pro.clone()];
    let mut runner = TestRunner::deterministic();
    for _case in 0..16 {
        let rows = proptest::collection::vec(row_strategy(), 0..12)
            .new_tree(&mut runner)
            .expect("rows")
            .current();
        for r in rows {
            made.push(
                create(
                    &fx.engine, &r.name, r.category, r.location, r.rate, r.active,
                )
                .await,
            );
        }
        let queries = proptest::collection::vec(query_strategy(), 4)
            .new_tree(&mut runner)
            .expect("queries")
            .current();
        for query in queries {
            let got = all_pages(&fx.engine, &query).await;
            assert_eq!(
                keys(&query, &got),
                brute_force(&made, &query),
                "query {query:?}"
            );
        }
        // Paging while rows are inserted: strictly ascending keys (no repeat), every row
        // that matched before the first page is there, every row returned matches.
        let query = query_strategy()
            .new_tree(&mut runner)
            .expect("a query")
            .current();
        let extra = proptest::collection::vec(row_strategy(), 8)
            .new_tree(&mut runner)
            .expect("extra rows")
            .current();
        let before: HashSet<Cursor> = brute_force(&made, &query).into_iter().collect();
        let mut extra = extra.into_iter();
        let mut q = query.clone();
        let mut seen = Vec::new();
        loop {
            let page = fx.engine.search_professionals(&q).await.expect("search");
            seen.extend(page.items.iter().cloned());
            if let Some(r) = extra.next() {
                made.push(
                    create(
                        &fx.engine, &r.name, r.category, r.location, r.rate, r.active,
                    )
                    .await,
                );
            }
            match page.next_cursor {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        let seen_keys = keys(&query, &seen);
        assert!(
            seen_keys.windows(2).all(|w| w[0] < w[1]),
            "pages repeat or reorder rows: {query:?}"
        );
        assert!(seen.iter().all(|p| query.matches(p)), "{query:?}");
        let seen_set: HashSet<Cursor> = seen_keys.into_iter().collect();
        assert!(
            before.is_subset(&seen_set),
            "pages skipped a row: {query:?}"
        );
    }
}

/// One generated professional.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    category: &'static str,
    location: GeoPoint,
    rate: i64,
    active: bool,
}

/// Centres the data clusters around: a city, the antimeridian, near a pole, the origin.
const CENTRES: [(f64, f64); 4] = [(52.52, 13.40), (-17.0, 179.95), (89.9, 0.0), (0.0, 0.0)];

const CATEGORIES: [&str; 3] = ["yoga", "massage", "tax-advice"];

/// A point on a coarse grid around one of the centres, so that distances tie often.
fn location_strategy() -> impl Strategy<Value = GeoPoint> {
    (0..CENTRES.len(), -8i32..=8, -8i32..=8).prop_map(|(c, dy, dx)| {
        let (lat, lng) = CENTRES[c];
        let lat = (lat + f64::from(dy) * 0.025).clamp(-90.0, 90.0);
        let mut lng = lng + f64::from(dx) * 0.025;
        if lng > 180.0 {
            lng -= 360.0;
        }
        GeoPoint { lat, lng }
    })
}

fn row_strategy() -> impl Strategy<Value = Row> {
    let words = prop::sample::select(vec![
        "Anna", "anne", "Bob", "ZOË", "zoë", "Ä_b", "50%off", "Lee-Ann", "yo",
    ]);
    (
        proptest::collection::vec(words, 1..3),
        prop::sample::select(CATEGORIES.to_vec()),
        location_strategy(),
        prop::sample::select(vec![1_000i64, 2_000, 3_000]),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(words, category, location, rate, active)| Row {
            name: words.join(" "),
            category,
            location,
            rate,
            active,
        })
}

fn query_strategy() -> impl Strategy<Value = ProfessionalQuery> {
    let terms = prop::sample::select(vec![
        "ann", "AN", "bo", "zoë", "_", "%", "yoga", "ga", "x", "e", "lee-", "age",
    ]);
    let radius = prop::sample::select(vec![0.5, 2.0, 5.0, 12.0, 30.0, 20_000.0]);
    (
        prop::option::weighted(0.3, prop::sample::select(CATEGORIES.to_vec())),
        prop::option::weighted(0.3, prop::sample::select(vec![1_000i64, 2_000, 3_000])),
        prop::option::weighted(0.3, prop::sample::select(vec![1_000i64, 2_000, 3_000])),
        prop::option::weighted(0.5, (location_strategy(), radius)),
        prop::option::weighted(0.4, proptest::collection::vec(terms, 1..3)),
        1u32..4,
    )
        .prop_map(
            |(category, min, max, near, text, limit)| ProfessionalQuery {
                category: category.map(|c| Category::parse(c).expect("slug")),
                min_rate_cents: min,
                max_rate_cents: max,
                near: near.map(|(c, r)| GeoFilter::new(c.lat, c.lng, r).expect("valid filter")),
                text: text.map(|t| TextQuery::parse(&t.join(" ")).expect("valid text")),
                limit,
                after: None,
            },
        )
}
