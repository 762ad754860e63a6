#!/usr/bin/env bash
# EXPLAIN (ANALYZE, BUFFERS) of every search query shape on a seeded scratch database,
# without and with the search indexes of migrations 20260712000001_search.sql and
# 20260801000001_search_knn.sql (the GiST as 20261130000001_search_inline_earth.sql redefines it).
#
#   booking-postgres/bench/search_plans.sh [rows]      (default 200000)
#
# Uses PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres); creates and finally drops
# the database search_plans_$$. Prints Markdown on stdout (docs/search-plans.md is its output).
set -euo pipefail
rows=${1:-200000}
here=$(cd "$(dirname "$0")" && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
db=search_plans_$$
psql -qX -d postgres -c "CREATE DATABASE $db" >/dev/null
trap 'psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null' EXIT
for f in "$here"/../migrations/*.sql; do
    psql -qX -v ON_ERROR_STOP=1 -d "$db" -f "$f" >/dev/null
done
psql -qX -v ON_ERROR_STOP=1 -d "$db" -v n="$rows" -f "$here/search_seed.sql" >/dev/null

# The statements src/store/directory/search.rs builds for pages of 20 (a radius walk
# fetches 20 + 1 + 16 rows nearest first, a rate walk 21), with the values inlined.
# 10 km around Berlin: the box's half-side = 10000 m * 6378168/6371008.8 * (1 + 1e-9) + 1.
box=10012.237155
declare -a names=(
  "category + rate range, first page"
  "category + rate range, deep page (keyset)"
  "no filter, first page"
  "10 km radius + category + rate range, first page"
  "10 km radius, deep page (keyset on distance)"
  "text q=ann (one term), first page"
  "text q=\"anna schmidt\" (two terms), first page"
  "text q=schmidt + 10 km radius"
  "text q=\"zoë yilmaz\" (rare terms), first page"
)
declare -a sqls=(
"SELECT * FROM (SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE is_active AND category = 'massage' AND hourly_rate_cents >= 4000 AND hourly_rate_cents <= 8000) AS hit WHERE true ORDER BY hourly_rate_cents, id LIMIT 21"
"SELECT * FROM (SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE is_active AND category = 'massage' AND hourly_rate_cents >= 4000 AND hourly_rate_cents <= 8000) AS hit WHERE true AND (hourly_rate_cents, id) > (7000, '80000000-0000-0000-0000-000000000000') ORDER BY hourly_rate_cents, id LIMIT 21"
"SELECT * FROM (SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE is_active) AS hit WHERE true ORDER BY hourly_rate_cents, id LIMIT 21"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at, booking_distance_mm(52.520008, 13.404954, lat, lng) AS distance_mm, booking_earth(lat, lng) <-> booking_earth(52.520008, 13.404954) AS chord_m FROM professionals WHERE is_active AND cube_enlarge(booking_earth(52.520008, 13.404954), $box, 3) @> booking_earth(lat, lng) AND category = 'massage' AND hourly_rate_cents >= 4000::bigint AND hourly_rate_cents <= 8000::bigint AND booking_distance_mm(52.520008, 13.404954, lat, lng) <= 10000000 ORDER BY chord_m LIMIT 37"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at, booking_distance_mm(52.520008, 13.404954, lat, lng) AS distance_mm, booking_earth(lat, lng) <-> booking_earth(52.520008, 13.404954) AS chord_m FROM professionals WHERE is_active AND cube_enlarge(booking_earth(52.520008, 13.404954), $box, 3) @> booking_earth(lat, lng) AND booking_distance_mm(52.520008, 13.404954, lat, lng) <= 10000000 AND (booking_distance_mm(52.520008, 13.404954, lat, lng), id) > (8000000, '00000000-0000-0000-0000-000000000000') ORDER BY chord_m LIMIT 37"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE id IN (SELECT id FROM professionals WHERE is_active AND search_doc LIKE '%ann%' ORDER BY hourly_rate_cents, id LIMIT 21) ORDER BY hourly_rate_cents, id"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE id IN (SELECT id FROM professionals WHERE is_active AND search_doc LIKE '%anna%' AND search_doc LIKE '%schmidt%' ORDER BY hourly_rate_cents, id LIMIT 21) ORDER BY hourly_rate_cents, id"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at, booking_distance_mm(52.520008, 13.404954, lat, lng) AS distance_mm, booking_earth(lat, lng) <-> booking_earth(52.520008, 13.404954) AS chord_m FROM professionals WHERE is_active AND cube_enlarge(booking_earth(52.520008, 13.404954), $box, 3) @> booking_earth(lat, lng) AND search_doc LIKE '%schmidt%' AND booking_distance_mm(52.520008, 13.404954, lat, lng) <= 10000000 ORDER BY chord_m LIMIT 37"
"SELECT id, name, category, lat, lng, hourly_rate_cents, currency, timezone, is_active, created_at, updated_at FROM professionals WHERE id IN (SELECT id FROM professionals WHERE is_active AND search_doc LIKE '%zoë%' AND search_doc LIKE '%yilmaz%' ORDER BY hourly_rate_cents, id LIMIT 21) ORDER BY hourly_rate_cents, id"
)

explain_all() {
    for i in "${!sqls[@]}"; do
        echo
        echo "#### ${names[$i]}"
        echo
        echo '```'
        # Warm once, then measure.
        psql -qX -d "$db" -c "${sqls[$i]}" >/dev/null
        psql -qAtX -d "$db" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sqls[$i]}"
        echo '```'
    done
}

active=$(psql -qAtX -d "$db" -c "SELECT count(*) FROM professionals WHERE is_active")
echo "## $rows professionals ($active active), PostgreSQL $(psql -qAtX -d "$db" -c 'SHOW server_version')"
echo
echo "Seed: \`booking-postgres/bench/search_seed.sql\`, 300 cities, 20 categories."
echo
echo "### Without the search indexes (only the rate and category btrees)"
# The search indexes as the migrations define them, to put back after the first run.
search_indexes=$(psql -qAtX -d "$db" -c "SELECT string_agg(indexdef, E';\n') || ';' FROM pg_indexes \
    WHERE indexname IN ('professionals_earth_idx', 'professionals_search_doc_trgm_idx')")
psql -qX -d "$db" -c "DROP INDEX professionals_earth_idx, professionals_search_doc_trgm_idx" >/dev/null
explain_all
echo
echo "### With the search indexes (GiST on booking_earth + category + rate, trigram GIN on search_doc)"
psql -qX -d "$db" -c "$search_indexes" -c "ANALYZE professionals" >/dev/null
explain_all
