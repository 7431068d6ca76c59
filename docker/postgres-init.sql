-- Seeds the `reviews` table the example postgresSource `reviews_table` reads
-- (feature-definitions/reviews.ts), in the same shape as data/reviews.parquet.
-- Run once by the postgres image on first start (docker-entrypoint-initdb.d).
CREATE TABLE IF NOT EXISTS reviews (
  review_id       text PRIMARY KEY,
  sku             text NOT NULL,
  customer_id     text NOT NULL,
  text            text NOT NULL,
  rating          integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
  event_timestamp timestamptz NOT NULL,
  created         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_event_timestamp ON reviews (event_timestamp);

-- 5,000 reviews over 30 days from a few Portuguese phrases per rating, deterministic.
INSERT INTO reviews
SELECT 'pg' || lpad(n::text, 7, '0'),
       'SKU-' || lpad(((n * 7919) % 500)::text, 6, '0'),
       'C' || lpad(((n * 104729) % 20000)::text, 6, '0'),
       (ARRAY[
         'Péssimo, veio rasgado e ninguém responde. Não recomendo!',
         'Não gostei, o tecido é fino e a cor é diferente da foto.',
         'Razoável, serviu mas demorou muito para chegar.',
         'Gostei bastante, tecido bom e entrega rápida.',
         'Essa sandália é maravilhosa, ficou perfeita, amei ameeei !!!'
       ])[1 + (n * 31 % 5)],
       1 + (n * 31 % 5),
       timestamptz '2024-01-01 00:00:00+00' + (n * interval '518 seconds'),
       timestamptz '2024-01-01 00:00:00+00' + (n * interval '518 seconds') + interval '30 seconds'
FROM generate_series(1, 5000) AS n
ON CONFLICT (review_id) DO NOTHING;
