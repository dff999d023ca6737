-- Nexmark q5, hot items: the auctions with the most bids in each 10-second window, every 2
-- seconds. The window aggregations are Flink SQL's (HOP and TUMBLE table functions); Flink's
-- join of the counts with their window's maximum (subqueries in FROM) is written here as a
-- chain: each step's output topic read as a stream by the next.
-- 1. bids per auction per hopping window (one row per window when it closes)
CREATE TABLE q5_counts AS SELECT auction, AS_VALUE(auction) AS item,
  window_start AS starttime, window_end AS endtime, COUNT(*) AS num
  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
  GROUP BY auction, window_start, window_end;
CREATE STREAM q5_counts_stream (item BIGINT, starttime BIGINT, endtime BIGINT, num BIGINT)
  WITH (kafka_topic='Q5_COUNTS', value_format='JSON', timestamp='endtime');
-- 2. the highest count of each window: its counts all end at the same time, so a 2-second
-- tumbling window over their end holds exactly them
CREATE TABLE q5_max AS SELECT endtime, AS_VALUE(endtime) AS ending, MAX(num) AS maxn
  FROM TABLE(TUMBLE(TABLE q5_counts_stream, DESCRIPTOR(endtime), INTERVAL '2' SECOND))
  GROUP BY window_start, window_end, endtime;
CREATE STREAM q5_max_stream (ending BIGINT, maxn BIGINT)
  WITH (kafka_topic='Q5_MAX', value_format='JSON', timestamp='ending');
-- 3. each window's counts that reach its maximum
CREATE STREAM q5 AS SELECT c.item AS auction, c.num AS num, c.starttime AS starttime,
  c.endtime AS endtime
  FROM q5_counts_stream c JOIN q5_max_stream m WITHIN 1 SECOND ON c.endtime = m.ending
  WHERE c.num >= m.maxn EMIT CHANGES;
