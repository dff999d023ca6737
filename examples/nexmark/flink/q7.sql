-- Nexmark q7, highest bid: the bids with the highest price of their 10-second window. The
-- maximum per window is a subquery (a TUMBLE window aggregation: one row per window when it
-- closes), joined with the bids on the price, each bid's time within that window.
CREATE TABLE nexmark_q7 (auction BIGINT, price BIGINT, bidder BIGINT,
  `dateTime` TIMESTAMP(3), extra VARCHAR) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q7
SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
FROM bid AS B
JOIN (SELECT MAX(price) AS maxprice, window_end
      FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
      GROUP BY window_start, window_end) AS M
  ON B.price = M.maxprice
WHERE B.`dateTime` >= M.window_end - INTERVAL '10' SECOND AND B.`dateTime` < M.window_end;
