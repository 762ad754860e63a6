-- Professional search: radius (cube + earthdistance), text (pg_trgm), distance order.
--
-- Every statement is idempotent (IF NOT EXISTS / OR REPLACE), like the other migrations.
-- The query shapes and the plans that motivated these indexes are in docs/search-plans.md.

CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- What a text query searches (booking_core::search::search_document): the name with ASCII
-- letters lower-cased, a line feed, the category. `translate` is locale-independent, so the
-- document is the same on every server whatever its collation or ctype.
ALTER TABLE professionals ADD COLUMN IF NOT EXISTS search_doc text
    GENERATED ALWAYS AS (
        translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
            || E'\n' || category
    ) STORED;

-- booking_core::search::distance_mm, operation for operation: haversine on a sphere of
-- radius 6371.0088 km, in whole millimetres rounded down. 0.017453292519943295 is the
-- float8 nearest pi/180 (Rust's PI / 180.0); radians() is not used because its constant
-- may round differently. Not STRICT, so the planner inlines it.
CREATE OR REPLACE FUNCTION booking_distance_mm(lat1 float8, lng1 float8, lat2 float8, lng2 float8)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT floor(
        2.0::float8 * 6371.0088::float8 * asin(least(sqrt(
            sin((lat2 - lat1) * 0.017453292519943295::float8 / 2.0::float8)
                * sin((lat2 - lat1) * 0.017453292519943295::float8 / 2.0::float8)
            + cos(lat1 * 0.017453292519943295::float8)
                * cos(lat2 * 0.017453292519943295::float8)
                * sin((lng2 - lng1) * 0.017453292519943295::float8 / 2.0::float8)
                * sin((lng2 - lng1) * 0.017453292519943295::float8 / 2.0::float8)
        ), 1.0::float8)) * 1000000.0::float8
    )::bigint
$$;

-- Radius prefilter: `earth_box(ll_to_earth(lat, lng), r) @> ll_to_earth(lat, lng)`.
CREATE INDEX IF NOT EXISTS professionals_earth_idx
    ON professionals USING gist (ll_to_earth(lat, lng)) WHERE is_active;

-- Text: `search_doc LIKE '%term%'` per term.
CREATE INDEX IF NOT EXISTS professionals_search_doc_trgm_idx
    ON professionals USING gin (search_doc gin_trgm_ops) WHERE is_active;
