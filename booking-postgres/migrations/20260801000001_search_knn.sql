-- Professional search at 1M rows: nearest-first walks of the GiST and index-only text walks.
--
-- The plans and figures behind these definitions are in docs/search-plans.md. Each index
-- keeps its name (plans, tests and tools name them) and gets a new definition, so the old
-- one is dropped first: applying this file again rebuilds the three indexes, which is
-- harmless but takes a while on a big table (and, like every CREATE INDEX here, blocks
-- writes to professionals meanwhile).

-- Radius searches walk this GiST nearest first (`ORDER BY ll_to_earth(lat, lng) <->
-- centre`, bounded by an `earth_box`). The point comes first, so the tree is spatial
-- exactly as before; category and rate (btree_gist, from the directory migration) ride in
-- each entry, so `category = $c` and the rate range are index conditions checked on the
-- index tuple: the walk skips non-matching professionals without reading their heap rows.
DROP INDEX IF EXISTS professionals_earth_idx;
CREATE INDEX IF NOT EXISTS professionals_earth_idx
    ON professionals USING gist (ll_to_earth(lat, lng), category, hourly_rate_cents)
    WHERE is_active;

-- Rate-ordered walks (no radius) carry the search document, so a text query walks the
-- index alone (an index-only scan checks `search_doc LIKE ..` on the index tuples) and reads
-- the heap only for the page it returns.
DROP INDEX IF EXISTS professionals_rate_idx;
CREATE INDEX IF NOT EXISTS professionals_rate_idx
    ON professionals (hourly_rate_cents, id) INCLUDE (search_doc) WHERE is_active;

DROP INDEX IF EXISTS professionals_category_rate_idx;
CREATE INDEX IF NOT EXISTS professionals_category_rate_idx
    ON professionals (category, hourly_rate_cents, id) INCLUDE (search_doc) WHERE is_active;
