-- Radius search without earthdistance's SQL functions on the hot path.
--
-- `ll_to_earth` and `earth_box` are SQL functions that PostgreSQL cannot inline (they
-- return the `earth` domain), so every radius statement ran them through the SQL-function
-- executor: at plan time to fold the centre and the box, parsing and planning their bodies
-- each time, and at run time once per row for the chord in the select list. A profile of
-- the radius statement at 16 clients put 40 % of PostgreSQL's CPU in the planner, 30 % in
-- those calls (docs/search-plans.md).
--
-- `booking_earth` is the same point (the same formula as `ll_to_earth`, on the same
-- sphere of 6,378,168 m, so the same coordinates bit for bit) as a plain `cube`, in a SQL
-- function PostgreSQL inlines: the statement and the index below see only `cos`, `sin`,
-- `radians` and cube's C constructor. The box is `cube_enlarge`, a C function, too.
-- The pgbench figure of the radius statement went from ~1,550 to ~4,450 per second on the
-- same database and machine.
--
-- The new index is built first, under another name, and only then swapped in: the build
-- blocks writes to professionals (not bookings) for its duration, about 15 s at 1M rows
-- here, while searches go on with the old index; dropping the old one and renaming the new
-- one take an instant at the end of the migration's transaction. In a rolling deploy,
-- instances still on the previous release keep sending `ll_to_earth` statements, which
-- have no index after the swap: their radius searches scan the table until they are
-- replaced.
--
-- The body is SQL-standard (`RETURN`, PostgreSQL 14 and later): it is parsed here, once,
-- and names `cube` by its identity, so evaluating the index expression does not depend on
-- the `search_path` of whoever does it (autovacuum's ANALYZE, pg_restore), unlike a body in
-- a string. PostgreSQL inlines it all the same.
CREATE OR REPLACE FUNCTION booking_earth(lat float8, lng float8) RETURNS cube
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN cube(ARRAY[6378168::float8 * cos(radians(lat)) * cos(radians(lng)),
                  6378168::float8 * cos(radians(lat)) * sin(radians(lng)),
                  6378168::float8 * sin(radians(lat))]);

-- The KNN walk of 20260801000001_search_knn.sql, on the inlined point. Same name, same
-- columns after the point, so plans, tests and tools that name it still hold.
CREATE INDEX professionals_earth_next_idx
    ON professionals USING gist (booking_earth(lat, lng), category, hourly_rate_cents)
    WHERE is_active;
DROP INDEX IF EXISTS professionals_earth_idx;
ALTER INDEX professionals_earth_next_idx RENAME TO professionals_earth_idx;
