-- Nexmark q5, hot items: the auctions with the most bids in each 10-second window, every 2
-- seconds. The bids per auction and window are a view (a HOP window aggregation, a stream
-- of one row per auction and window when the window closes); each window's highest count
-- is a subquery over it grouped by the window's end, joined back on that end.
CREATE VIEW q5_counts AS
SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
CREATE TABLE nexmark_q5 (auction BIGINT, num BIGINT, starttime TIMESTAMP(3),
  endtime TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q5
SELECT C.auction, C.num, C.starttime, C.endtime
FROM q5_counts AS C
JOIN (SELECT endtime, MAX(num) AS maxn FROM q5_counts GROUP BY endtime) AS M
  ON C.endtime = M.endtime AND C.num >= M.maxn;
