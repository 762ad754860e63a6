//! The database side of the search driver: the seed, the centres of the radius queries and
//! the plans of the statements the benchmark sends.

use std::time::{Duration, Instant};

use booking_postgres::test_support::TestDatabase;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::CENTRES;

/// The seed script (`rows` professionals in 300 cities).
const SEED_SQL: &str = include_str!("../../../../booking-postgres/bench/search_seed.sql");

/// Seeds `rows` professionals: secondary indexes off, the seed script, indexes back (from
/// their own definitions), `VACUUM ANALYZE`, `CHECKPOINT`.
pub(crate) async fn seed(db: &TestDatabase, rows: u64) -> Duration {
    let started = Instant::now();
    let mut conn = PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes AS i \
         JOIN pg_class AS c ON c.relname = i.indexname \
         JOIN pg_index AS x ON x.indexrelid = c.oid \
         WHERE i.schemaname = 'public' AND i.tablename = 'professionals' \
           AND NOT x.indisprimary AND NOT x.indisunique",
    )
    .fetch_all(&mut conn)
    .await
    .expect("index definitions");
    for (name, _) in &defs {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("drop index");
    }
    // The script's only psql variable is `:n`.
    let script = SEED_SQL.replace(
        "generate_series(1, :n)",
        &format!("generate_series(1, {rows})"),
    );
    assert!(!script.contains(":n)"), "search_seed.sql changed shape");
    sqlx::raw_sql(AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .expect("seed");
    sqlx::raw_sql("SET maintenance_work_mem = '512MB'")
        .execute(&mut conn)
        .await
        .expect("maintenance_work_mem");
    for (_, def) in &defs {
        sqlx::raw_sql(AssertSqlSafe(def.clone()))
            .execute(&mut conn)
            .await
            .expect("create index");
    }
    sqlx::raw_sql("VACUUM ANALYZE professionals")
        .execute(&mut conn)
        .await
        .expect("analyze");
    // The seed's dirty pages go to disk now, not in a checkpoint during the first scenarios.
    sqlx::raw_sql("CHECKPOINT")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    let _ = conn.close().await;
    started.elapsed()
}

/// Centres: the locations of [`CENTRES`] active professionals picked by a hash of their
/// id (so a city comes up as often as it holds professionals).
pub(crate) async fn centres(db: &TestDatabase) -> Vec<(f64, f64)> {
    let mut conn = PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    let rows: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT lat, lng FROM professionals WHERE is_active ORDER BY md5(id::text) LIMIT $1",
    )
    .bind(CENTRES as i64)
    .fetch_all(&mut conn)
    .await
    .expect("centres");
    let _ = conn.close().await;
    assert!(!rows.is_empty(), "no professionals seeded");
    rows
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the benchmark's statement shapes around `(lat, lng)`,
/// as booking-postgres (`src/store/directory/search.rs`) builds them for pages of 20: a
/// radius walk fetches 20 + 1 + 16 rows nearest first, a rate walk 21.
pub(crate) async fn explain(db: &TestDatabase, lat: f64, lng: f64) {
    let cols = "id, name, category, lat, lng, hourly_rate_cents, currency, timezone, \
                is_active, created_at, updated_at";
    let radius = 10_000.0 * 6_378_168.0 / 6_371_008.8 * (1.0 + 1e-9) + 1.0;
    let dist = format!("booking_distance_mm({lat}, {lng}, lat, lng)");
    let near = |filters: &str| {
        format!(
            "SELECT {cols}, {dist} AS distance_mm, \
             booking_earth(lat, lng) <-> booking_earth({lat}, {lng}) AS chord_m \
             FROM professionals WHERE is_active \
             AND cube_enlarge(booking_earth({lat}, {lng}), {radius}, 3) @> booking_earth(lat, lng)\
             {filters} AND {dist} <= 10000000 ORDER BY chord_m LIMIT 37"
        )
    };
    let mut conn = PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    // The cursor the server hands out after page 4 of the radius paging.
    let (after_mm, after_id): (i64, uuid::Uuid) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {dist}, id FROM professionals WHERE is_active AND {dist} <= 10000000 \
         ORDER BY 1, 2 OFFSET 79 LIMIT 1"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("page 4's last row");
    let text = |terms: &[&str]| {
        let likes: String = terms
            .iter()
            .map(|t| format!(" AND search_doc LIKE '%{t}%'"))
            .collect();
        format!(
            "SELECT {cols} FROM professionals WHERE id IN (SELECT id FROM professionals \
             WHERE is_active{likes} ORDER BY hourly_rate_cents, id LIMIT 21) \
             ORDER BY hourly_rate_cents, id"
        )
    };
    let shapes = [
        (
            "10 km radius + category + rate range, first page",
            near(
                " AND category = 'massage' AND hourly_rate_cents >= 4000::bigint \
                 AND hourly_rate_cents <= 12000::bigint",
            ),
        ),
        ("10 km radius, first page", near("")),
        (
            "10 km radius, page 5 (keyset on distance)",
            near(&format!(" AND ({dist}, id) > ({after_mm}, '{after_id}')")),
        ),
        (
            "category + rate range, page 5 (keyset)",
            format!(
                "SELECT {cols} FROM professionals WHERE is_active \
                 AND category = 'massage' AND hourly_rate_cents >= 4000 \
                 AND hourly_rate_cents <= 12000 \
                 AND (hourly_rate_cents, id) > (4000, '13000000-0000-0000-0000-000000000000') \
                 ORDER BY hourly_rate_cents, id LIMIT 21"
            ),
        ),
        ("text q=schmidt, first page", text(&["schmidt"])),
        (
            "text q=\"zoë yilmaz\", first page",
            text(&["zoë", "yilmaz"]),
        ),
        ("text q=\"tara nagy\", first page", text(&["tara", "nagy"])),
    ];
    for (name, sql) in shapes {
        // Warm once, then measure.
        let _ = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await;
        let plan: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("explain");
        println!("\n#### {name}\n\n```");
        for (line,) in plan {
            println!("{line}");
        }
        println!("```");
    }
    let _ = conn.close().await;
}
