-- Nexmark q17, auction statistics report: per auction and day, the bids' count, counts per
-- price band, and the minimum, maximum, average and sum of their prices.
CREATE TABLE nexmark_q17 (auction BIGINT, `day` VARCHAR, total_bids BIGINT,
  rank1_bids BIGINT, rank2_bids BIGINT, rank3_bids BIGINT, min_price BIGINT,
  max_price BIGINT, avg_price BIGINT, sum_price BIGINT)
  WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q17
SELECT auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS `day`,
  COUNT(*) AS total_bids,
  SUM(CASE WHEN price < 10000 THEN 1 ELSE 0 END) AS rank1_bids,
  SUM(CASE WHEN price >= 10000 AND price < 1000000 THEN 1 ELSE 0 END) AS rank2_bids,
  SUM(CASE WHEN price >= 1000000 THEN 1 ELSE 0 END) AS rank3_bids,
  MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price,
  SUM(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
