-- Seeds :n professionals spread over 300 cities (a few big, many small), for the search
-- plans in docs/search-plans.md and the search benchmark. Deterministic (setseed).
--
--   psql "$URL" -v n=200000 -f booking-postgres/bench/search_seed.sql
--
-- Expects the migrated schema on an otherwise empty, scratch database.

SELECT setseed(0.42);

CREATE TEMP TABLE cities AS
SELECT i AS city,
       (random() * 120 - 55)  AS lat,
       (random() * 360 - 180) AS lng
FROM generate_series(1, 300) AS i;
-- City 1 is Berlin, so that the plans can name a real centre.
UPDATE cities SET lat = 52.520008, lng = 13.404954 WHERE city = 1;

INSERT INTO professionals (id, name, category, lat, lng, hourly_rate_cents, currency,
                           timezone, is_active, created_at, updated_at)
SELECT gen_random_uuid(),
       (ARRAY['Anna','Ben','Chloé','David','Emma','Felix','Grace','Hanna','Ivan','Julia',
              'Karl','Lena','Mia','Noah','Olga','Paul','Rosa','Sven','Tara','Zoë'])
           [1 + floor(random() * 20)::int]
         || ' ' ||
       (ARRAY['Schmidt','Müller','Smith','Garcia','Rossi','Dubois','Kowalski','Novak',
              'Jensen','Silva','Yilmaz','Popescu','Nagy','Horvat','Ivanova','Berg'])
           [1 + floor(random() * 16)::int],
       (ARRAY['massage','yoga','physio','tax-advice','tutoring','plumbing','hair','nails',
              'coaching','therapy','photography','dog-walking','cleaning','fitness',
              'language','music','legal-advice','design','it-support','nutrition'])
           [1 + floor(random() * 20)::int],
       greatest(-90, least(90, round((c.lat + r.dlat)::numeric, 6)::float8)),
       round((((c.lng + r.dlng + 540)::numeric % 360) - 180), 6)::float8,
       2000 + 500 * floor(random() * 37)::bigint,
       'eur', 'UTC', random() < 0.95, now(), now()
FROM (
    SELECT g,
           -- Big cities first: city k gets a share falling off like k^-1/2.
           1 + floor(300 * power(random(), 2))::int AS city,
           -- Normal offsets, sigma 0.08 degrees (~9 km).
           0.08 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS dlat,
           0.12 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS dlng
    FROM generate_series(1, :n) AS g
) AS r
JOIN cities AS c USING (city);

ANALYZE professionals;
