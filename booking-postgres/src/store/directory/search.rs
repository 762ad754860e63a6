//! The statements behind `search_professionals` (their plans: docs/search-plans.md).
//!
//! Three shapes, each served by one index walk that stops after the page:
//!
//! * **radius** ([`near_sql`]): `professionals_earth_idx` (GiST on `booking_earth(lat, lng)`,
//!   category, rate) walked nearest first (KNN, cube's `<->`) inside a box (`cube_enlarge`)
//!   that holds the circle; category and rate are index conditions, the rest filters. The walk
//!   orders by the chord, the page by the exact `(distance_mm, id)`: [`search_near`] turns
//!   the one into the other exactly (see there).
//! * **text** ([`text_sql`]): the rate btree, which carries `search_doc`, walked index-only
//!   with the `LIKE` terms as filters; only the page's rows are read from the heap. The
//!   planner may take the trigram GIN instead when its estimates say the terms are rare.
//! * **anything else** ([`rate_sql`]): the rate or category + rate btree in `(rate, id)`
//!   order from the cursor on.

use booking_core::domain::Professional;
use booking_core::search::{GeoFilter, like_pattern};
use booking_core::store::{Cursor, Page, ProfessionalQuery};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row as _};

use crate::error::PgError;
use crate::rows::{self, professional_columns};
use crate::store::fetch_limit;

/// `booking_earth` (earthdistance's `ll_to_earth` as an inlinable function returning a
/// plain `cube`) places points on a sphere of 6,378,168 m, ours has 6,371,008.8 m: a chord
/// there is at most `distance * EARTH_BOX_SCALE`, so a box of that half-side holds the circle.
const EARTH_BOX_SCALE: f64 = 6_378_168.0 / 6_371_008.8;

/// Rows a radius walk fetches beyond the page (and the row that tells whether there is a
/// next one), so that the walk usually proves its page exact on the first try.
const NEAR_SLACK: i64 = 16;

/// How far apart two chords must be (metres on `booking_earth`'s sphere) for the farther row
/// to be strictly farther in the exact order. See [`search_near`] for the derivation.
const CHORD_MARGIN_M: f64 = 10.0;

/// One page of `query`, whose limit `limit` is already checked.
pub(super) async fn search(
    pool: &PgPool,
    query: &ProfessionalQuery,
    limit: u32,
) -> Result<Page<Professional>, PgError> {
    if let Some(near) = &query.near {
        return search_near(pool, query, near, limit).await;
    }
    let fetched = if query.text.is_some() {
        // Planned for its own terms every time (an unnamed statement): a generic plan
        // cannot see the patterns, and the generic plan PostgreSQL settles on after five
        // executions takes the trigram GIN for any terms, reading every match from the
        // heap (zoë yilmaz at 1M: 2,961 rows on 2,753 heap blocks, where the index-only
        // walk reads ~100 index pages and the page's 21 rows).
        text_sql("", query, limit)
            .build()
            .persistent(false)
            .fetch_all(pool)
            .await?
    } else {
        rate_sql("", query, limit).build().fetch_all(pool).await?
    };
    let mut hits = Vec::new();
    for row in fetched {
        let p = rows::professional(&row)?;
        let key = Cursor {
            primary: p.hourly_rate_cents,
            id: p.id.as_uuid(),
        };
        hits.push((p, key));
    }
    Ok(page(hits, limit))
}

/// The first statement a search for `query` runs (the radius walk, the text walk or the
/// rate-ordered page), after `prefix` (e.g. `EXPLAIN `), with its parameters bound.
pub(crate) fn first_statement(
    prefix: &str,
    query: &ProfessionalQuery,
    limit: u32,
) -> QueryBuilder<Postgres> {
    match &query.near {
        Some(near) => near_sql(prefix, query, near, fetch_limit(limit) + NEAR_SLACK),
        None if query.text.is_some() => text_sql(prefix, query, limit),
        None => rate_sql(prefix, query, limit),
    }
}

/// `hits` in order (at most `limit + 1`) as a page: the `limit` first, and the key of the
/// last of them as the next cursor when there is one more.
fn page(mut hits: Vec<(Professional, Cursor)>, limit: u32) -> Page<Professional> {
    let limit = limit as usize;
    let next_cursor = if hits.len() > limit {
        hits.truncate(limit);
        hits.last().map(|(_, key)| *key)
    } else {
        None
    };
    Page {
        items: hits.into_iter().map(|(p, _)| p).collect(),
        next_cursor,
    }
}

/// The filters every shape shares (after a `WHERE is_active`): category, rate range, and
/// one `search_doc LIKE '%term%'` per text term.
fn push_filters(qb: &mut QueryBuilder<Postgres>, query: &ProfessionalQuery) {
    if let Some(c) = &query.category {
        qb.push(" AND category = ").push_bind(c.as_str().to_owned());
    }
    if let Some(min) = query.min_rate_cents {
        qb.push(" AND hourly_rate_cents >= ").push_bind(min);
    }
    if let Some(max) = query.max_rate_cents {
        qb.push(" AND hourly_rate_cents <= ").push_bind(max);
    }
    if let Some(text) = &query.text {
        for term in text.terms() {
            qb.push(" AND search_doc LIKE ")
                .push_bind(like_pattern(term));
        }
    }
}

/// The rate-order keyset `(hourly_rate_cents, id) > cursor`, when the query has a cursor.
fn push_rate_keyset(qb: &mut QueryBuilder<Postgres>, query: &ProfessionalQuery) {
    if let Some(after) = query.after {
        qb.push(" AND (hourly_rate_cents, id) > (")
            .push_bind(after.primary)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
}

/// No radius, no text: the filters and the keyset, ordered by `(hourly_rate_cents, id)`,
/// `limit + 1` rows.
fn rate_sql(prefix: &str, query: &ProfessionalQuery, limit: u32) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(prefix);
    qb.push(concat!(
        "SELECT ",
        professional_columns!(),
        " FROM professionals WHERE is_active"
    ));
    push_filters(&mut qb, query);
    push_rate_keyset(&mut qb, query);
    qb.push(" ORDER BY hourly_rate_cents, id LIMIT ")
        .push_bind(fetch_limit(limit));
    qb
}

/// Text without a radius: the ids of the page come from a walk that reads only
/// `(hourly_rate_cents, id, search_doc)` (all in the rate btrees, so an index-only scan
/// filters the terms without touching the heap), then those `limit + 1` rows are read.
/// Both halves run on the statement's one snapshot, so the rows are the walk's rows.
fn text_sql(prefix: &str, query: &ProfessionalQuery, limit: u32) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(prefix);
    qb.push(concat!(
        "SELECT ",
        professional_columns!(),
        " FROM professionals WHERE id IN (SELECT id FROM professionals WHERE is_active"
    ));
    push_filters(&mut qb, query);
    push_rate_keyset(&mut qb, query);
    qb.push(" ORDER BY hourly_rate_cents, id LIMIT ")
        .push_bind(fetch_limit(limit))
        .push(") ORDER BY hourly_rate_cents, id");
    qb
}

/// `booking_distance_mm(centre, lat, lng)`: the core's distance in millimetres.
fn push_distance_mm(qb: &mut QueryBuilder<Postgres>, near: &GeoFilter) {
    let c = near.center();
    qb.push("booking_distance_mm(")
        .push_bind(c.lat)
        .push(", ")
        .push_bind(c.lng)
        .push(", lat, lng)");
}

/// The radius walk: matching rows inside the circle and after the cursor, as `chord_m`
/// (the chord between `booking_earth` points, what the GiST orders by) ascending, the first
/// `fetch` of them, each with its exact `distance_mm`.
///
/// Only functions PostgreSQL inlines or runs as C appear here (`booking_earth` is a SQL
/// function it inlines; `cube_enlarge` and `<->` are cube's C functions): earthdistance's
/// `ll_to_earth` and `earth_box` cannot be inlined and cost more than the walk itself
/// (migration `20261130000001_search_inline_earth.sql`).
fn near_sql(
    prefix: &str,
    query: &ProfessionalQuery,
    near: &GeoFilter,
    fetch: i64,
) -> QueryBuilder<Postgres> {
    let c = near.center();
    let mut qb = QueryBuilder::new(prefix);
    qb.push(concat!("SELECT ", professional_columns!(), ", "));
    push_distance_mm(&mut qb, near);
    qb.push(" AS distance_mm, booking_earth(lat, lng) <-> booking_earth(")
        .push_bind(c.lat)
        .push(", ")
        .push_bind(c.lng)
        .push(") AS chord_m FROM professionals WHERE is_active AND cube_enlarge(booking_earth(")
        .push_bind(c.lat)
        .push(", ")
        .push_bind(c.lng)
        .push("), ")
        .push_bind(near.radius_km() * 1000.0 * EARTH_BOX_SCALE * (1.0 + 1e-9) + 1.0)
        .push(", 3) @> booking_earth(lat, lng)");
    push_filters(&mut qb, query);
    qb.push(" AND ");
    push_distance_mm(&mut qb, near);
    qb.push(" <= ").push_bind(near.radius_mm());
    if let Some(after) = query.after {
        qb.push(" AND (");
        push_distance_mm(&mut qb, near);
        qb.push(", id) > (")
            .push_bind(after.primary)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    qb.push(" ORDER BY chord_m LIMIT ").push_bind(fetch);
    qb
}

/// One row of a radius walk.
struct Walked {
    key: Cursor,
    chord_m: f64,
    row: PgRow,
}

/// A radius page in the exact order `(distance_mm, id)`, from a walk in chord order.
///
/// The GiST walk yields rows by `c`, the chord to the centre on `booking_earth`'s sphere
/// (radius R' = 6,378,168 m) as cube's `<->` computes it in floating point; the page is
/// ordered by `d = booking_distance_mm`, the core's haversine on our sphere (R =
/// 6,371,008.8 m), floored to millimetres. Both are increasing functions of the true
/// central angle θ (the chord is 2R'·sin(θ/2)), but each is computed with rounding, so
/// `d` is **not** a non-decreasing function of `c` near ties, and the walk order cannot be
/// used as the page order as is. What holds instead:
///
/// * `|c − 2R'·sin(θ/2)| ≤ ε_c`, with ε_c below 1e-7 m: each coordinate of `booking_earth`
///   is R' times a product of two or three correctly rounded-or-nearly `sin`/`cos` values
///   (a few ulps of 6.4e6 m, about 1e-9 m each), and the difference, squares and square
///   root add a few ulps more. The index stores the same function of the same columns.
/// * `|haversine − Rθ| ≤ ε_h`, with ε_h below 1 m: about 1e-9 m for any angle short of the
///   antipode; towards it `asin` near 1 amplifies an error of a few ulps in the haversine
///   term into up to about 0.6 m (2R·√(2·1e-15)).
/// * The chord 2R'·sin(θ/2) grows at most R' per radian, so `c(q) − c(p) ≥ m` implies
///   θq − θp ≥ (m − 2ε_c)/R', i.e. haversine(q) − haversine(p) ≥ (m − 2ε_c)·R/R' − 2ε_h.
///   That is ≥ 1 mm — so `d(q) > d(p)` strictly, even after flooring — whenever
///   m ≥ 2ε_c + (2ε_h + 1 mm)·R'/R ≈ 2.003 m. [`CHORD_MARGIN_M`] is 10 m.
///
/// So a row whose chord is at least the margin beyond another's comes strictly after it
/// in `(d, id)`, whatever the ids. The walk fetches the first `fetch` matching rows by
/// chord; every row it did not fetch has a chord ≥ `c_last`, the last fetched one. Sorted
/// by `(d, id)`, the first `limit + 1` fetched rows are the true first `limit + 1` when
/// every one of them has `c + margin ≤ c_last` (each unfetched row comes strictly after
/// each of them) or when the walk returned fewer than `fetch` rows (it fetched every
/// matching row). Otherwise (rows clustered at one spot, many ties) the walk is repeated
/// with four times the rows, until one of the two holds. Each try is one statement, on its
/// own snapshot; only the last one's rows are returned. The filters, the radius and the
/// cursor are all applied in the walk on the exact `d`, so the rows counted are exactly
/// the matching rows after the cursor.
async fn search_near(
    pool: &PgPool,
    query: &ProfessionalQuery,
    near: &GeoFilter,
    limit: u32,
) -> Result<Page<Professional>, PgError> {
    let want = limit as usize + 1;
    let mut fetch = fetch_limit(limit) + NEAR_SLACK;
    loop {
        let fetched = near_sql("", query, near, fetch)
            .build()
            .fetch_all(pool)
            .await?;
        let complete = i64::try_from(fetched.len()).is_ok_and(|n| n < fetch);
        let mut walked = Vec::with_capacity(fetched.len());
        for row in fetched {
            walked.push(Walked {
                key: Cursor {
                    primary: row.try_get("distance_mm")?,
                    id: row.try_get("id")?,
                },
                chord_m: row.try_get("chord_m")?,
                row,
            });
        }
        let c_last = walked.last().map_or(f64::INFINITY, |w| w.chord_m);
        walked.sort_by_key(|w| w.key);
        walked.truncate(want);
        if complete || walked.iter().all(|w| w.chord_m + CHORD_MARGIN_M <= c_last) {
            let mut hits = Vec::with_capacity(walked.len());
            for w in walked {
                hits.push((rows::professional(&w.row)?, w.key));
            }
            return Ok(page(hits, limit));
        }
        fetch = fetch.saturating_mul(4);
    }
}
