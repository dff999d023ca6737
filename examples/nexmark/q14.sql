-- Nexmark q14, calculation: bids between 1,000,000 and 50,000,000 euros (price x 0.908),
-- when in the day they were made, and how many 'c's their extra field holds.
CREATE STREAM q14 AS SELECT auction, bidder, 0.908 * price AS price,
  CASE
    WHEN CAST(TIMESTAMPTOSTRING(dateTime, 'HH', 'UTC') AS INT) >= 8
      AND CAST(TIMESTAMPTOSTRING(dateTime, 'HH', 'UTC') AS INT) <= 18 THEN 'dayTime'
    WHEN CAST(TIMESTAMPTOSTRING(dateTime, 'HH', 'UTC') AS INT) <= 6
      OR CAST(TIMESTAMPTOSTRING(dateTime, 'HH', 'UTC') AS INT) >= 20 THEN 'nightTime'
    ELSE 'otherTime'
  END AS bidTimeType,
  dateTime, extra, LEN(extra) - LEN(REPLACE(extra, 'c', '')) AS c_counts
  FROM bid
  WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000
  EMIT CHANGES;
