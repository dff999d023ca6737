-- Nexmark q17, auction statistics: per auction and day, how many bids, how many of them
-- cheap (under 10,000), medium and dear (1,000,000 and over), and the prices' least,
-- greatest, average and sum.
CREATE TABLE q17 AS SELECT auction, TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd', 'UTC') AS day,
  COUNT(*) AS total_bids,
  SUM(CASE WHEN price < 10000 THEN 1 ELSE 0 END) AS rank1_bids,
  SUM(CASE WHEN price >= 10000 AND price < 1000000 THEN 1 ELSE 0 END) AS rank2_bids,
  SUM(CASE WHEN price >= 1000000 THEN 1 ELSE 0 END) AS rank3_bids,
  MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price,
  SUM(price) AS sum_price
  FROM bid WINDOW TUMBLING (SIZE 1 DAY) GROUP BY auction EMIT CHANGES;
