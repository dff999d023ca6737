-- Nexmark q7, highest bid: the bids with the highest price of their 10-second window. The
-- window aggregation is Flink SQL's (a TUMBLE table function); Flink's join of the bids with
-- it (a subquery in FROM) is written here as a chain: the maxima's topic read as a stream,
-- joined as Flink joins it, on the price with the bid's time in the window (an interval
-- join: the maxima's record time is their window's end).
CREATE TABLE q7_max AS SELECT window_start, window_end, MAX(price) AS maxprice
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end;
CREATE STREAM q7_max_stream (window_start BIGINT, window_end BIGINT, maxprice BIGINT)
  WITH (kafka_topic='Q7_MAX', value_format='JSON', timestamp='window_end');
CREATE STREAM q7 AS SELECT b.auction AS auction, b.price AS price, b.bidder AS bidder,
  b.dateTime AS dateTime, b.extra AS extra
  FROM bid b JOIN q7_max_stream m ON b.price = m.maxprice
  WHERE b.dateTime >= m.window_end - INTERVAL '10' SECOND AND b.dateTime < m.window_end
  EMIT CHANGES;
